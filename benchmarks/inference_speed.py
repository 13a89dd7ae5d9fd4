"""Inference speed per recipe: throughput (images/s) at batch 1, 64 and 1024, and single-image latency
p50 / p99, eager vs torch.compile'd. Weights do not change the speed, so freshly built models are timed
(or a saved model with --model).

    python benchmarks/inference_speed.py             # the seed recipes and the modern ones
    python benchmarks/inference_speed.py --quick     # baseline and fast, eager only, fewer repetitions
    python benchmarks/inference_speed.py --model runs/main/model.safetensors
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from common import machine, update_section  # noqa: E402

from fmnist.engine.device import keep_freed_memory, resolve_device, set_threads  # noqa: E402
from fmnist.models import build_model  # noqa: E402
from fmnist.recipes import RECIPES, get_recipe  # noqa: E402

BATCHES = [1, 64, 1024]


def throughput(model, batch: int, device: torch.device, seconds: float) -> float:
    """Images per second at `batch`, over about `seconds` of repeated forward passes."""
    x = torch.rand(batch, 1, 28, 28, device=device).contiguous(memory_format=torch.channels_last)
    for _ in range(3):
        model(x)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds and n < 100_000:
        model(x)
        n += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n * batch / (time.perf_counter() - t0)


def latency(model, device: torch.device, reps: int) -> tuple[float, float]:
    """p50 and p99 of single-image latency, milliseconds."""
    x = torch.rand(1, 1, 28, 28, device=device)
    for _ in range(10):
        model(x)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        model(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    q = statistics.quantiles(times, n=100)
    return q[49], q[98]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipes", nargs="*", default=list(RECIPES))
    parser.add_argument("--model", type=Path, help="time this saved model instead of recipes")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--write", action="store_true", help="write the table into docs/results.md")
    args = parser.parse_args()
    device = resolve_device(args.device)
    threads = set_threads()
    if device.type == "cpu":
        keep_freed_memory()  # as fmnist's Predictor does
    seconds, reps = (0.5, 100) if args.quick else (2.0, 500)
    modes = ["eager"] if args.quick else ["eager", "compiled"]

    models = {}
    if args.model:
        from fmnist.checkpoint import load_model

        model, meta = load_model(args.model, device=device)
        models[meta.model] = model
    else:
        names = ["baseline", "fast"] if args.quick and args.recipes == list(RECIPES) else args.recipes
        for name in names:
            r = get_recipe(name)
            models[name] = build_model(r.model, **r.model_args).to(device).eval()

    rows = []
    print(f"machine: {machine()}; {threads} threads")
    for name, model in models.items():
        model = model.to(memory_format=torch.channels_last)
        for mode in modes:
            m = torch.compile(model) if mode == "compiled" else model
            with torch.inference_mode():
                t0 = time.perf_counter()
                m(torch.rand(1, 1, 28, 28, device=device))
                first = time.perf_counter() - t0
                tp = {b: throughput(m, b, device, seconds) for b in BATCHES}
                p50, p99 = latency(m, device, reps)
            row = {"model": name, "mode": mode, "first_call_s": first, **{f"b{b}": tp[b] for b in BATCHES}, "p50": p50, "p99": p99}
            rows.append(row)
            print(f"{name:>14} {mode:>8}: " + ", ".join(f"batch {b}: {tp[b]:,.0f} img/s" for b in BATCHES)
                  + f"; latency p50 {p50:.2f} ms, p99 {p99:.2f} ms (first call {first:.2f} s)", flush=True)
    lines = [
        "## Inference speed (benchmarks/inference_speed.py)",
        "",
        f"Machine: {machine()}, {threads} threads; fp32, channels-last, inference mode. Throughput in images/s;",
        "latency of one 28x28 image in ms; the first call includes compilation for `compiled`.",
        "",
        "| model | mode | batch 1 | batch 64 | batch 1024 | p50 ms | p99 ms | first call s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| `{r['model']}` | {r['mode']} | {r['b1']:,.0f} | {r['b64']:,.0f} | {r['b1024']:,.0f} | "
                     f"{r['p50']:.2f} | {r['p99']:.2f} | {r['first_call_s']:.2f} |")
    table = "\n".join(lines)
    print()
    print(table)
    if args.write and not args.quick:
        update_section("inference-speed", table)


if __name__ == "__main__":
    main()
