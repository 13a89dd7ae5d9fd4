"""Conv 3x3 (one input channel) -> MaxPool 2x2 -> ReLU as one fused CPU kernel, registered as a torch op.

`conv_pool_relu` runs Conv 3x3 (one input channel) -> MaxPool 2x2 -> ReLU, the first block of `baseline` and
`seed003`, forward and backward in one pass each (the C file says how and why). On 2 cores it takes that block
of a `baseline` training step from about 0.6 ms (a convolution, a pool, a ReLU, their backward kernels and the
autocast casts) to about 0.1 ms.

The kernels are C (conv_pool_relu.c), built and loaded by fmnist.ops.build. They are registered as the custom
ops `fmnist::conv_pool_relu_forward` and `fmnist::conv_pool_relu_backward`, each with a fake (shape and dtype)
implementation and the forward with an autograd formula, so FakeTensor tracing and torch.compile see an
opaque op with known output metadata instead of ctypes calls they cannot trace. Custom ops are not
autocast-aware, so the wrapper reads the autocast state and passes the output dtype in as the `bf16` flag.
"""

from __future__ import annotations

import torch
from torch import Tensor

from fmnist.ops import build

TAPS = 9
LANES = 16  # the kernel takes channels in blocks of 16
SWITCH = build.SWITCH  # the op's users (benchmarks/step_time.py) flip the switch without knowing the loader
status = build.status  # one line: available, or why not


CallCounter = build.CallCounter
calls = CallCounter()  # counted by the op's real implementation: tracing with fake tensors runs none


def _pooled(n: int, padding: int) -> int:
    return (n + 2 * padding - 2) // 2


def _kernels() -> build.Library:
    lib = build.library()
    if lib is None:
        raise RuntimeError(f"conv_pool_relu: the fused kernels are {build.status()}")
    return lib


def _check(x: Tensor, weight: Tensor, padding: int) -> None:
    # The C code trusts its pointers and sizes: anything else would read or write out of bounds.
    if (x.device.type != "cpu" or x.dim() != 4 or x.shape[1] != 1 or x.dtype != torch.float32
            or weight.dim() != 4 or tuple(weight.shape[1:]) != (1, 3, 3)):  # fmt: skip
        raise ValueError(f"conv_pool_relu: needs CPU fp32 x [N, 1, H, W] and weight [C, 1, 3, 3], got "
                         f"{tuple(x.shape)} {x.dtype} on {x.device} and {tuple(weight.shape)}")  # fmt: skip
    if padding not in (0, 1):
        raise ValueError(f"conv_pool_relu: padding must be 0 or 1, got {padding}")


def forward_impl(x: Tensor, weight: Tensor, bias: Tensor | None, padding: int, bf16: bool) -> tuple[Tensor, Tensor]:
    """(relu(max_pool2d(conv2d(x, weight, bias, padding), 2)), which window position won, as uint8 NHWC)."""
    lib = _kernels()
    _check(x, weight, padding)
    n, _, h, w = x.shape
    c, ho, wo = weight.shape[0], _pooled(h, padding), _pooled(w, padding)
    calls.add()
    x = x.contiguous()  # [N, 1, H, W]: with one channel, NCHW and channels-last are the same memory
    wt = weight.detach().reshape(c, TAPS).t().contiguous().float()
    b = bias.detach().contiguous().float() if bias is not None else torch.zeros(c)
    # A fresh channels-last [N, C, Ho, Wo] tensor (a custom op may not return a view) holds NHWC memory, which
    # is what the kernel writes.
    dtype = torch.bfloat16 if bf16 else torch.float32
    out = torch.empty(n, c, ho, wo, dtype=dtype, memory_format=torch.channels_last)
    arg = torch.empty(n, ho, wo, c, dtype=torch.uint8)
    rc = lib.forward(
        x.data_ptr(), n, h, w, wt.data_ptr(), b.data_ptr(), c, padding,
        out.data_ptr(), int(bf16), arg.data_ptr(), torch.get_num_threads(),
    )  # fmt: skip
    if rc != 0:
        raise ValueError(f"conv_pool_relu: unsupported shape {tuple(x.shape)} with {c} filters")
    return out, arg


@torch.library.custom_op("fmnist::conv_pool_relu_forward", mutates_args=())
def conv_pool_relu_forward(
    x: Tensor, weight: Tensor, bias: Tensor | None, padding: int, bf16: bool
) -> tuple[Tensor, Tensor]:
    """The registered op: `forward_impl`."""
    return forward_impl(x, weight, bias, padding, bf16)


@conv_pool_relu_forward.register_fake
def _forward_fake(x: Tensor, weight: Tensor, bias: Tensor | None, padding: int, bf16: bool) -> tuple[Tensor, Tensor]:
    n, _, h, w = x.shape
    c = weight.shape[0]
    ho, wo = _pooled(h, padding), _pooled(w, padding)
    dtype = torch.bfloat16 if bf16 else torch.float32
    out = torch.empty(n, c, ho, wo, dtype=dtype, device=x.device, memory_format=torch.channels_last)
    return out, torch.empty(n, ho, wo, c, dtype=torch.uint8, device=x.device)


