"""The training loop: `fit(recipe, data, options)` runs `train_epoch` per epoch, each a run of `train_step`s.

The whole split lives on the device as one tensor and batches are sliced from a shuffled index, so there is no
per-sample Dataset/DataLoader on the hot path. Nothing inside a step reads a value back to the host: losses and
correct counts are summed on the device and read once per progress update (every `progress_every` steps) and
once per epoch. Per-epoch validation runs through fmnist.inference, the path of the test figures.

`fit` changes no process-wide state (threads, allocator): the entry points do that (fmnist.runtime).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fmnist.config import Recipe, TrainOptions
from fmnist.data import data_digest
from fmnist.data.transforms import to_device_tensors
from fmnist.errors import FmnistError, UsageError
from fmnist.inference import batched_logits, loss_and_accuracy
from fmnist.models import build_model
from fmnist.ops import conv_pool_relu as fused
from fmnist.ops import pool_norm_relu
from fmnist.runtime import autocast, resolve_device, resolve_precision
from fmnist.train import prune
from fmnist.train.augment import alternating_flips, augment_batch, downsize, flip_plan
from fmnist.train.ema import Lookahead, WeightEMA, lookahead_decay, recalibrate_batchnorm
from fmnist.train.optim import freeze_groups, make_optimizer, param_groups
from fmnist.train.resume import Position, load_checkpoint, save_checkpoint
from fmnist.train.schedules import learning_rate
from fmnist.train.stats import EpochStats, RunningStats

EMA_EVERY = 5  # steps between EMA updates (decay**5 each time): the average costs 1/5 as much
EMA_CALIBRATION = 10_000  # training images that set the averaged weights' BatchNorm statistics
LOOKAHEAD_EVERY = 5  # steps between lookahead updates (airbench's)
WHITENING_IMAGES = 5_000  # training images whose patches set a patch-whitening stem

Arrays = tuple[np.ndarray, np.ndarray]  # uint8 images [N, 28, 28], int64 labels [N]


@dataclass(frozen=True)
class TrainData:
    """What to fit on: training arrays, optional validation arrays (scored after every epoch), the class count."""

    train: Arrays
    val: Arrays | None
    num_classes: int


class Callbacks:
    """Progress hooks; the default does nothing. The CLI passes a Rich progress bar."""

    def note(self, message: str) -> None:
        """Something the person training should know before it starts (a file of the data that was skipped)."""

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None: ...

    def step(self, step: int, loss: float, acc: float) -> None: ...

    def epoch_end(self, stats: EpochStats) -> None: ...

    def should_stop(self) -> bool:
        """Asked after every step: True stops training there (the CLI answers True after Ctrl-C or SIGTERM)."""
        return False

    def close(self) -> None:
        """Training ends in the middle of an epoch (it diverged): take down what epoch_start put up."""


class TrainingDiverged(FmnistError):
    """The training loss became NaN or infinite: the settings (most often the learning rate) do not train."""

    exit_code = 2


class TrainingInterrupted(FmnistError):
    """Training stopped on request after a finished step; the checkpoint (if any) holds everything to resume."""

    exit_code = 130  # as a shell reports a process ended by SIGINT

    def __init__(self, message: str, checkpoint: Path | None) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint


@dataclass
class TrainResult:
    """The trained model (eval mode, on its device) and what happened."""

    model: nn.Module
    history: list[EpochStats]
    seconds: float  # training wall time, validation included
    device: torch.device
    precision: str
    threads: int
    extras: dict = field(default_factory=dict)


@dataclass
class Loop:
    """Everything the steps of one `fit` share, built once by `start`; `step` counts optimizer steps so far."""

    recipe: Recipe
    model: nn.Module
    forward: nn.Module  # the model, or its torch.compile wrapper
    optimizer: torch.optim.Optimizer
    params: list[torch.Tensor]
    ema: WeightEMA | None
    lookahead: Lookahead | None
    amp: torch.dtype | None  # autocast dtype of forward/backward; None is fp32
    mixed: object  # one autocast context, entered every step (building it costs more than entering it)
    x: torch.Tensor  # normalized training images [N, 1, 28, 28] on the device
    y: torch.Tensor  # labels [N]
    shuffle: torch.Generator  # the epoch permutations (CPU)
    augment: torch.Generator  # the augmentations (on the device)
    background: float  # a black pixel, normalized: what crops pad with and erasing fills in
    flips: torch.Tensor | None  # alternating flips: each image's flip in even epochs (bool [N]); else None
    steps_per_epoch: int
    total_steps: int
    small_epochs: int  # progressive resizing: the first epochs that train downsized (AugmentConfig.small_epochs)
    # Dynamic data pruning (Recipe.prune, fmnist.train.prune): each image's last loss (+inf until scored) and this
    # epoch's loss weight per image; None without pruning.
    scores: torch.Tensor | None = None
    weights: torch.Tensor | None = None
    step: int = 0
    epoch: int = 1  # the epoch in progress, 1-based
    # Where the learning-rate schedule stands, in full epochs' steps: equal to `step` unless pruning shortened
    # an epoch, whose steps then each advance it by steps_per_epoch / the epoch's steps.
    schedule_step: float = 0.0
    schedule_stride: float = 1.0
    epoch_steps: int = 0  # the steps of the epoch in progress (fewer than steps_per_epoch in a pruned epoch)
    lr: float = float("nan")  # the schedule's learning rate last set (each group gets it times its lr_scale)

    @property
    def device(self) -> torch.device:
        return self.x.device


def start(recipe: Recipe, data: TrainData, options: TrainOptions, init: dict[str, torch.Tensor] | None = None) -> Loop:
    """Build the model, optimizer and device tensors for `recipe`, seeded by options.seed; with `init`, the model
    starts from those weights (a state dict of the same architecture)."""
    device = resolve_device(options.device)
    amp = resolve_precision(recipe.precision if options.precision == "recipe" else options.precision, device)
    torch.manual_seed(options.seed)
    model = build_model(recipe.model, in_channels=1, num_classes=data.num_classes, **recipe.model_args)
    if init is not None:
        try:
            model.load_state_dict(init, strict=True)
        except RuntimeError as e:
            lines = [line.strip() for line in str(e).splitlines() if line.strip()] or [type(e).__name__]
            detail = lines[1] if len(lines) > 1 and lines[0].endswith(":") else lines[0]  # torch's first is a heading
            raise UsageError(f"the starting weights do not fit recipe {recipe.name!r} ({recipe.model} "
                             f"{recipe.model_args}, {data.num_classes} classes): {detail}") from None
    model = model.to(device)
    if options.channels_last:
        model = model.to(memory_format=torch.channels_last)
    x, y = to_device_tensors(*data.train, device, recipe.mean, recipe.std, options.channels_last)
    n, bs = len(x), recipe.batch_size
    if n == 0:
        raise ValueError("no training images")
    if init is None and hasattr(model, "fit_whitening"):
        sample = torch.randperm(n, generator=torch.Generator().manual_seed(options.seed))[:WHITENING_IMAGES]
        model.fit_whitening(x[sample.to(device)])
    small_epochs = recipe.augment.small_epochs(recipe.epochs)
    if small_epochs:
        _check_size(model, x[:2], recipe)
    if bs == 1 and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        raise UsageError(f"recipe {recipe.name!r} has BatchNorm layers, which need at least 2 images per batch; "
                         "use --batch-size 2 or more")
    steps_per_epoch = _steps(n, bs, recipe.drop_last)
    groups = param_groups(model, recipe.optimizer)
    params = [p for g in groups for p in g["params"]]
    return Loop(
        recipe=recipe,
        model=model,
        forward=torch.compile(model) if options.compile else model,
        optimizer=make_optimizer(recipe.optimizer, groups, recipe.optimizer.lr, device, amp or torch.float32),
        params=params,
        ema=WeightEMA(model, recipe.ema_decay) if recipe.ema_decay else None,
        lookahead=Lookahead(model) if recipe.lookahead else None,
        amp=amp,
        mixed=autocast(device, amp),
        x=x,
        y=y,
        shuffle=torch.Generator(device="cpu").manual_seed(options.seed),
        augment=torch.Generator(device=device).manual_seed(options.seed + 1),
        background=(0.0 - recipe.mean) / recipe.std,
        flips=(flip_plan(n, torch.Generator(device=device).manual_seed(options.seed + 2), device)
               if recipe.augment.alternate_flip else None),
        steps_per_epoch=steps_per_epoch,
        total_steps=steps_per_epoch * recipe.epochs,
        small_epochs=small_epochs,
        scores=torch.full((n,), prune.UNSCORED, device=device) if recipe.prune else None,
    )


def kernel_calls() -> dict[str, int]:
    """Forward runs of each fused CPU kernel so far in this process: a count that moves means the kernel ran."""
    return {"conv_pool_relu": fused.calls(), "pool_norm_relu": pool_norm_relu.calls()}


def _steps(n: int, bs: int, drop_last: bool) -> int:
    """Optimizer steps in an epoch of n images at batch size bs."""
    steps = n // bs if drop_last and n >= bs else (n + bs - 1) // bs
    if not drop_last and n > bs and n % bs == 1:
        # A last batch of one image would fail in BatchNorm's training mode (one value per channel has no
        # variance): it joins the batch before it instead (train_epoch's last slice runs to the end).
        steps -= 1
    return steps


@torch.no_grad()
def _check_size(model: nn.Module, x: torch.Tensor, recipe: Recipe) -> None:
    """A UsageError unless `model` takes the images at progressive resizing's smaller size (a model that flattens
    into a dense layer, or one that pools a small image away, cannot)."""
    side = recipe.augment.resize[0]
    was_training = model.training
    model.eval()
    try:
        model(downsize(x, side))
    except RuntimeError as e:
        raise UsageError(f"recipe {recipe.name!r} ({recipe.model}) cannot train on {side}x{side} images "
                         f"(augment.resize): {str(e).splitlines()[0]}; use a larger side, or augment.resize=[] "
                         "to turn it off") from None
    finally:
        model.train(was_training)


def train_step(loop: Loop, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One optimizer step on the images at `idx`; returns (loss, logits, labels) still on the device."""
    recipe, opt = loop.recipe, loop.optimizer
    xb, yb = loop.x.index_select(0, idx), loop.y.index_select(0, idx)
    if recipe.augment.enabled:
        epoch = loop.epoch - 1  # 0-based
        flips = None if loop.flips is None else alternating_flips(loop.flips, idx, epoch)
        xb = augment_batch(xb, recipe.augment, loop.augment, loop.background, flips, epoch < loop.small_epochs)
    lr = learning_rate(recipe.schedule, recipe.optimizer.lr, loop.schedule_step, loop.total_steps)
    if lr != loop.lr:  # setting it costs as much as a small kernel; most steps skip it
        loop.lr = lr
        for group in opt.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
    with loop.mixed:
        logits = loop.forward(xb)
    if loop.scores is None:
        loss = F.cross_entropy(logits.float(), yb, label_smoothing=recipe.label_smoothing)
    else:  # each image's loss is kept for pruning's next choice; the weights undo a pruned epoch's bias
        losses = F.cross_entropy(logits.float(), yb, label_smoothing=recipe.label_smoothing, reduction="none")
        loop.scores.index_copy_(0, idx, losses.detach())
        loss = losses.mean() if loop.weights is None else (losses * loop.weights.index_select(0, idx)).mean()
    for p in loop.params:  # what zero_grad(set_to_none=True) does, without its ~20 us of machinery
        p.grad = None
    loss.backward()
    opt.step()
    loop.step += 1
    loop.schedule_step += loop.schedule_stride
    if loop.ema is not None and loop.step % EMA_EVERY == 0:
        loop.ema.update(recipe.ema_decay**EMA_EVERY)
    if loop.lookahead is not None and loop.step % LOOKAHEAD_EVERY == 0:
        loop.lookahead.update(lookahead_decay(recipe.lookahead, loop.schedule_step, loop.total_steps))
    return loss, logits, yb


