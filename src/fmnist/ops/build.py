"""Builds the fused CPU kernels (conv_pool_relu.c, pool_norm_relu.c) with the system's C compiler, caches each
library, and loads it through ctypes.

The library is built with the system's C compiler (`cc`, or $CC) for this machine's CPU and kept in
<cache root>/kernels/ (fmnist.paths.cache_root: $FMNIST_CACHE, else
$XDG_CACHE_HOME/fmnist, else ~/.cache/fmnist) under a name that hashes the source, the flags, the
compiler and the CPU, so a changed file or another machine gets its own build. Building takes about a second.
Where there is no compiler, or the build fails, or FMNIST_FUSED=0 is set, `library()` returns None and the
models run their layers one by one as before; `status()` says which.

`load(name)` builds and loads each kernel once per process (functools.cache, so a test can swap in a fresh cache to start
over). The FMNIST_FUSED switch is read on every `library()` and `status()` call, so it can be flipped at any
time.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fmnist.paths import cache_root

SOURCE = Path(__file__).with_name("conv_pool_relu.c")
FLAGS = ("-O3", "-std=gnu11", "-fPIC", "-shared")
# Tried in order, so that a compiler without OpenMP (one thread then) or one that spells "this CPU" as
# -mcpu=native still gets a build. Not without either: generic x86-64 code emulates the 16-lane vectors and
# ran 30x slower than with -march=native, slower than PyTorch's layers.
VARIANTS = (("-march=native", "-fopenmp"), ("-march=native",), ("-mcpu=native", "-fopenmp"), ("-mcpu=native",))
SWITCH = "FMNIST_FUSED"  # "0" turns the fused kernels off (for comparisons, or to rule them out)

# The C side, quoted from conv_pool_relu.c so that the two can be compared by eye (tests/test_ops.py compares
# them by parsing the .c file):
#   int fmnist_conv_pool_relu_forward(const float *x, int64_t B, int64_t H, int64_t W, const float *wt,
#                                     const float *bias, int64_t C, int pad, void *out, int out_bf16,
#                                     uint8_t *arg, int threads);
#   int fmnist_conv_pool_relu_backward(const float *x, int64_t B, int64_t H, int64_t W, int64_t C, int pad,
#                                      const void *grad, int grad_bf16, const uint8_t *arg, float *gwt,
#                                      float *gb, float *scratch, int threads);
# Every pointer goes as c_void_p (a tensor's data_ptr()); both return 0, or 1 for a shape they refuse.
_P, _I64, _INT = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
PROTOTYPES: dict[str, tuple[str, tuple[type, ...]]] = {  # Library field -> (C symbol, argtypes)
    "forward": ("fmnist_conv_pool_relu_forward", (_P, _I64, _I64, _I64, _P, _P, _I64, _INT, _P, _INT, _P, _INT)),
    "backward": ("fmnist_conv_pool_relu_backward", (_P, _I64, _I64, _I64, _I64, _INT, _P, _INT, _P, _P, _P, _P, _INT)),
}
RESTYPE = _INT

# pool_norm_relu.c (fmnist.ops.pool_norm_relu):
#   int fmnist_pool_norm_relu_forward(const uint16_t *x, int64_t N, int64_t H, int64_t W, int64_t C,
#                                     const float *weight, const float *bias, float eps, uint16_t *pooled,
#                                     uint8_t *arg, float *mean, float *invstd, float *var, uint16_t *out,
#                                     double *scratch, int threads);
#   int fmnist_pool_norm_relu_backward(const uint16_t *grad, const uint16_t *pooled, const uint8_t *arg, int64_t N,
#                                      int64_t H, int64_t W, int64_t C, const float *weight, const float *bias,
#                                      const float *mean, const float *invstd, uint16_t *grad_in,
#                                      float *grad_weight, float *grad_bias, double *scratch, int threads);
_F = ctypes.c_float
POOL_NORM_RELU: dict[str, tuple[str, tuple[type, ...]]] = {
    "forward": ("fmnist_pool_norm_relu_forward",
                (_P, _I64, _I64, _I64, _I64, _P, _P, _F, _P, _P, _P, _P, _P, _P, _P, _INT)),
    "backward": ("fmnist_pool_norm_relu_backward",
                 (_P, _P, _P, _I64, _I64, _I64, _I64, _P, _P, _P, _P, _P, _P, _P, _P, _INT)),
}

# Each kernel: its source file and its functions.
KERNELS: dict[str, tuple[Path, dict[str, tuple[str, tuple[type, ...]]]]] = {
    "conv_pool_relu": (SOURCE, PROTOTYPES),
    "pool_norm_relu": (Path(__file__).with_name("pool_norm_relu.c"), POOL_NORM_RELU),
}


@dataclass(frozen=True)
class Library:
    """The loaded kernels: `forward` and `backward` are the C functions, typed as in PROTOTYPES."""

    path: Path
    forward: Callable[..., int]  # ctypes functions with argtypes and restype set
    backward: Callable[..., int]

    @classmethod
    def open(cls, path: Path, prototypes: dict[str, tuple[str, tuple[type, ...]]] = PROTOTYPES) -> Library:
        """Load the shared library at `path` and declare its functions' argument and result types."""
        dll = ctypes.CDLL(str(path))
        functions = {}
        for field, (symbol, argtypes) in prototypes.items():
            fn = getattr(dll, symbol)
            fn.argtypes, fn.restype = list(argtypes), RESTYPE
            functions[field] = fn
        return cls(path, **functions)


