"""MaxPool 2x2 -> BatchNorm (batch statistics) -> ReLU as one fused CPU kernel for training in bf16.

The end of every `resnet` stage (fmnist.models.resnet.Stage). In a training step PyTorch runs it as a pool with
int64 indices, a BatchNorm and a ReLU forward, and three kernels backward, one of which zero-fills the full-size
gradient before scattering into it; the C kernels (pool_norm_relu.c, built by fmnist.ops.build) read and write
each full-size tensor once. `applies` says when the kernel takes over: training mode on the CPU with a bf16
channels-last input (the recipes' autocast), outside torch.compile, with the kernels built; anything else runs
the layers. The BatchNorm module keeps its parameters and running statistics, updated as PyTorch updates them,
so a model trained either way saves the same state dict.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fmnist.ops import build

NAME = "pool_norm_relu"
calls = build.CallCounter()  # fused forward runs in this process: the trainer reports whether the kernel ran


def status() -> str:
    """One line: whether the kernel is available here, and why not when it is not."""
    return build.status(NAME)


def applies(x: Tensor, norm: nn.BatchNorm2d) -> bool:
    """Whether `pool_norm_relu(x, norm)` may run the fused kernel instead of the layers."""
    return (norm.training and x.device.type == "cpu" and x.dtype == torch.bfloat16 and x.dim() == 4
            and x.shape[2] >= 2 and x.shape[3] >= 2 and x.is_contiguous(memory_format=torch.channels_last)
            and norm.track_running_stats and norm.affine and not torch.compiler.is_compiling()
            and build.library(NAME) is not None)


def _ptr(t: Tensor) -> int:
    return t.data_ptr()


class _PoolNormReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, eps: float) -> tuple[Tensor, Tensor, Tensor]:
        lib = build.library(NAME)
        calls.add()
        n, c, h, w = x.shape
        ho, wo = h // 2, w // 2
        threads = torch.get_num_threads()
        cl = torch.channels_last
        pooled = torch.empty(n, c, ho, wo, dtype=torch.bfloat16, memory_format=cl)
        arg = torch.empty(n, c, ho, wo, dtype=torch.uint8, memory_format=cl)
        out = torch.empty(n, c, ho, wo, dtype=torch.bfloat16, memory_format=cl)
        mean, invstd, var = torch.empty(c), torch.empty(c), torch.empty(c)
        scratch = torch.empty(threads * 2 * c, dtype=torch.float64)
        weight32, bias32 = weight.detach().float().contiguous(), bias.detach().float().contiguous()
        if lib.forward(_ptr(x), n, h, w, c, _ptr(weight32), _ptr(bias32), eps, _ptr(pooled), _ptr(arg), _ptr(mean),
                       _ptr(invstd), _ptr(var), _ptr(out), _ptr(scratch), threads):
            raise RuntimeError(f"pool_norm_relu: the kernel refused input {tuple(x.shape)}")
        ctx.save_for_backward(pooled, arg, weight32, bias32, mean, invstd)
        ctx.full = (h, w)
        ctx.mark_non_differentiable(mean, var)
        return out, mean, var

    @staticmethod
    def backward(ctx, grad: Tensor, _mean: Tensor, _var: Tensor):
        lib = build.library(NAME)
        pooled, arg, weight32, bias32, mean, invstd = ctx.saved_tensors
        n, c = pooled.shape[:2]
        h, w = ctx.full
        threads = torch.get_num_threads()
        grad = grad.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
        grad_in = torch.empty(n, c, h, w, dtype=torch.bfloat16, memory_format=torch.channels_last)
        grad_weight, grad_bias = torch.empty(c), torch.empty(c)
        scratch = torch.empty(threads * 2 * c, dtype=torch.float64)
        if lib.backward(_ptr(grad), _ptr(pooled), _ptr(arg), n, h, w, c, _ptr(weight32), _ptr(bias32), _ptr(mean),
                        _ptr(invstd), _ptr(grad_in), _ptr(grad_weight), _ptr(grad_bias), _ptr(scratch), threads):
            raise RuntimeError(f"pool_norm_relu: the kernel refused gradient {tuple(grad.shape)}")
        return grad_in, grad_weight, grad_bias, None


def pool_norm_relu(x: Tensor, norm: nn.BatchNorm2d) -> Tensor:
    """relu(norm(max_pool2d(x, 2))) in training mode, with `norm`'s running statistics updated as PyTorch does
    (momentum, unbiased variance); call only where `applies(x, norm)`."""
    out, mean, var = _PoolNormReLU.apply(x, norm.weight, norm.bias, norm.eps)
    with torch.no_grad():
        m = out.shape[0] * out.shape[2] * out.shape[3]
        norm.num_batches_tracked.add_(1)
        momentum = norm.momentum if norm.momentum is not None else 1.0 / float(norm.num_batches_tracked)
        norm.running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
        norm.running_var.mul_(1 - momentum).add_(var * (m / max(1, m - 1)), alpha=momentum)
    return out
