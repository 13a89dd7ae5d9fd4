"""The training loop: the whole split lives on the device as one tensor and batches are sliced from a
shuffled index, so there is no per-sample Dataset/DataLoader on the hot path.

Nothing inside a step reads a value back to the host: losses and correct counts are summed on the device
and read once per progress update (every `progress_every` steps) and once per epoch.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fmnist.engine import fused
from fmnist.engine.augment import augment_batch, is_enabled
from fmnist.engine.device import keep_freed_memory, resolve_device, resolve_precision, set_threads
from fmnist.engine.ema import WeightEMA, recalibrate_batchnorm
from fmnist.engine.schedules import learning_rate
from fmnist.models import build_model
from fmnist.predictor import normalize
from fmnist.recipes import OptimizerConfig, Recipe


EMA_EVERY = 5  # steps between EMA updates (decay**5 each time): the average costs 1/5 as much
EMA_CALIBRATION = 10_000  # training images that set the averaged weights' BatchNorm statistics


@dataclass(frozen=True)
class TrainOptions:
    """How to run a recipe (not what it is): seed, device, numerics."""

    seed: int = 0
    device: str = "auto"
    precision: str = "recipe"  # recipe | auto | bf16 | fp32: autocast dtype for forward/backward
    channels_last: bool = True
    compile: bool = False  # torch.compile the model (one-time cost, reported separately)
    threads: int | None = None  # intra-op threads; default every available core
    eval_batch_size: int = 1024
    progress_every: int = 50  # steps between progress updates (each one reads the running loss back)


@dataclass
class EpochStats:
    """One row of history.csv."""

    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float | None
    val_acc: float | None
    lr: float
    seconds: float

    def as_dict(self) -> dict:
        """The row as a dict (keys in history.csv order)."""
        return dict(self.__dict__)


class Callbacks:
    """Progress hooks; the default does nothing. The CLI passes a Rich progress bar."""

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None: ...

    def step(self, step: int, loss: float, acc: float) -> None: ...

    def epoch_end(self, stats: EpochStats) -> None: ...


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


def to_device_tensors(
    images: np.ndarray, labels: np.ndarray, device: torch.device, mean: float, std: float, channels_last: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 [N,28,28] and int64 [N] arrays -> normalized float32 [N,1,28,28] and int64 [N] on `device`."""
    # The same normalization as inference (fmnist.predictor.normalize), so a saved model sees what it saw.
    x = normalize(torch.from_numpy(np.ascontiguousarray(images)).to(device), mean, std)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.from_numpy(np.ascontiguousarray(labels)).to(device=device, dtype=torch.long)
    return x, y


def make_optimizer(cfg: OptimizerConfig, params, lr: float, device: torch.device) -> torch.optim.Optimizer:
    """The recipe's optimizer with fused kernels (one kernel for every parameter's update)."""
    # Fused SGD/Adam/AdamW run on CPU as well as CUDA since torch 2.4; on CPU they took a `baseline` step from
    # ~3.8 to ~2.8 ms against foreach. Older builds fall back to foreach.
    kw: dict = {"fused": True} if _fused_supported(device) else {"foreach": True}
    if cfg.name == "sgd":
        sgd = LeanSGD if kw.get("fused") else torch.optim.SGD
        return sgd(params, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay, **kw)
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay, **kw)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay, **kw)
    raise ValueError(f"unknown optimizer {cfg.name!r}")


