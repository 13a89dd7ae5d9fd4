"""Batch augmentation on the device: pure functions of (images [N,C,H,W], generator) -> images.

Each function draws its randomness from the `torch.Generator` it is given, so a seeded generator gives the
same augmented batch every time; labels are never touched (the batch order is kept), so they stay aligned.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fmnist.config import AugmentConfig


def _uniform(n: int, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    # Draw on the generator's device, then move: CPU generators can feed CUDA batches.
    return torch.rand(n, generator=gen, device=gen.device).to(device)


def random_crop(x: torch.Tensor, padding: int, gen: torch.Generator, value: float = 0.0) -> torch.Tensor:
    """Pad by `padding` pixels of `value` and crop back to H x W at a random offset per image."""
    if padding <= 0:
        return x
    n, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding), value=value)
    # Offsets in [0, 2 * padding]; one gather builds every crop: rows [N, H], cols [N, W].
    dy = (_uniform(n, gen, x.device) * (2 * padding + 1)).long()
    dx = (_uniform(n, gen, x.device) * (2 * padding + 1)).long()
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    out = padded[batch, chan, rows, cols]
    if x.is_contiguous(memory_format=torch.channels_last):
        out = out.contiguous(memory_format=torch.channels_last)
    return out


def random_flip(x: torch.Tensor, gen: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Mirror each image left-right with probability p."""
    return flip_where(x, _uniform(len(x), gen, x.device) < p)


def flip_where(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mirror left-right the images whose entry of the bool mask [N] is True."""
    return torch.where(mask[:, None, None, None], x.flip(3), x)


def flip_plan(n: int, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """One random flip decision per training image (bool [n], p = 0.5): the first epoch of alternating flips."""
    return _uniform(n, gen, device) < 0.5


def alternating_flips(plan: torch.Tensor, idx: torch.Tensor, epoch: int) -> torch.Tensor:
    """The flip mask of the images at `idx` in 0-based `epoch`: the plan in even epochs, its complement in odd."""
    mask = plan.index_select(0, idx)
    return ~mask if epoch % 2 else mask


def random_erase(
    x: torch.Tensor, gen: torch.Generator, p: float = 0.5, area: tuple[float, float] = (0.02, 0.25), value: float = 0.0
) -> torch.Tensor:
    """Random erasing (Zhong et al. 2017): with probability p per image, fill a random rectangle with `value`.

    The rectangle covers `area` (fraction of the image) with an aspect ratio in [0.3, 3.3]; `value` is the
    normalized value of a black pixel, so an erased patch looks like background.
    """
    if p <= 0:
        return x
    n, _, h, w = x.shape
    u = lambda: _uniform(n, gen, x.device)  # noqa: E731
    frac = area[0] + (area[1] - area[0]) * u()
    log_ratio = torch.log(torch.tensor(0.3)) + (torch.log(torch.tensor(3.3)) - torch.log(torch.tensor(0.3))) * u()
    ratio = torch.exp(log_ratio)
    eh = (torch.sqrt(frac * h * w * ratio)).clamp(1, h).long()
    ew = (torch.sqrt(frac * h * w / ratio)).clamp(1, w).long()
    top = (u() * (h - eh + 1).float()).long()
    left = (u() * (w - ew + 1).float()).long()
    apply = u() < p
    r = torch.arange(h, device=x.device)[None, :]
    c = torch.arange(w, device=x.device)[None, :]
    in_rows = (r >= top[:, None]) & (r < (top + eh)[:, None])  # [N, H]
    in_cols = (c >= left[:, None]) & (c < (left + ew)[:, None])  # [N, W]
    mask = (in_rows[:, :, None] & in_cols[:, None, :] & apply[:, None, None])[:, None]  # [N, 1, H, W]
    return x.masked_fill(mask, value)


def downsize(x: torch.Tensor, size: int) -> torch.Tensor:
    """The images scaled to size x size pixels (bilinear, antialiased), in x's memory format."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    out = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    if x.is_contiguous(memory_format=torch.channels_last):
        out = out.contiguous(memory_format=torch.channels_last)
    return out


def augment_batch(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator, background: float = 0.0,
                  flips: torch.Tensor | None = None, small: bool = False) -> torch.Tensor:
    """Apply the recipe's augmentations in the usual order: crop, flip, erase, then, when `small` (an early epoch
    of progressive resizing: AugmentConfig.small_epochs), the downsizing. `flips` (bool [N]) decides the flips
    when given (alternating flips); else they are drawn from `gen`."""
    # `background` is the normalized value of a black pixel: padding and erased patches look like background.
    if cfg.crop_padding:
        x = random_crop(x, cfg.crop_padding, gen, value=background)
    if cfg.flip:
        x = random_flip(x, gen) if flips is None else flip_where(x, flips)
    if cfg.erase:
        x = random_erase(x, gen, p=cfg.erase, value=background)
    if small and cfg.resize:
        x = downsize(x, cfg.resize[0])
    return x

