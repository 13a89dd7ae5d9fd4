"""Inference speed per recipe: throughput (images/s) at batch 1, 64 and 1024, and single-image latency
p50 / p99, eager vs torch.compile'd. Weights do not change the speed, so freshly built models are timed
(or a saved model with --model).

    python -m benchmarks.inference_speed             # the seed recipes and the modern ones
    python -m benchmarks.inference_speed --write     # and the table into docs/results.md
    python -m benchmarks.inference_speed --model runs/main/model.safetensors
    python -m benchmarks.inference_speed --quick     # baseline and fast, eager only, a few repetitions

What is timed is fmnist's one inference path, `fmnist.inference.logits` (fp32, eval mode, channels-last,
under inference mode; no flip test-time augmentation, which doubles the work of the recipes that use it),
synchronised with the device (kit.timed).
"""

from __future__ import annotations

import statistics
from pathlib import Path

import torch
from torch import nn

from benchmarks import kit
from fmnist.checkpoint import load_model
from fmnist.inference import logits
from fmnist.models import build_model
from fmnist.recipes import RECIPES, get_recipe
from fmnist.runtime import resolve_device

BATCHES = [1, 64, 1024]
QUICK_RECIPES = ["baseline", "fast"]


def throughput(model: nn.Module, batch: int, device: torch.device, seconds: float, max_calls: int) -> float:
    """Images per second at `batch`, over about `seconds` of repeated forward passes."""
    x = torch.rand(batch, 1, 28, 28, device=device).contiguous(memory_format=torch.channels_last)
    for _ in range(3):
        logits(model, x)
    n = 0
    with kit.timed(device) as t:
        while n < max_calls and (n == 0 or t.elapsed() < seconds):
            logits(model, x)
            n += 1
    return n * batch / t.seconds


def latency(model: nn.Module, device: torch.device, reps: int) -> tuple[float, float]:
    """p50 and p99 of single-image latency, milliseconds."""
    x = torch.rand(1, 1, 28, 28, device=device)
    for _ in range(10):
        logits(model, x)
    times = []
    for _ in range(reps):
        with kit.timed(device) as t:
            logits(model, x)
        times.append(t.seconds * 1e3)
    q = statistics.quantiles(times, n=100)
    return q[49], q[98]


def models_to_time(args) -> dict[str, nn.Module]:
    """The saved model of --model, or a freshly built one per recipe (eval mode, channels-last, on the device)."""
    device = resolve_device(args.device)
    if args.model:
        model, meta = load_model(args.model, device=device)
        found = {meta.model: model}
    else:
        names = args.recipes or (QUICK_RECIPES if args.quick else list(RECIPES))
        found = {}
        for name in names:
            r = get_recipe(name)
            found[name] = build_model(r.model, **r.model_args).to(device).eval()
    return {name: m.to(memory_format=torch.channels_last) for name, m in found.items()}


def main(argv: list[str] | None = None) -> None:
    parser = kit.parser(__doc__, out_help="also write the table to this markdown file")
    parser.add_argument("recipes", nargs="*", help=f"default: every recipe ({', '.join(QUICK_RECIPES)} with --quick)")
    parser.add_argument("--model", type=Path, help="time this saved model instead of recipes")
    parser.add_argument("--write", action="store_true", help="write the table into docs/results.md")
    args = parser.parse_args(argv)
    threads = kit.begin(args)
    device = resolve_device(args.device)
    seconds, reps, max_calls = (0.2, 10 * kit.QUICK_STEPS, 1000) if args.quick else (2.0, 500, 100_000)
    modes = ["eager"] if args.quick else ["eager", "compiled"]

    rows = []
    for name, model in models_to_time(args).items():
        for mode in modes:
            m = torch.compile(model) if mode == "compiled" else model
            with torch.inference_mode():
                with kit.timed(device) as first:
                    logits(m, torch.rand(1, 1, 28, 28, device=device))
                tp = {b: throughput(m, b, device, seconds, max_calls) for b in BATCHES}
                p50, p99 = latency(m, device, reps)
            rows.append([f"`{name}`", mode, *(f"{tp[b]:,.0f}" for b in BATCHES), f"{p50:.2f}", f"{p99:.2f}",
                         f"{first.seconds:.2f}"])
            print(f"{name:>14} {mode:>8}: " + ", ".join(f"batch {b}: {tp[b]:,.0f} img/s" for b in BATCHES)
                  + f"; latency p50 {p50:.2f} ms, p99 {p99:.2f} ms (first call {first.seconds:.2f} s)", flush=True)
    section = "\n".join([
        "## Inference speed (benchmarks.inference_speed)",
        "",
        f"Machine: {kit.machine()}, {threads} threads; fp32, channels-last, inference mode. Throughput in images/s;",
        "latency of one 28x28 image in ms; the first call includes compilation for `compiled`.",
        "",
        kit.markdown(["model", "mode", *(f"batch {b}" for b in BATCHES), "p50 ms", "p99 ms", "first call s"], rows,
                     "llrrrrrr"),
    ])
    print()
    print(section)
    kit.save_text(args.out, section)
    kit.publish(args, "inference-speed", section, when=args.write)


if __name__ == "__main__":
    kit.run(main)