class _Stop(Exception):
    """Raised inside an epoch when the callbacks ask to stop; carries where the epoch stood."""

    def __init__(self, position: Position) -> None:
        self.position = position


def train_epoch(loop: Loop, epoch: int, cb: Callbacks, progress_every: int, position: Position | None = None
                ) -> tuple[float, float]:
    """One pass over a fresh permutation of the training images (or, from a checkpoint's `position`, the rest of
    one); returns (mean loss, accuracy) of the epoch. Stops after a step when `cb.should_stop()` says so."""
    loop.model.train()
    loop.epoch = epoch
    if freeze_groups(loop.optimizer, epoch):
        loop.lr = float("nan")  # the next step sets every group's learning rate again
    bs = loop.recipe.batch_size
    running = RunningStats(loop.device)
    if position is not None and position.perm is not None:
        perm, first = position.perm, position.done
        running.restore(position.running)
    else:
        perm, first = torch.randperm(len(loop.x), generator=loop.shuffle).to(loop.device), 0
        loop.weights = None
        if loop.scores is not None and epoch in prune.epochs_pruned(loop.recipe.prune, loop.recipe.prune_until,
                                                                     loop.recipe.epochs):
            kept, loop.weights = prune.select(loop.scores, loop.recipe.prune, loop.augment)
            perm = kept[torch.randperm(len(kept), generator=loop.shuffle).to(loop.device)]
    steps = loop.epoch_steps = _steps(len(perm), bs, loop.recipe.drop_last)
    loop.schedule_stride = loop.steps_per_epoch / steps
    base = (epoch - 1) * loop.steps_per_epoch
    cb.epoch_start(epoch, loop.recipe.epochs, steps)
    for i in range(first, steps):
        # Computed, not summed step by step: an epoch resumed at step `first` has the same schedule, to the last bit.
        loop.schedule_step = base + i * loop.schedule_stride
        end = len(perm) if i + 1 == steps and not loop.recipe.drop_last else (i + 1) * bs
        running.add(*train_step(loop, perm[i * bs : end]))
        if (i + 1) % progress_every == 0 or i + 1 == steps:
            cb.step(i + 1, *running.read())
        if cb.should_stop():
            raise _Stop(Position(epoch, i + 1, perm, running.totals()))
    return running.read()