def backward_impl(grad: Tensor, x: Tensor, arg: Tensor, weight: Tensor, padding: int) -> tuple[Tensor, Tensor]:
    """(weight gradient shaped like `weight`, bias gradient [C]) from the output's gradient and the forward's arg."""
    lib = _kernels()
    _check(x, weight, padding)
    n, _, h, w = x.shape
    c, ho, wo = weight.shape[0], _pooled(h, padding), _pooled(w, padding)
    if tuple(grad.shape) != (n, c, ho, wo) or tuple(arg.shape) != (n, ho, wo, c) or arg.dtype != torch.uint8:
        raise ValueError(f"conv_pool_relu backward: grad {tuple(grad.shape)} and arg {tuple(arg.shape)} "
                         f"{arg.dtype} do not fit x {tuple(x.shape)} with {c} filters")  # fmt: skip
    g = grad.permute(0, 2, 3, 1)  # NHWC, the layout of `arg`
    if g.dtype not in (torch.float32, torch.bfloat16):
        g = g.float()
    g = g.contiguous()
    x = x.contiguous()
    threads = torch.get_num_threads()
    gwt = torch.empty(TAPS, c)
    gb = torch.empty(c)
    scratch = torch.empty(threads * (TAPS + 1) * c)
    rc = lib.backward(
        x.data_ptr(), n, h, w, c, padding, g.data_ptr(), int(g.dtype == torch.bfloat16),
        arg.contiguous().data_ptr(), gwt.data_ptr(), gb.data_ptr(), scratch.data_ptr(), threads,
    )  # fmt: skip
    if rc != 0:
        raise RuntimeError(f"conv_pool_relu backward: the kernel refused x {tuple(x.shape)} with {c} filters "
                           f"and padding {padding} (return code {rc})")  # fmt: skip
    gw = torch.empty_like(weight).copy_(gwt.t().reshape(weight.shape))
    return gw, gb


@torch.library.custom_op("fmnist::conv_pool_relu_backward", mutates_args=())
def conv_pool_relu_backward(
    grad: Tensor, x: Tensor, arg: Tensor, weight: Tensor, padding: int
) -> tuple[Tensor, Tensor]:
    """The registered op: `backward_impl`."""
    return backward_impl(grad, x, arg, weight, padding)


@conv_pool_relu_backward.register_fake
def _backward_fake(grad: Tensor, x: Tensor, arg: Tensor, weight: Tensor, padding: int) -> tuple[Tensor, Tensor]:
    return torch.empty_like(weight), torch.empty(weight.shape[0], dtype=torch.float32, device=weight.device)


def _setup_context(ctx, inputs, output) -> None:
    x, weight, bias, padding, _ = inputs
    ctx.save_for_backward(x, output[1], weight)
    ctx.padding, ctx.has_bias = padding, bias is not None


def _backward(ctx, grad: Tensor, _grad_arg: Tensor | None):
    # No gradient for x: the models only fuse the stem where the input needs none (conv_pool_relu_applies).
    x, arg, weight = ctx.saved_tensors
    gw, gb = conv_pool_relu_backward(grad, x, arg, weight, ctx.padding)
    return None, gw, gb if ctx.has_bias else None, None, None


torch.library.register_autograd("fmnist::conv_pool_relu_forward", _backward, setup_context=_setup_context)


class _Eager(torch.autograd.Function):
    """The same kernels for eager mode, without the registered op's dispatch: measured in one process
    (alternating blocks of 500 forward+backward calls, batch 32, 32 filters), the op took 990 us a call where
    this takes 800 us, 20% of a `baseline` step. torch.compile traces the registered op instead."""

    @staticmethod
    def forward(ctx, x, weight, bias, padding, bf16):
        out, arg = forward_impl(x, weight, bias, padding, bf16)
        ctx.save_for_backward(x, arg, weight)
        ctx.padding, ctx.has_bias = padding, bias is not None
        return out

    @staticmethod
    def backward(ctx, grad):
        x, arg, weight = ctx.saved_tensors
        gw, gb = backward_impl(grad, x, arg, weight, ctx.padding)
        return None, gw, gb if ctx.has_bias else None, None, None


def conv_pool_relu(x: Tensor, weight: Tensor, bias: Tensor | None, padding: int) -> Tensor:
    """relu(max_pool2d(conv2d(x, weight, bias, padding=padding), 2)) for one-channel x, as one kernel.

    Under CPU autocast to bf16 the result is bf16 (as the convolution's would be), else fp32. It is an
    [N, C, H, W] tensor in channels-last memory. Eager calls take the autograd Function, compiled graphs the op.
    """
    bf16 = torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    if torch.compiler.is_compiling():
        return conv_pool_relu_forward(x, weight, bias, padding, bf16)[0]
    return _Eager.apply(x, weight, bias, padding, bf16)


@torch.compiler.assume_constant_result
def _kernels_built() -> bool:
    # Under torch.compile this runs once, at tracing, and its answer is baked into the graph: the loader (a
    # cached build with subprocesses and file checks) cannot be traced and would split the graph.
    # So FMNIST_FUSED set after a model was compiled does not change that compiled graph; eager calls read it.
    return build.library() is not None


def conv_pool_relu_applies(conv: torch.nn.Module, pool: torch.nn.Module, x: Tensor) -> bool:
    """Whether conv -> pool -> ReLU on `x` is what the fused kernel computes, and the kernel is here."""
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and x.dim() == 4
        and x.shape[1] == 1
        and not x.requires_grad
        and isinstance(conv, torch.nn.Conv2d)
        and conv.in_channels == 1
        and conv.out_channels % LANES == 0
        and conv.kernel_size == (3, 3)
        and conv.stride == (1, 1)
        and conv.dilation == (1, 1)
        and conv.padding in ((0, 0), (1, 1))
        and conv.padding_mode == "zeros"
        and conv.weight.dtype == torch.float32
        and conv.weight.device.type == "cpu"
        and isinstance(pool, torch.nn.MaxPool2d)
        and pool.kernel_size in (2, (2, 2))
        and pool.stride in (2, (2, 2))
        and pool.padding in (0, (0, 0))
        and pool.dilation in (1, (1, 1))
        and not pool.ceil_mode
        and not pool.return_indices
        and _kernels_built()
    )
