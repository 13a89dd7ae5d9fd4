"""Milliseconds per training step, one engine setting at a time: the before/after figures behind each
speed choice (memory format, bf16 autocast, torch.compile, threads, the fused first block).

    python benchmarks/step_time.py                         # baseline, minivgg, fast; every setting
    python benchmarks/step_time.py minivgg --steps 100
    python benchmarks/step_time.py --quick                 # fewer steps

A step is what the trainer does per batch (slice, forward, loss, backward, fused optimizer step) on random
data of the recipe's batch size; the first steps (and, compiled, the compilation) are timed apart and not
counted. Seconds per epoch = ms/step x 60,000 / batch.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from common import load_average, machine, update_section  # noqa: E402

from fmnist.engine import fused  # noqa: E402
from fmnist.engine.device import keep_freed_memory, resolve_device  # noqa: E402
from fmnist.engine.trainer import autocast, make_optimizer  # noqa: E402
from fmnist.models import build_model  # noqa: E402
from fmnist.recipes import get_recipe  # noqa: E402

# (label, channels_last, bf16, compile, threads, fused); threads None = every core. fused False runs the model
# layer by layer (FMNIST_FUSED=0); that row is shown only for models whose first block the kernel fuses.
SETTINGS = [
    ("NCHW fp32", False, False, False, None, True),
    ("channels-last fp32", True, False, False, None, True),
    ("channels-last fp32, 1 thread", True, False, False, 1, True),
    ("channels-last bf16", True, True, False, None, True),
    ("channels-last bf16, layer by layer", True, True, False, None, False),
    ("channels-last bf16, compiled", True, True, True, None, True),
]


def time_steps(recipe_name: str, channels_last: bool, bf16: bool, compiled: bool, steps: int, device: torch.device) -> tuple[float, float]:
    """(ms per step in the steady state, seconds of warm-up: the first steps, compilation included)."""
    recipe = get_recipe(recipe_name)
    torch.manual_seed(0)
    model = build_model(recipe.model, **recipe.model_args).to(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    forward = torch.compile(model) if compiled else model
    bs = recipe.batch_size
    x = torch.rand(64 * bs, 1, 28, 28, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (64 * bs,), device=device)
    opt = make_optimizer(recipe.optimizer, model.parameters(), recipe.optimizer.lr, device)
    amp = torch.bfloat16 if bf16 else None

    def step(i: int) -> None:
        j = (i % 64) * bs
        with autocast(device, amp):
            logits = forward(x[j : j + bs])
        loss = F.cross_entropy(logits.float(), y[j : j + bs])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    t0 = time.perf_counter()
    for i in range(10):
        step(i)
    sync()
    warmup = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(steps):
        step(i)
    sync()
    return (time.perf_counter() - t0) / steps * 1e3, warmup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipes", nargs="*", default=["baseline", "minivgg", "fast"])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="30 steps per setting")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--write", action="store_true", help="write the table into docs/results.md")
    args = parser.parse_args()
    device = resolve_device(args.device)
    if device.type == "cpu":
        keep_freed_memory()  # as the trainer does
    steps = 30 if args.quick else args.steps
    all_threads = torch.get_num_threads()
    print(f"machine: {machine()}; load {load_average():.1f}")
    lines = ["| recipe | batch | setting | ms/step | s/epoch (60k) | warm-up s |", "|---|---:|---|---:|---:|---:|"]
    print("\n".join(lines))
    for name in args.recipes:
        bs = get_recipe(name).batch_size
        calls = fused.calls()
        for label, cl, bf16, compiled, threads, fuse in SETTINGS:
            if not fuse and fused.calls() == calls:
                continue  # the kernel does not apply to this model: the row would repeat the one above
            torch.set_num_threads(threads or all_threads)
            os.environ[fused.SWITCH] = "1" if fuse else "0"
            ms, warm = time_steps(name, cl, bf16, compiled, steps, device)
            os.environ.pop(fused.SWITCH)
            lines.append(f"| `{name}` | {bs} | {label} | {ms:.2f} | {ms * 60000 / bs / 1e3:.2f} | {warm:.1f} |")
            print(lines[-1], flush=True)
    if args.write and not args.quick:
        head = ["## Engine settings, one at a time (benchmarks/step_time.py)", "",
                f"Machine: {machine()}; {steps} timed steps per setting after 10 warm-up steps (compilation",
                f"included in the warm-up); load average {load_average():.1f} at the end.", ""]
        update_section("step-time", "\n".join(head + lines))
    torch.set_num_threads(all_threads)


if __name__ == "__main__":
    main()
