"""Learning-rate schedules as pure functions of the step: lr(step) for step in [0, total_steps)."""

from __future__ import annotations

import math

from fmnist.config import ScheduleConfig


def learning_rate(cfg: ScheduleConfig, base_lr: float, step: int, total_steps: int) -> float:
    """The learning rate at optimizer step `step` (0-based) of `total_steps`."""
    if cfg.name == "constant":
        return base_lr
    if cfg.name == "keras_decay":
        # Keras 2 `decay=`: lr_t = lr / (1 + decay * iterations), iterations counted per batch.
        return base_lr / (1.0 + cfg.decay * step)
    warmup_steps = cfg.warmup * total_steps
    if step < warmup_steps:
        # Never past the peak: with a warmup shorter than one step (a tiny run), (step + 1) / warmup_steps > 1.
        return base_lr * min(1.0, (step + 1) / warmup_steps)
    progress = (step - warmup_steps) / max(1.0, total_steps - warmup_steps)
    progress = min(1.0, max(0.0, progress))
    final = base_lr * cfg.final
    if cfg.name == "onecycle":
        return final + (base_lr - final) * (1.0 - progress)
    if cfg.name == "cosine":
        return final + (base_lr - final) * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {cfg.name!r}")
