"""Pixels to model input: the one normalization that training, validation and inference share."""

from __future__ import annotations

import numpy as np
import torch


def normalize(images: torch.Tensor, mean: float, std: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 images [N, H, W] -> model input [N, 1, H, W]: (pixel / 255 - mean) / std."""
    return ((images.to(dtype) / 255.0 - mean) / std).unsqueeze(1)


def to_device_tensors(images: np.ndarray, labels: np.ndarray, device: torch.device, mean: float, std: float,
                      channels_last: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 [N,28,28] and int64 [N] arrays -> normalized float32 [N,1,28,28] and int64 [N] on `device`."""
    x = normalize(torch.from_numpy(np.ascontiguousarray(images)).to(device), mean, std)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.from_numpy(np.ascontiguousarray(labels)).to(device=device, dtype=torch.long)
    return x, y
