"""Fused CPU kernels, written in C, compiled on first use and called through ctypes.

`conv_pool_relu` runs Conv 3x3 (one input channel) -> MaxPool 2x2 -> ReLU, the first block of `baseline` and
`seed003`, forward and backward in one pass each (the C file says how and why). On 2 cores it takes that block
of a `baseline` training step from about 0.6 ms (a convolution, a pool, a ReLU, their backward kernels and the
autocast casts) to about 0.1 ms.

The library is built with the system's C compiler (`cc`, or $CC) for this machine's CPU and kept in
<cache root>/kernels/ (fmnist.paths.cache_root: $FMNIST_CACHE, else
$XDG_CACHE_HOME/fmnist, else ~/.cache/fmnist) under a name that hashes the source, the flags, the
compiler and the CPU, so a changed file or another machine gets its own build. Building takes about a second.
Where there is no compiler, or the build fails, or FMNIST_FUSED=0 is set, `library()` returns None and the
models run their layers one by one as before; `status()` says which.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

from fmnist.paths import cache_root

SOURCE = Path(__file__).with_name("conv_pool_relu.c")
FLAGS = ("-O3", "-std=gnu11", "-fPIC", "-shared")
# Tried in order, so that a compiler without OpenMP (one thread then) or one that spells "this CPU" as
# -mcpu=native still gets a build. Not without either: generic x86-64 code emulates the 16-lane vectors and
# ran 30x slower than with -march=native, slower than PyTorch's layers.
VARIANTS = (("-march=native", "-fopenmp"), ("-march=native",), ("-mcpu=native", "-fopenmp"), ("-mcpu=native",))
SWITCH = "FMNIST_FUSED"  # "0" turns the fused kernels off (for comparisons, or to rule them out)
TAPS = 9
LANES = 16  # the kernel takes channels in blocks of 16

_state: dict = {"tried": False, "lib": None, "why": "not loaded yet", "calls": 0}


def cache_dir() -> Path:
    """Where built libraries are kept: <cache root>/kernels (fmnist.paths.cache_root)."""
    return cache_root() / "kernels"


def _compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def _cpu_signature() -> str:
    """The CPU model and feature flags (-march=native code must not move to a CPU that lacks them)."""
    fields = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "flags", "Features") and key not in fields:
                fields[key] = value.strip()
    except OSError:
        pass
    return f"{platform.machine()}|{fields}"


def _build(cc: str) -> Path:
    """The library for this source, compiler and CPU, from the first flag variant that compiles: read from the
    cache, or built into a temporary file and renamed into place."""
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout.split("\n")[0]
    identity = [SOURCE.read_bytes(), cc.encode(), version.encode(), _cpu_signature().encode()]
    errors = []
    for extra in VARIANTS:
        flags = (*FLAGS, *extra)
        key = hashlib.sha256(b"\0".join([*identity, " ".join(flags).encode()])).hexdigest()[:16]
        target = cache_dir() / f"conv_pool_relu-{key}.so"
        if target.exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".build-", suffix=".so", dir=target.parent)
        os.close(fd)
        try:
            done = subprocess.run([cc, *flags, "-o", tmp, str(SOURCE), "-lm"], capture_output=True, text=True, timeout=300)
            if done.returncode == 0:
                os.replace(tmp, target)
                return target
            errors.append(f"{' '.join(extra) or 'plain'}: {done.stderr.strip()[-300:]}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise OSError(f"{cc} could not build {SOURCE.name}: " + " | ".join(errors))


def _load() -> ctypes.CDLL:
    cc = _compiler()
    if cc is None:
        raise OSError("no C compiler (cc, gcc or $CC) on PATH")
    lib = ctypes.CDLL(str(_build(cc)))
    i64, ptr, cint = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int
    lib.fmnist_conv_pool_relu_forward.argtypes = [ptr, i64, i64, i64, ptr, ptr, i64, cint, ptr, cint, ptr, cint]
    lib.fmnist_conv_pool_relu_backward.argtypes = [ptr, i64, i64, i64, i64, cint, ptr, cint, ptr, ptr, ptr, ptr, cint]
    lib.fmnist_conv_pool_relu_forward.restype = lib.fmnist_conv_pool_relu_backward.restype = cint
    return lib


def library() -> ctypes.CDLL | None:
    """The compiled kernels, or None when they are switched off or cannot be built here (see `status`)."""
    if os.environ.get(SWITCH, "1") == "0":
        return None
    if not _state["tried"]:
        _state["tried"] = True
        try:
            _state["lib"], _state["why"] = _load(), "available"
        except (OSError, subprocess.SubprocessError) as exc:
            _state["lib"], _state["why"] = None, f"unavailable: {exc}"
    return _state["lib"]


def status() -> str:
    """One line: whether the fused kernels are available, and why not when they are not."""
    if os.environ.get(SWITCH, "1") == "0":
        return f"off ({SWITCH}=0)"
    library()
    return _state["why"]


def calls() -> int:
    """How many times a fused kernel has run forward in this process (a run reports whether it used one)."""
    return _state["calls"]


def conv_pool_relu_applies(conv: torch.nn.Module, pool: torch.nn.Module, x: torch.Tensor) -> bool:
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
        and not torch.compiler.is_compiling()  # compiled graphs get the layers, which the compiler can fuse
        and library() is not None
    )


def conv_pool_relu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: int) -> torch.Tensor:
    """relu(max_pool2d(conv2d(x, weight, bias, padding=padding), 2)) for one-channel x, as one kernel.

    Under CPU autocast the result is in the autocast dtype (as the convolution's would be), else fp32. It is an
    [N, C, H, W] tensor in channels-last memory.
    """
    dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else torch.float32
    if dtype not in (torch.float32, torch.bfloat16):
        dtype = torch.float32
    return _ConvPoolReLU.apply(x, weight, bias, padding, dtype)


class _ConvPoolReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, padding, dtype):
        lib = library()
        _state["calls"] += 1
        n, _, h, w = x.shape
        c = weight.shape[0]
        x = x.detach().contiguous()  # [N, 1, H, W]: with one channel, NCHW and channels-last are the same memory
        wt = weight.detach().reshape(c, TAPS).t().contiguous()
        b = bias.detach().contiguous() if bias is not None else torch.zeros(c)
        ho, wo = (h + 2 * padding - 2) // 2, (w + 2 * padding - 2) // 2
        out = torch.empty(n, ho, wo, c, dtype=dtype)
        arg = torch.empty(n, ho, wo, c, dtype=torch.uint8)
        rc = lib.fmnist_conv_pool_relu_forward(
            x.data_ptr(), n, h, w, wt.data_ptr(), b.data_ptr(), c, padding,
            out.data_ptr(), int(dtype == torch.bfloat16), arg.data_ptr(), torch.get_num_threads(),
        )  # fmt: skip
        if rc != 0:
            raise ValueError(f"conv_pool_relu: unsupported shape {tuple(x.shape)} with {c} filters")
        ctx.save_for_backward(x, arg, weight)
        ctx.padding, ctx.has_bias = padding, bias is not None
        return out.permute(0, 3, 1, 2)

    @staticmethod
    def backward(ctx, grad):
        x, arg, weight = ctx.saved_tensors
        n, _, h, w = x.shape
        c = weight.shape[0]
        g = grad.permute(0, 2, 3, 1)
        if g.dtype not in (torch.float32, torch.bfloat16):
            g = g.float()
        g = g.contiguous()
        threads = torch.get_num_threads()
        gwt = torch.empty(TAPS, c)
        gb = torch.empty(c)
        scratch = torch.empty(threads * (TAPS + 1) * c)
        library().fmnist_conv_pool_relu_backward(
            x.data_ptr(), n, h, w, c, ctx.padding, g.data_ptr(), int(g.dtype == torch.bfloat16),
            arg.data_ptr(), gwt.data_ptr(), gb.data_ptr(), scratch.data_ptr(), threads,
        )  # fmt: skip
        gw = torch.empty_like(weight).copy_(gwt.t().reshape(weight.shape))
        return None, gw, gb if ctx.has_bias else None, None, None