def validate(loop: Loop, xv: torch.Tensor, yv: torch.Tensor, options: TrainOptions,
             calibration: torch.Tensor | None, final: bool = True) -> tuple[float, float]:
    """Held-out (loss, accuracy) through fmnist.inference; the averaged weights (with their own BatchNorm
    statistics) when the recipe keeps a weight EMA. Shift test-time augmentation (6 passes instead of 2) is
    spent on the `final` epoch only: the others are validated with the flip alone."""
    amp = loop.amp if options.val_precision == "train" else None
    shift = loop.recipe.tta_shift if final else 0

    def score() -> tuple[float, float]:
        out = batched_logits(loop.model, xv, options.eval_batch_size, loop.recipe.tta_flip, amp, shift)
        return loss_and_accuracy(out, yv)

    if loop.ema is None:
        return score()
    loop.ema.swap()
    try:
        recalibrate_batchnorm(loop.model, loop.x[calibration], options.eval_batch_size, loop.amp)
        return score()
    finally:
        loop.ema.swap()


def fit(recipe: Recipe, data: TrainData, options: TrainOptions, callbacks: Callbacks | None = None,
        init: dict[str, torch.Tensor] | None = None, checkpoint: Path | None = None, resume: bool = False,
        tag: dict | None = None) -> TrainResult:
    """Train `recipe` on data.train (from the weights `init` when given); validate on data.val after every epoch.

    With `checkpoint`, the loop's whole state is written there after every epoch and when the callbacks ask to
    stop (then TrainingInterrupted is raised); with `resume`, training continues from that file, which must name
    the same recipe, seed, training images (their digest), precision and `tag` (e.g. a cross-validation fold's
    identity).
    """
    cb = callbacks or Callbacks()
    loop = start(recipe, data, options, init)
    identity = {"recipe": recipe.to_dict(), "seed": options.seed, "train_images": len(loop.x), "tag": tag,
                "data": data_digest(*data.train), "precision": "bf16" if loop.amp == torch.bfloat16 else "fp32"}
    position = load_checkpoint(checkpoint, loop, identity) if resume and checkpoint else Position(1)
    xv = yv = None
    if data.val is not None and len(data.val[0]):
        xv, yv = to_device_tensors(*data.val, loop.device, recipe.mean, recipe.std, options.channels_last)
    # Training images whose BatchNorm statistics the averaged weights, or the final weights (Recipe.bn_calibration),
    # get: a fixed seeded sample.
    calibration = None
    if loop.ema is not None or recipe.bn_calibration:
        order = torch.randperm(len(loop.x), generator=torch.Generator().manual_seed(options.seed))
        calibration = order[:recipe.bn_calibration or EMA_CALIBRATION].to(loop.device)
    history = [EpochStats(**row) for row in position.history]
    calls_before = kernel_calls()
    t_start = time.perf_counter() - position.seconds
    for epoch in range(position.epoch, recipe.epochs + 1):
        t0 = time.perf_counter() - (position.epoch_seconds if epoch == position.epoch else 0.0)  # resumed mid-epoch
        try:
            train_loss, train_acc = train_epoch(loop, epoch, cb, options.progress_every,
                                                position if epoch == position.epoch else None)
        except _Stop as stop:
            stop.position.history, stop.position.seconds = [h.as_dict() for h in history], time.perf_counter() - t_start
            stop.position.epoch_seconds = time.perf_counter() - t0
            saved = save_checkpoint(checkpoint, loop, stop.position, identity) if checkpoint else None
            raise TrainingInterrupted(f"training stopped in epoch {epoch} after step {stop.position.done} of "
                                      f"{loop.epoch_steps}", saved) from None
        if not math.isfinite(train_loss):  # every later epoch would be NaN too: stop, and say why
            cb.close()
            raise TrainingDiverged(f"training diverged in epoch {epoch}: the training loss is {train_loss}, not a "
                                   f"finite number (learning rate {recipe.optimizer.lr:g})")
        lr = loop.optimizer.param_groups[0]["lr"]
        final = epoch == recipe.epochs
        if final and loop.lookahead is not None:
            loop.lookahead.update(1.0)  # the model becomes the average, before its last validation
        if final and recipe.bn_calibration and loop.ema is None:
            recalibrate_batchnorm(loop.model, loop.x[calibration], options.eval_batch_size, loop.amp)
        val_loss, val_acc = validate(loop, xv, yv, options, calibration, final) if xv is not None else (None, None)
        stats = EpochStats(epoch, train_loss, train_acc, val_loss, val_acc, lr, time.perf_counter() - t0)
        history.append(stats)
        cb.epoch_end(stats)
        if checkpoint:
            save_checkpoint(checkpoint, loop, Position(epoch + 1, history=[h.as_dict() for h in history],
                                                       seconds=time.perf_counter() - t_start), identity)
    if not all(bool(torch.isfinite(p).all()) for p in loop.model.parameters()):  # a last step can still blow up
        raise TrainingDiverged(f"training diverged: the final weights hold NaN or infinite values (learning rate "
                               f"{recipe.optimizer.lr:g})")
    if loop.ema is not None:
        loop.ema.swap()  # the averaged weights are the final model, with BatchNorm statistics of their own
        recalibrate_batchnorm(loop.model, loop.x[calibration], options.eval_batch_size, loop.amp)
    loop.model.eval()
    kernels = [name for name, n in kernel_calls().items() if n > calls_before[name]]
    return TrainResult(loop.model, history, time.perf_counter() - t_start, loop.device,
                       "fp32" if loop.amp is None else "bf16", torch.get_num_threads(), extras={"fused_kernels": kernels})