class CallCounter:
    """A count of fused forward runs in this process; the trainer reads it to report whether the kernel ran."""

    def __init__(self) -> None:
        self._count = 0

    def add(self) -> None:
        """Count one run."""
        self._count += 1

    def __call__(self) -> int:
        """The runs counted so far."""
        return self._count


def cache_dir() -> Path:
    """Where built libraries are kept: <cache root>/kernels (fmnist.paths.cache_root)."""
    return cache_root() / "kernels"


def compiler() -> str | None:
    """The C compiler to build with: $CC, else cc or gcc on PATH, else None."""
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


def build(cc: str, source: Path = SOURCE) -> Path:
    """The library for `source`, this compiler and CPU from the first flag variant that compiles (cached)."""
    # Read from the cache, or built into a temporary file and renamed into place, so that a concurrent
    # process never loads a half-written library.
    version = subprocess.run([cc, "--version"], check=False, capture_output=True, text=True, timeout=30).stdout
    version = version.split("\n")[0]
    identity = [source.read_bytes(), cc.encode(), version.encode(), _cpu_signature().encode()]
    errors = []
    for extra in VARIANTS:
        flags = (*FLAGS, *extra)
        key = hashlib.sha256(b"\0".join([*identity, " ".join(flags).encode()])).hexdigest()[:16]
        target = cache_dir() / f"{source.stem}-{key}.so"
        if target.exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".build-", suffix=".so", dir=target.parent)
        os.close(fd)
        try:
            command = [cc, *flags, "-o", tmp, str(source), "-lm"]
            done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300)
            if done.returncode == 0:
                os.replace(tmp, target)
                return target
            errors.append(f"{' '.join(extra) or 'plain'}: {done.stderr.strip()[-300:]}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise OSError(f"{cc} could not build {source.name}: " + " | ".join(errors))


@functools.cache
def load(name: str = "conv_pool_relu") -> tuple[Library | None, str]:
    """Kernel `name`'s built library and "available", or None and "unavailable: <why>" (tried once per process)."""
    cc = compiler()
    if cc is None:
        return None, "unavailable: no C compiler (cc, gcc or $CC) on PATH"
    source, prototypes = KERNELS[name]
    try:
        return Library.open(build(cc, source), prototypes), "available"
    except (OSError, AttributeError, subprocess.SubprocessError) as exc:  # AttributeError: a missing symbol
        return None, f"unavailable: {exc}"


def switched_off() -> bool:
    """Whether FMNIST_FUSED=0 is set now."""
    return os.environ.get(SWITCH, "1") == "0"


def library(name: str = "conv_pool_relu") -> Library | None:
    """Kernel `name`'s compiled functions, or None when the fused kernels are switched off or it cannot be built
    here (see `status`)."""
    return None if switched_off() else load(name)[0]


def status(name: str = "conv_pool_relu") -> str:
    """One line: whether kernel `name` is available, and why not when it is not."""
    return f"off ({SWITCH}=0)" if switched_off() else load(name)[1]