class LeanSGD(torch.optim.SGD):
    """Fused SGD whose step() calls the fused kernel directly.

    torch.optim.SGD.step() wraps that same kernel in generic machinery (profiler hooks, grad-mode guards,
    grouping tensors by device and dtype, per-parameter bookkeeping): about 90 us per call here, 7% of a
    1.3 ms `baseline` step (measured in one process, alternating blocks of steps: 1.317 -> 1.223 ms). The
    update is the same kernel with the same arguments, and the momentum buffers live in `self.state[p]` as
    SGD keeps them, so state_dict() is unchanged. Anything off the common path (a closure, sparse or missing
    gradients, parameters on several devices or of several dtypes) goes to SGD.step.
    """

    def step(self, closure=None):
        if closure is not None:
            return super().step(closure)
        with torch.no_grad():
            for group in self.param_groups:
                if not self._lean_step(group):
                    return super().step()
        return None

    def _lean_step(self, group: dict) -> bool:
        """One group's update through torch._fused_sgd_; False (nothing done) when it does not apply."""
        params = group["params"]
        grads = [p.grad for p in params]
        first = params[0]
        if any(g is None or g.is_sparse for g in grads) or any(
            p.device != first.device or p.dtype != first.dtype for p in params
        ):
            return False
        momentum = group["momentum"]
        bufs: list[torch.Tensor] = []
        first_step = False
        if momentum != 0:
            states = [self.state[p] for p in params]
            first_step = "momentum_buffer" not in states[0]
            if first_step:
                for st, g in zip(states, grads):
                    st["momentum_buffer"] = torch.empty_like(g)  # the kernel fills it on the first step
            bufs = [st["momentum_buffer"] for st in states]
        torch._fused_sgd_(
            params, grads, bufs, weight_decay=group["weight_decay"], momentum=momentum, lr=group["lr"],
            dampening=group["dampening"], nesterov=group["nesterov"], maximize=group["maximize"],
            is_first_step=first_step,
        )
        return True


def _fused_supported(device: torch.device) -> bool:
    try:
        torch.optim.SGD([torch.zeros(1, device=device, requires_grad=True)], lr=0.1, fused=True)
        return True
    except (RuntimeError, TypeError, ValueError):
        return False


def autocast(device: torch.device, dtype: torch.dtype | None):
    """An autocast context for `dtype`, or a no-op for fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.inference_mode()
def evaluate_tensors(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int = 1024,
    amp: torch.dtype | None = None,
    tta_flip: bool = False,
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of `model` on device tensors (model left in eval mode)."""
    model.eval()
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size]
        with autocast(x.device, amp):
            logits = model(xb).float()
            if tta_flip:
                logits = (logits + model(xb.flip(3)).float()) / 2
        yb = y[i : i + batch_size]
        loss_sum += F.cross_entropy(logits, yb, reduction="sum")
        correct += (logits.argmax(1) == yb).sum()
    n = max(1, len(x))
    return loss_sum.item() / n, correct.item() / n


