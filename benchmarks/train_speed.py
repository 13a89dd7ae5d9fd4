"""Training speed per recipe: seconds per epoch, images per second, achieved GFLOP/s against the machine's
peak, and time-to-accuracy (training seconds until the validation accuracy first crosses 91 / 93 / 93.5 /
94 / 95 %).

    python benchmarks/train_speed.py                  # every recipe, full epochs, full data
    python benchmarks/train_speed.py --quick          # 1 epoch on 6,000 images of a few recipes: the table in ~1 min
    python benchmarks/train_speed.py fast minivgg --epochs 3

Achieved GFLOP/s counts 6 FLOPs per multiply-accumulate per training image (forward 2, backward 4), from
the model summary; the peak is measured here with large matrix products (fp32 and bf16), as the issue's
figures were (about 190 and 810 GFLOP/s on 2 cores).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from common import load_average, machine, update_section  # noqa: E402

from fmnist.data import load_dataset  # noqa: E402
from fmnist.engine.device import resolve_device, set_threads  # noqa: E402
from fmnist.engine.trainer import TrainOptions, fit  # noqa: E402
from fmnist.models import build_model  # noqa: E402
from fmnist.models.summary import summarize  # noqa: E402
from fmnist.recipes import RECIPES, get_recipe  # noqa: E402
from fmnist.runs import split_for_validation, subset  # noqa: E402

THRESHOLDS = [0.91, 0.93, 0.935, 0.94, 0.95]


def peak_gflops(dtype: torch.dtype, device: torch.device, n: int = 2048, reps: int = 10) -> float:
    """GFLOP/s of an n x n matrix product: the practical ceiling for this machine and dtype."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def time_to(history: list, threshold: float) -> float | None:
    """Cumulative training seconds at the first epoch whose validation accuracy reaches `threshold`."""
    total = 0.0
    for h in history:
        total += h.seconds
        if h.val_acc is not None and h.val_acc >= threshold:
            return total
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipes", nargs="*", default=list(RECIPES))
    parser.add_argument("--quick", action="store_true", help="1 epoch on 6,000 images, a few recipes")
    parser.add_argument("--epochs", type=int, default=None, help="override epochs")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="recipe", help="recipe (its own), auto, bf16 or fp32")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--write", action="store_true", help="write the table into docs/results.md")
    args = parser.parse_args()

    device = resolve_device(args.device)
    threads = set_threads()
    names = args.recipes if not (args.quick and args.recipes == list(RECIPES)) else ["baseline", "minivgg", "fast"]
    names = [n for n in names if n in RECIPES]
    ds = load_dataset()
    peak32, peak16 = peak_gflops(torch.float32, device), peak_gflops(torch.bfloat16, device)
    print(f"machine: {machine()}; {threads} threads; load {load_average():.1f}")
    print(f"peak matmul: fp32 {peak32:.0f} GFLOP/s, bf16 {peak16:.0f} GFLOP/s")

    rows = []
    for name in names:
        recipe = get_recipe(name)
        if args.quick:
            recipe = recipe.replace(epochs=1)
        if args.epochs:
            recipe = recipe.replace(epochs=args.epochs)
        images, labels = ds.train.images, ds.train.labels
        if args.quick:
            images, labels = subset(images, labels, 6000, 0)
        train, val = split_for_validation(recipe, images, labels, (ds.test.images, ds.test.labels), 0)
        opts = TrainOptions(seed=0, device=args.device, precision=args.precision, compile=args.compile)
        t0 = time.perf_counter()
        result = fit(recipe, train, val, opts, num_classes=10)
        wall = time.perf_counter() - t0
        macs = summarize(build_model(recipe.model, **recipe.model_args)).macs
        n_img = len(train[1])
        # Epoch 1 carries the one-time costs (compilation, allocator warm-up); report the steady state apart.
        secs = [h.seconds for h in result.history]
        steady = sorted(secs[1:])[len(secs[1:]) // 2] if len(secs) > 1 else secs[0]
        ips = n_img / steady
        gflops = 6 * macs * ips / 1e9
        peak = peak16 if result.precision == "bf16" else peak32
        row = {
            "recipe": name, "epochs": recipe.epochs, "batch": recipe.batch_size, "precision": result.precision,
            "first_epoch_s": secs[0], "s_per_epoch": steady, "images_per_s": ips, "gflops": gflops,
            "peak_fraction": gflops / peak, "total_s": result.seconds, "wall_s": wall,
            "val": recipe.validation, "final_val": result.history[-1].val_acc,
            **{f"t{t * 100:g}": time_to(result.history, t) for t in THRESHOLDS},
        }
        rows.append(row)
        print(format_row(row), flush=True)
    table = render(rows, peak32, peak16, threads)
    print()
    print(table)
    if args.write and not args.quick:
        update_section("train-speed", table)


def format_row(r: dict) -> str:
    """One line for the console."""
    return (f"{r['recipe']:>14}: {r['s_per_epoch']:.2f} s/epoch (first {r['first_epoch_s']:.2f}), "
            f"{r['images_per_s']:.0f} img/s, {r['gflops']:.0f} GFLOP/s ({r['peak_fraction']:.0%} of {r['precision']} peak)")


def render(rows: list[dict], peak32: float, peak16: float, threads: int) -> str:
    """The markdown table."""
    def tt(v: float | None) -> str:
        return f"{v:.0f}" if v is not None else "–"

    lines = [
        "## Training speed (benchmarks/train_speed.py)",
        "",
        f"Machine: {machine()}, {threads} threads. Peak matmul measured here: fp32 {peak32:.0f}, bf16 {peak16:.0f} GFLOP/s.",
        "s/epoch is the median of epochs 2..n (epoch 1 includes one-time costs, shown apart). Time-to-accuracy",
        "columns: training seconds until the per-epoch validation accuracy first reaches the figure (– = never).",
        "",
        "| recipe | precision | batch | first epoch s | s/epoch | images/s | GFLOP/s | % of peak | val | final val % | →91% | →93% | →93.5% | →94% | →95% |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        fv = f"{r['final_val'] * 100:.2f}" if r["final_val"] is not None else "–"
        lines.append(
            f"| `{r['recipe']}` | {r['precision']} | {r['batch']} | {r['first_epoch_s']:.1f} | {r['s_per_epoch']:.2f} | "
            f"{r['images_per_s']:.0f} | {r['gflops']:.0f} | {r['peak_fraction']:.0%} | {r['val']} | {fv} | "
            + " | ".join(tt(r[f"t{t * 100:g}"]) for t in THRESHOLDS) + " |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
