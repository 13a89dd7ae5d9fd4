"""Accuracy against training time for every recipe measured (the seeds' and ours), as one plot:
docs/frontier.png, linked from docs/results.md. Reads the result files the other benchmarks write
(runs/bench/seeds.json, runs/bench/modern.json); each point is a recipe's mean over its runs, with the
worst and best run as an error bar. The seeds' own Keras code is drawn beside ours: the figures in
../shared/SEEDS.md, and the runs benchmarks/side_by_side.py made here (runs/bench/side_by_side*.json).

    python benchmarks/frontier.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, read_results  # noqa: E402

from fmnist.fileio import atomic_path  # noqa: E402

# Keras 3 + TensorFlow 2.21 on this machine kind running the seeds' own code (../shared/SEEDS.md):
# (recipe, training seconds, test accuracy %).
KERAS = [("baseline, SEEDS.md", 77.0, 91.12), ("minivgg, SEEDS.md", 25 * 48.0, 93.27)]
# Label offsets (points) and alignment where labels would overlap; the default is up and to the right.
OFFSETS = {"baseline-wide": (-6, 5, "right"), "Keras baseline, SEEDS.md": (6, 4, "left")}


def keras_here(bench: Path) -> list[tuple[str, float, float]]:
    """The seeds' Keras `baseline` as benchmarks/side_by_side.py measured it here (every round it recorded,
    earlier engines' result files included): mean training seconds and mean test accuracy %."""
    rows = [r for f in sorted(bench.glob("side_by_side*.json")) for r in read_results(f)]
    runs = {(r["date"], r["train_seconds"]): r for r in rows if r["system"] == "baseline" and "Keras" in r["versions"]}
    if not runs:
        return []
    secs = statistics.mean(r["train_seconds"] for r in runs.values())
    acc = statistics.mean(r["test_accuracy"] * 100 for r in runs.values())
    return [(f"baseline, measured beside ours ({len(runs)} runs)", secs, acc)]


def points(rows: list[dict]) -> list[tuple[str, float, float, float, float, int]]:
    """(label, mean seconds, mean accuracy %, worst %, best %, runs) per recipe and precision, CPU rows only."""
    out = []
    for name, precision in sorted({(r["recipe"], r["precision"]) for r in rows if r.get("device", "cpu") == "cpu"}):
        rs = [r for r in rows if (r["recipe"], r["precision"]) == (name, precision) and r.get("device", "cpu") == "cpu"]
        accs = [r["test_accuracy"] * 100 for r in rs]
        secs = statistics.mean(r["train_seconds"] for r in rs)
        out.append((name, secs, statistics.mean(accs), min(accs), max(accs), len(rs)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "frontier.png")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bench = ROOT / "runs" / "bench"
    ours = points(read_results(bench / "seeds.json")) + points(read_results(bench / "modern.json"))
    if not ours:
        sys.exit("no results yet: run benchmarks/reproduce_seeds.py and benchmarks/modern_recipes.py first")
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for label, secs, mean, lo, hi, n in ours:
        ax.errorbar(secs, mean, yerr=[[mean - lo], [hi - mean]], fmt="o", color="tab:blue", capsize=3)
        dx, dy, ha = OFFSETS.get(label, (6, 4, "left"))
        ax.annotate(f"{label} ({n} run{'s' if n > 1 else ''})", (secs, mean), textcoords="offset points",
                    xytext=(dx, dy), ha=ha, fontsize=8)
        print(f"{label:>14}: {mean:.2f}% ({n} runs, {lo:.2f}-{hi:.2f}) in {secs:.0f} s")
    for label, secs, acc in KERAS + keras_here(bench):
        ax.plot(secs, acc, "s", color="tab:red")
        dx, dy, ha = OFFSETS.get(f"Keras {label}", (6, -10, "left"))
        ax.annotate(f"Keras {label}", (secs, acc), textcoords="offset points", xytext=(dx, dy), ha=ha, fontsize=8,
                    color="tab:red")
    ax.axhline(93.5, color="gray", lw=0.8, ls="--")
    ax.axvline(180, color="gray", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("training seconds on 2 CPU cores (log scale)")
    ax.set_ylabel("test accuracy, % (mean; bars: worst and best run)")
    ax.set_title("Fashion-MNIST: accuracy against training time (blue: fmnist, red: the seeds' Keras code)")
    ax.title.set_fontsize(10)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    with atomic_path(args.out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
