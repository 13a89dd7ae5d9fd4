"""The typed configuration of a run: what to train (`Recipe`) and how to run it (`TrainOptions`, `RunConfig`).

Every object validates itself when it is made, so a bad value fails at once with a sentence naming the field,
not deep inside the training loop; each one round-trips through a JSON-ready dict (`to_dict` / `from_dict`),
which is what config.json and a model file's metadata store.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fmnist.errors import UsageError

Validation = Literal["test", "holdout", "none"]
VALIDATIONS = ("test", "holdout", "none")
OPTIMIZERS = ("sgd", "adam", "adamw", "muon")
SCHEDULES = ("constant", "keras_decay", "onecycle", "cosine")
PRECISIONS = ("auto", "bf16", "fp32")  # a recipe's numerics
RUN_PRECISIONS = ("recipe", *PRECISIONS)  # a run may defer to its recipe's
VAL_PRECISIONS = ("train", "fp32")  # per-epoch validation: the training numerics, or fp32 like the test figures
# Seeds: 0..2**32 - 1, what every generator a run seeds accepts (numpy's legacy RandomState, behind scikit-learn's
# KFold in `fmnist cv`, takes no more; torch and numpy's default_rng take larger ones).
MAX_SEED = 2**32 - 1
SEED_RANGE = f"0 to {MAX_SEED} (2**32 - 1)"


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _bool_fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls) if f.type in ("bool", bool)}


def _problems(checks: dict[str, bool], of: Any = None) -> list[str]:
    """The failed checks' sentences; with `of`, also each of its bool fields that holds anything but a bool (the
    string "False" would otherwise pass for true)."""
    if of is not None:
        checks = {**checks, **{f"{name} must be true or false, got {getattr(of, name)!r}":
                               isinstance(getattr(of, name), bool) for name in sorted(_bool_fields(type(of)))}}
    return [what for what, ok in checks.items() if not ok]


def _raise(kind: str, problems: list[str]) -> None:
    if problems:
        raise UsageError(f"invalid {kind}: {'; '.join(problems)}")


@dataclass(frozen=True)
class OptimizerConfig:
    """Optimizer settings. Adam defaults are Keras' (lr 1e-3, betas 0.9/0.999, eps 1e-7).

    `muon` updates the convolution filters with Muon (fmnist.train.muon: Nesterov momentum `muon_momentum`, the
    update orthogonalized, each filter bank's norm held fixed) at `muon_lr`, and every other parameter with SGD
    at `lr`, `momentum`, `nesterov` and `weight_decay`; the schedule scales both rates alike."""

    name: Literal["sgd", "adam", "adamw", "muon"] = "sgd"
    lr: float = 0.01
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-7
    # Learning-rate multiplier of the BatchNorm biases, whose weight decay is divided by it (the decay per step,
    # lr * weight_decay, stays the same): airbench trains them at 64x the rate.
    norm_bias_lr: float = 1.0
    # The patch-whitening layer's bias trains for this many epochs, then stays where it is (airbench: 3 of
    # about 10); None trains it throughout, 0 never.
    whiten_bias_epochs: int | None = None
    muon_lr: float = 0.24  # name "muon": the filters' peak learning rate (airbench94_muon's 0.24)
    muon_momentum: float = 0.6  # name "muon": the filters' Nesterov momentum (airbench94_muon's 0.6)

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(self.betas))
        _raise("optimizer", _problems({
            f"name {self.name!r} is not one of {', '.join(OPTIMIZERS)}": self.name in OPTIMIZERS,
            f"lr must be a finite number >= 0 (--lr), got {self.lr!r}": _finite(self.lr) and self.lr >= 0,
            f"momentum must be in [0, 1), got {self.momentum!r}": _finite(self.momentum) and 0 <= self.momentum < 1,
            f"weight_decay must be a finite number >= 0, got {self.weight_decay!r}":
                _finite(self.weight_decay) and self.weight_decay >= 0,
            f"betas must be two numbers in [0, 1), got {self.betas!r}":
                len(self.betas) == 2 and all(_finite(b) and 0 <= b < 1 for b in self.betas),
            f"eps must be a finite number > 0, got {self.eps!r}": _finite(self.eps) and self.eps > 0,
            f"norm_bias_lr must be a finite number > 0, got {self.norm_bias_lr!r}":
                _finite(self.norm_bias_lr) and self.norm_bias_lr > 0,
            f"whiten_bias_epochs must be a whole number >= 0 or null, got {self.whiten_bias_epochs!r}":
                self.whiten_bias_epochs is None or (type(self.whiten_bias_epochs) is int and self.whiten_bias_epochs >= 0),
            f"muon_lr must be a finite number >= 0, got {self.muon_lr!r}": _finite(self.muon_lr) and self.muon_lr >= 0,
            f"muon_momentum must be in [0, 1), got {self.muon_momentum!r}":
                _finite(self.muon_momentum) and 0 <= self.muon_momentum < 1,
            "muon needs lr > 0 (the schedule scales muon_lr by lr's ratio)":
                self.name != "muon" or not _finite(self.lr) or self.lr > 0,
        }, of=self))


@dataclass(frozen=True)
class ScheduleConfig:
    """Learning-rate schedule, evaluated per optimizer step (see fmnist.train.schedules).

    constant:    lr
    keras_decay: lr / (1 + decay * step)           (Keras 2 `decay=`; MiniVGGNet uses decay = lr / epochs)
    onecycle:    linear warmup for `warmup` of training to lr, then linear decay to lr * `final`
    cosine:      linear warmup for `warmup`, then cosine to lr * `final`
    """

    name: Literal["constant", "keras_decay", "onecycle", "cosine"] = "constant"
    decay: float = 0.0
    warmup: float = 0.0  # fraction of all steps
    final: float = 0.0  # final lr as a fraction of the peak

    def __post_init__(self) -> None:
        _raise("schedule", _problems({
            f"name {self.name!r} is not one of {', '.join(SCHEDULES)}": self.name in SCHEDULES,
            f"decay must be a finite number >= 0, got {self.decay!r}": _finite(self.decay) and self.decay >= 0,
            f"warmup must be a fraction in [0, 1], got {self.warmup!r}": _finite(self.warmup) and 0 <= self.warmup <= 1,
            f"final must be a fraction in [0, 1], got {self.final!r}": _finite(self.final) and 0 <= self.final <= 1,
        }))


@dataclass(frozen=True)
class AugmentConfig:
    """Batch augmentation on the device (fmnist.train.augment). Zero/False/empty disables a transform."""

    crop_padding: int = 0  # pixels of zero padding for a random crop back to 28x28
    flip: bool = False  # random horizontal flip, p = 0.5
    erase: float = 0.0  # probability of random erasing per image
    # Alternating (derandomized) flips, after airbench: each image gets one random flip decision for the first
    # epoch and the opposite one every other epoch, so it is seen both ways in every two epochs.
    alternate_flip: bool = False
    # Progressive resizing: (side, epochs) trains the first `epochs` epochs on the batches scaled down to side x
    # side pixels (bilinear, antialiased) and the rest at full size, the last epoch always (small_epochs); empty
    # is off. The model must take the smaller images (one with global pooling: `resnet`).
    resize: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        _raise("augmentation", _problems({
            "alternate_flip needs flip": self.flip or not self.alternate_flip,
            f"resize is [side, epochs] with a side of 8..27 pixels and epochs >= 1, or [] for none; "
            f"got {self.resize!r}": _resize_ok(self.resize),
            f"crop_padding must be an integer in 0..14, got {self.crop_padding!r}":
                isinstance(self.crop_padding, int) and 0 <= self.crop_padding <= 14,
            f"erase must be a probability in [0, 1], got {self.erase!r}": _finite(self.erase) and 0 <= self.erase <= 1,
        }, of=self))
        object.__setattr__(self, "resize", tuple(self.resize))  # a JSON list and a tuple make equal configs

    @property
    def enabled(self) -> bool:
        """Whether any augmentation is asked for."""
        return bool(self.crop_padding or self.flip or self.erase or self.resize)

    def small_epochs(self, epochs: int) -> int:
        """How many of a run's first epochs train downsized: resize's number, but never the last epoch (so a run
        cut to fewer epochs, `--epochs 2` or a fine-tune, still ends at full size)."""
        return min(self.resize[1], epochs - 1) if self.resize else 0


def _resize_ok(value: Any) -> bool:
    """Empty, or [side, epochs] with a side of 8..27 and epochs >= 1."""
    if not isinstance(value, (list, tuple)):
        return False
    return not value or (len(value) == 2 and all(_whole(v) for v in value) and 8 <= value[0] <= 27 and value[1] >= 1)


_NESTED = {"optimizer": OptimizerConfig, "schedule": ScheduleConfig, "augment": AugmentConfig}


# Recipe fields that describe it rather than set how it trains (`fmnist train --set` does not offer them; a
# served model's card does not count them as changes).
ABOUT = ("name", "description", "seed_doc", "reported", "reported_note")


@dataclass(frozen=True)
class Recipe:
    """Architecture + loss + optimizer + schedule + epochs + batch size + validation protocol."""

    name: str
    description: str
    model: str
    model_args: dict[str, Any] = field(default_factory=dict)
    optimizer: OptimizerConfig = OptimizerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    epochs: int = 10
    batch_size: int = 32
    label_smoothing: float = 0.0
    augment: AugmentConfig = AugmentConfig()
    ema_decay: float = 0.0  # per-step decay of the weight EMA; 0 disables it
    drop_last: bool = False  # drop the last partial batch (Keras keeps it; fixed shapes suit torch.compile)
    tta_flip: bool = False  # average logits over the image and its mirror at evaluation
    # Also average over the image shifted by this many pixels up-left and down-right (weights 1/2 for the unshifted
    # views, 1/4 for each shift), airbench's multi-crop test-time augmentation: in the last epoch's validation, the
    # test figures and wherever the model file goes (predict, serve, the ONNX export), which records it.
    tta_shift: int = 0
    # airbench's lookahead: every 5 steps the weights move to an average of themselves kept with this decay,
    # ramped up as (progress)^3; at the end the model is the average. 0 disables it.
    lookahead: float = 0.0
    # Dynamic data pruning (fmnist.train.prune, after InfoBatch): from the second epoch until `prune_until` of the
    # run (never the last epoch), each epoch leaves out this fraction of the images whose last loss was below the
    # mean, and weighs the others of them up to keep the gradient unbiased. 0 disables it.
    prune: float = 0.0
    prune_until: float = 0.875
    # After the last step, every BatchNorm's running statistics are recomputed from this many training images
    # (unaugmented, the final weights), instead of the running averages over the last batches. 0 keeps those.
    bn_calibration: int = 0
    # Numerics of the forward/backward pass: "fp32", "bf16" (autocast; weights, optimizer and the logits
    # layer stay fp32, see fmnist.models.layers.Classifier) or "auto" (bf16 where the hardware runs it
    # natively). Chosen per recipe from measurements (docs/results.md): bf16 halves a `baseline` step on
    # CPU (4.2 -> 2.0 ms at batch 32) within the run-to-run noise of its accuracy once the logits are fp32.
    # `mlp` stays fp32: its step is dispatch overhead, and bf16 gains nothing there.
    precision: str = "auto"
    # Input normalization: x = (pixel / 255 - mean) / std. The seeds scale to [0, 1] only.
    mean: float = 0.0
    std: float = 1.0
    # Per-epoch validation: "test" where the seed validated on the test set (monitoring only: nothing is
    # selected on it), "holdout" holds out `val_fraction` of the training images, "none" skips it.
    validation: Validation = "test"
    val_fraction: float = 0.1
    seed_doc: str = ""  # which seed document the recipe reproduces
    reported: float | None = None  # the seed's reported test accuracy, in percent
    reported_note: str = ""

    def __post_init__(self) -> None:
        for key, typ in _NESTED.items():
            if not isinstance(getattr(self, key), typ):
                raise UsageError(f"invalid recipe {self.name!r}: {key} must be a {typ.__name__}")
        _raise(f"recipe {self.name!r}", _problems({
            "name must be a non-empty string": isinstance(self.name, str) and bool(self.name),
            "model must be a non-empty architecture name": isinstance(self.model, str) and bool(self.model),
            "model_args must be a dict": isinstance(self.model_args, dict),
            f"epochs must be a whole number >= 1, got {self.epochs!r}": _whole(self.epochs) and self.epochs >= 1,
            f"batch size must be a whole number >= 1, got {self.batch_size!r}": _whole(self.batch_size) and self.batch_size >= 1,
            f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}":
                _finite(self.label_smoothing) and 0 <= self.label_smoothing < 1,
            f"ema_decay must be in [0, 1), got {self.ema_decay!r}": _finite(self.ema_decay) and 0 <= self.ema_decay < 1,
            f"tta_shift must be a whole number in 0..4, got {self.tta_shift!r}":
                _whole(self.tta_shift) and 0 <= self.tta_shift <= 4,
            f"lookahead must be in [0, 1), got {self.lookahead!r}": _finite(self.lookahead) and 0 <= self.lookahead < 1,
            f"prune must be a fraction in [0, 1), got {self.prune!r}": _finite(self.prune) and 0 <= self.prune < 1,
            f"bn_calibration must be a whole number >= 0, got {self.bn_calibration!r}":
                _whole(self.bn_calibration) and self.bn_calibration >= 0,
            f"prune_until must be a fraction in [0, 1], got {self.prune_until!r}":
                _finite(self.prune_until) and 0 <= self.prune_until <= 1,
            f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}": self.precision in PRECISIONS,
            f"mean must be a finite number, got {self.mean!r}": _finite(self.mean),
            f"std must be a finite number > 0, got {self.std!r}": _finite(self.std) and self.std > 0,
            f"validation {self.validation!r} is not one of {', '.join(VALIDATIONS)}": self.validation in VALIDATIONS,
            f"val_fraction must be in (0, 1), got {self.val_fraction!r}": _finite(self.val_fraction) and 0 < self.val_fraction < 1,
        }, of=self))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Recipe:
        """Rebuild a recipe saved with `to_dict`; unknown keys are an error."""
        d = dict(d)
        for key, typ in _NESTED.items():
            if isinstance(d.get(key), dict):
                d[key] = _build(typ, d[key], f"recipe {key}")
        return _build(cls, d, "recipe")

    def replace(self, **changes: Any) -> Recipe:
        """A copy with `changes` applied (None values are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def _whole(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _build(cls: type, d: dict[str, Any], what: str) -> Any:
    """cls(**d), with unknown or missing keys as a UsageError naming them."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise UsageError(f"unknown {what} fields: {sorted(unknown)}")
    # A saved true/false setting that is a string or a number (`--set augment.flip=False` stored "False" before
    # such values were refused) is read as what it trained as: its truth value, so "False" was true.
    bools = _bool_fields(cls)
    d = {k: bool(v) if k in bools and isinstance(v, (str, int)) and not isinstance(v, bool) else v for k, v in d.items()}
    try:
        return cls(**d)
    except TypeError as e:
        raise UsageError(f"invalid {what}: {e}") from None


@dataclass(frozen=True)
class TrainOptions:
    """How to run a recipe (not what it is): seed, device, numerics."""

    seed: int = 0
    device: str = "auto"
    precision: str = "recipe"  # recipe | auto | bf16 | fp32: autocast dtype for forward/backward
    # Per-epoch validation numerics: "train" runs it in the training precision (bf16 for most recipes, the
    # cheaper pass), "fp32" in the numerics of the test figures. Either way through fmnist.inference.
    val_precision: str = "train"
    channels_last: bool = True
    compile: bool = False  # torch.compile the model (one-time cost, reported separately)
    threads: int | None = None  # intra-op threads; default every available core
    eval_batch_size: int = 1024
    progress_every: int = 50  # steps between progress updates (each one reads the running loss back)

    def __post_init__(self) -> None:
        _raise("training options", _problems({
            f"--seed must be a whole number from {SEED_RANGE}, got {self.seed!r}": _whole(self.seed) and 0 <= self.seed <= MAX_SEED,
            "--device must be a name such as auto, cpu or cuda": isinstance(self.device, str) and bool(self.device),
            f"--precision {self.precision!r} is not one of {', '.join(RUN_PRECISIONS)}": self.precision in RUN_PRECISIONS,
            f"val_precision {self.val_precision!r} is not one of {', '.join(VAL_PRECISIONS)}": self.val_precision in VAL_PRECISIONS,
            f"--threads must be a whole number >= 1, got {self.threads!r}": self.threads is None or (_whole(self.threads) and self.threads >= 1),
            f"eval_batch_size must be >= 1, got {self.eval_batch_size!r}": _whole(self.eval_batch_size) and self.eval_batch_size >= 1,
            f"progress_every must be >= 1, got {self.progress_every!r}": _whole(self.progress_every) and self.progress_every >= 1,
        }, of=self))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainOptions:
        """The options saved with `to_dict` (keys of other objects are ignored: config.json mixes them)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return _build(cls, {k: v for k, v in d.items() if k in names}, "training options")


# config.json's "options" object holds the TrainOptions fields and these run fields side by side.
_RUN_FIELDS = ("dataset", "data_dir", "limit", "data_source", "train_images", "init", "mix")


@dataclass(frozen=True)
class RunConfig:
    """Everything one `fmnist train` needs, saved as config.json beside the results."""

    recipe: Recipe
    options: TrainOptions = TrainOptions()
    dataset: str = "fashion-mnist"
    data_dir: Path | None = None
    limit: int | None = None  # use only this many training images (a seeded random subset)
    out: Path | None = None  # run directory; default runs/<recipe>-<timestamp> (not saved: it is where the file is)
    # Filled in once the data is loaded (None before): where it came from and how many images trained.
    data_source: str | None = None
    train_images: int | None = None
    init: Path | None = None  # a model file whose weights training starts from (fine-tuning)
    mix: int = 0  # with --dataset folder: this many Fashion-MNIST training images mixed in, so it is not forgotten

    def __post_init__(self) -> None:
        _raise("run", _problems({
            f"--mix must be a whole number >= 0, got {self.mix!r}": _whole(self.mix) and self.mix >= 0,
            "recipe must be a Recipe": isinstance(self.recipe, Recipe),
            "options must be TrainOptions": isinstance(self.options, TrainOptions),
            "dataset must be a non-empty name": isinstance(self.dataset, str) and bool(self.dataset),
            f"--limit must be a whole number >= 1, got {self.limit!r}": self.limit is None or (_whole(self.limit) and self.limit >= 1),
        }))
        # Stored absolute, so the run's data and starting model are found again from any working directory.
        for key in ("data_dir", "init"):
            value = getattr(self, key)
            if value is not None:
                object.__setattr__(self, key, Path(value).expanduser().absolute())

    def to_dict(self) -> dict[str, Any]:
        """config.json's content: {"recipe": {...}, "options": {TrainOptions fields + run fields}}."""
        options = self.options.to_dict() | {
            "dataset": self.dataset,
            "data_dir": str(self.data_dir) if self.data_dir else None,
            "limit": self.limit,
            "data_source": self.data_source,
            "train_images": self.train_images,
            "init": str(self.init) if self.init else None,
            "mix": self.mix,
        }
        return {"recipe": self.recipe.to_dict(), "options": options}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        """Rebuild the config from config.json's content (other top-level keys, such as `created`, are ignored)."""
        if not isinstance(d.get("recipe"), dict):
            raise UsageError("a run configuration needs a 'recipe' object")
        options = d.get("options") or {}
        if not isinstance(options, dict):
            raise UsageError("a run configuration's 'options' must be an object")
        run = {k: options.get(k) for k in _RUN_FIELDS if options.get(k) is not None}
        for key in ("data_dir", "init"):
            if run.get(key):
                run[key] = Path(run[key])
        return cls(recipe=Recipe.from_dict(d["recipe"]), options=TrainOptions.from_dict(options), **run)
