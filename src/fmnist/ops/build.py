"""Builds conv_pool_relu.c with the system's C compiler, caches the library, and loads it through ctypes.

The library is built with the system's C compiler (`cc`, or $CC) for this machine's CPU and kept in
<cache root>/kernels/ (fmnist.paths.cache_root: $FMNIST_CACHE, else
$XDG_CACHE_HOME/fmnist, else ~/.cache/fmnist) under a name that hashes the source, the flags, the
compiler and the CPU, so a changed file or another machine gets its own build. Building takes about a second.
Where there is no compiler, or the build fails, or FMNIST_FUSED=0 is set, `library()` returns None and the
models run their layers one by one as before; `status()` says which.

`load()` builds and loads once per process (functools.cache, so a test can swap in a fresh cache to start
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


@dataclass(frozen=True)
class Library:
    """The loaded kernels: `forward` and `backward` are the C functions, typed as in PROTOTYPES."""

    path: Path
    forward: Callable[..., int]  # ctypes functions with argtypes and restype set
    backward: Callable[..., int]

    @classmethod
    def open(cls, path: Path) -> Library:
        """Load the shared library at `path` and declare its functions' argument and result types."""
        dll = ctypes.CDLL(str(path))
        functions = {}
        for field, (symbol, argtypes) in PROTOTYPES.items():
            fn = getattr(dll, symbol)
            fn.argtypes, fn.restype = list(argtypes), RESTYPE
            functions[field] = fn
        return cls(path, **functions)


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


def build(cc: str) -> Path:
    """The library for this source, compiler and CPU from the first flag variant that compiles (cached)."""
    # Read from the cache, or built into a temporary file and renamed into place, so that a concurrent
    # process never loads a half-written library.
    version = subprocess.run([cc, "--version"], check=False, capture_output=True, text=True, timeout=30).stdout
    version = version.split("\n")[0]
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
            command = [cc, *flags, "-o", tmp, str(SOURCE), "-lm"]
            done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300)
            if done.returncode == 0:
                os.replace(tmp, target)
                return target
            errors.append(f"{' '.join(extra) or 'plain'}: {done.stderr.strip()[-300:]}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise OSError(f"{cc} could not build {SOURCE.name}: " + " | ".join(errors))


@functools.cache
def load() -> tuple[Library | None, str]:
    """The built library and "available", or None and "unavailable: <why>" (tried once per process)."""
    cc = compiler()
    if cc is None:
        return None, "unavailable: no C compiler (cc, gcc or $CC) on PATH"
    try:
        return Library.open(build(cc)), "available"
    except (OSError, AttributeError, subprocess.SubprocessError) as exc:  # AttributeError: a missing symbol
        return None, f"unavailable: {exc}"


def switched_off() -> bool:
    """Whether FMNIST_FUSED=0 is set now."""
    return os.environ.get(SWITCH, "1") == "0"


def library() -> Library | None:
    """The compiled kernels, or None when they are switched off or cannot be built here (see `status`)."""
    return None if switched_off() else load()[0]


def status() -> str:
    """One line: whether the fused kernels are available, and why not when they are not."""
    return f"off ({SWITCH}=0)" if switched_off() else load()[1]