class RunningStats:
    """The epoch's running training loss and accuracy, kept on the device until read.

    A step only appends its loss and predictions (one argmax kernel); the sums happen when the progress bar
    or the epoch asks (every `progress_every` steps). Summing on the device every step instead cost about
    50 us of a 1.3 ms `baseline` step.
    """

    def __init__(self, device: torch.device) -> None:
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.long)
        self.seen = 0
        self._losses: list[torch.Tensor] = []
        self._sizes: list[int] = []
        self._preds: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []

    def add(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Record one batch: its mean loss, its logits' predictions and its labels."""
        self._losses.append(loss.detach())
        self._sizes.append(len(labels))
        self._preds.append(logits.detach().argmax(1))
        self._labels.append(labels)

    def read(self) -> tuple[float, float]:
        """(mean loss, accuracy) over every batch added so far this epoch: one read back from the device."""
        if self._losses:
            sizes = torch.tensor(self._sizes, dtype=torch.float32, device=self.loss_sum.device)
            self.loss_sum += (torch.stack(self._losses).float() * sizes).sum()
            self.correct += (torch.cat(self._preds) == torch.cat(self._labels)).sum()
            self.seen += sum(self._sizes)
            for pending in (self._losses, self._sizes, self._preds, self._labels):
                pending.clear()
        seen = max(1, self.seen)
        return self.loss_sum.item() / seen, self.correct.item() / seen


def fit(
    recipe: Recipe,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray] | None,
    options: TrainOptions,
    num_classes: int,
    callbacks: Callbacks | None = None,
) -> TrainResult:
    """Train `recipe` on uint8 images/labels `train`; validate on `val` after every epoch when given."""
    cb = callbacks or Callbacks()
    device = resolve_device(options.device)
    threads = set_threads(options.threads)
    if device.type == "cpu":
        keep_freed_memory()
    amp = resolve_precision(recipe.precision if options.precision == "recipe" else options.precision, device)
    torch.manual_seed(options.seed)
    gen = torch.Generator(device="cpu").manual_seed(options.seed)

    model = build_model(recipe.model, in_channels=1, num_classes=num_classes, **recipe.model_args).to(device)
    if options.channels_last:
        model = model.to(memory_format=torch.channels_last)
    ema = WeightEMA(model, recipe.ema_decay) if recipe.ema_decay else None
    # Training images whose BatchNorm statistics the averaged weights get (a fixed seeded sample).
    calibration = None
    if ema is not None:
        order = torch.randperm(len(train[1]), generator=torch.Generator().manual_seed(options.seed))
        calibration = order[:EMA_CALIBRATION].to(device)
    forward = torch.compile(model) if options.compile else model
    augmenting = is_enabled(recipe.augment)
    background = (0.0 - recipe.mean) / recipe.std  # a black pixel, normalized
    aug_gen = torch.Generator(device=device).manual_seed(options.seed + 1)
    x, y = to_device_tensors(*train, device, recipe.mean, recipe.std, options.channels_last)
    xv = yv = None
    if val is not None and len(val[0]):
        xv, yv = to_device_tensors(*val, device, recipe.mean, recipe.std, options.channels_last)

    params = list(model.parameters())
    opt = make_optimizer(recipe.optimizer, params, recipe.optimizer.lr, device)
    mixed = autocast(device, amp)  # one context, entered every step (building it costs more than entering)
    n, bs = len(x), recipe.batch_size
    steps_per_epoch = n // bs if recipe.drop_last and n >= bs else (n + bs - 1) // bs
    total_steps = steps_per_epoch * recipe.epochs
    history: list[EpochStats] = []
    step = 0
    fused_before = fused.calls()
    t_start = time.perf_counter()
    for epoch in range(1, recipe.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        cb.epoch_start(epoch, recipe.epochs, steps_per_epoch)
        perm = torch.randperm(n, generator=gen).to(device)
        running = RunningStats(device)
        for i in range(steps_per_epoch):
            idx = perm[i * bs : (i + 1) * bs]
            xb, yb = x.index_select(0, idx), y.index_select(0, idx)
            if augmenting:
                xb = augment_batch(xb, recipe.augment, aug_gen, background)
            lr = learning_rate(recipe.schedule, recipe.optimizer.lr, step, total_steps)
            if lr != opt.param_groups[0]["lr"]:  # setting it costs as much as a small kernel; most steps skip it
                for group in opt.param_groups:
                    group["lr"] = lr
            with mixed:
                logits = forward(xb)
            loss = F.cross_entropy(logits.float(), yb, label_smoothing=recipe.label_smoothing)
            for p in params:  # what zero_grad(set_to_none=True) does, without its ~20 us of machinery
                p.grad = None
            loss.backward()
            opt.step()
            step += 1
            if ema is not None and step % EMA_EVERY == 0:
                ema.update(recipe.ema_decay**EMA_EVERY)
            running.add(loss, logits, yb)
            if (i + 1) % options.progress_every == 0 or i + 1 == steps_per_epoch:
                cb.step(i + 1, *running.read())
        train_loss, train_acc = running.read()
        val_loss = val_acc = None
        if xv is not None:
            if ema is not None:
                ema.swap()
                recalibrate_batchnorm(model, x[calibration], options.eval_batch_size, amp)
            val_loss, val_acc = evaluate_tensors(model, xv, yv, options.eval_batch_size, amp, recipe.tta_flip)
            if ema is not None:
                ema.swap()
        stats = EpochStats(epoch, train_loss, train_acc, val_loss, val_acc, lr, time.perf_counter() - t0)
        history.append(stats)
        cb.epoch_end(stats)
    if ema is not None:
        ema.swap()  # the averaged weights are the final model, with BatchNorm statistics of their own
        recalibrate_batchnorm(model, x[calibration], options.eval_batch_size, amp)
    model.eval()
    precision = "fp32" if amp is None else "bf16"
    kernels = ["conv_pool_relu"] if fused.calls() > fused_before else []
    return TrainResult(model, history, time.perf_counter() - t_start, device, precision, threads,
                       extras={"fused_kernels": kernels})
