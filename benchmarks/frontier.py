"""Accuracy against training time for every recipe measured (the seeds' and ours), as one plot:
docs/frontier.png, linked from docs/results.md. Reads the result files the other benchmarks write
(runs/bench/seeds.json, runs/bench/modern.json); each point is a recipe's mean over its runs, with the
worst and best run as an error bar. The seeds' own Keras code is drawn beside ours: the figures in
../shared/SEEDS.md (the kit's KERAS_SEEDS_MD), and the runs benchmarks.side_by_side made here
(runs/bench/side_by_side*.json). The dashed lines are `fast`'s CPU target (the kit's TARGETS).

    python -m benchmarks.frontier
    python -m benchmarks.frontier --quick     # draws runs/bench/quick/frontier.png; docs/ untouched

--quick draws from the full results if there are any, else from the --quick ones (runs/bench/quick/), and
says so and draws nothing when there are neither.
"""

from __future__ import annotations

import sys
from pathlib import Path

from matplotlib.figure import Figure

from benchmarks import kit
from fmnist.plots.figure import save_figure

# Label offsets (points) and alignment where labels would overlap; the default is up and to the right.
OFFSETS = {"baseline-wide": (-6, 5, "right"), "Keras baseline, SEEDS.md": (6, 4, "left")}


def keras_here(bench: Path) -> list[tuple[str, float, float]]:
    """The seeds' Keras `baseline` as benchmarks.side_by_side measured it here (every round it recorded,
    earlier engines' result files included): mean training seconds and mean test accuracy %."""
    rows = [r for f in sorted(bench.glob("side_by_side*.json")) for r in kit.read_results(f)]
    runs = {(r["date"], r["train_seconds"]): r for r in rows if r["system"] == "baseline" and "Keras" in r["versions"]}
    if not runs:
        return []
    g = kit.RunGroup(("keras",), list(runs.values()))
    return [(f"baseline, measured beside ours ({g.n} runs)", g.mean("train_seconds"), g.mean("test_accuracy", 100))]


def points(bench: Path) -> list[kit.RunGroup]:
    """One group per recipe and precision of the seeds' and the modern results in `bench`, CPU rows only."""
    rows = kit.read_results(bench / "seeds.json") + kit.read_results(bench / "modern.json")
    return kit.group_runs(rows, "recipe", "precision", where=lambda r: r.get("device", "cpu") == "cpu" and kit.current(r))


def draw(ours: list[kit.RunGroup], keras: list[tuple[str, float, float]], out: Path) -> None:
    """The plot: ours in blue with worst/best bars, Keras in red, the `fast` CPU target dashed."""
    fig = Figure(figsize=(8, 5.5), layout="constrained")
    ax = fig.subplots()
    for g in ours:
        secs, mean = g.mean("train_seconds"), g.mean("test_accuracy", 100)
        accs = g.values("test_accuracy", 100)
        ax.errorbar(secs, mean, yerr=[[mean - min(accs)], [max(accs) - mean]], fmt="o", color="tab:blue", capsize=3)
        dx, dy, ha = OFFSETS.get(g.key[0], (6, 4, "left"))
        ax.annotate(f"{g.key[0]} ({g.n} run{'s' if g.n > 1 else ''})", (secs, mean), textcoords="offset points",
                    xytext=(dx, dy), ha=ha, fontsize=8)
    for label, secs, acc in keras:
        ax.plot(secs, acc, "s", color="tab:red")
        dx, dy, ha = OFFSETS.get(f"Keras {label}", (6, -10, "left"))
        ax.annotate(f"Keras {label}", (secs, acc), textcoords="offset points", xytext=(dx, dy), ha=ha, fontsize=8,
                    color="tab:red")
    target_acc, target_secs = kit.TARGETS["cpu"]["fast"]
    ax.axhline(target_acc, color="gray", lw=0.8, ls="--")
    ax.axvline(target_secs, color="gray", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("training seconds on 2 CPU cores (log scale)")
    ax.set_ylabel("test accuracy, % (mean; bars: worst and best run)")
    ax.set_title("Fashion-MNIST: accuracy against training time (blue: fmnist, red: the seeds' Keras code)",
                 fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    save_figure(fig, out, dpi=110, tight=False)


def main(argv: list[str] | None = None) -> None:
    parser = kit.parser(__doc__, out_help="the PNG to draw (default docs/frontier.png; with --quick "
                                          "runs/bench/quick/frontier.png)")
    args = parser.parse_args(argv)
    kit.begin(args)
    out = args.out or (kit.QUICK_DIR / "frontier.png" if args.quick else kit.ROOT / "docs" / "frontier.png")

    bench = kit.BENCH
    ours = points(bench)
    if not ours and args.quick:
        bench = kit.QUICK_DIR
        ours = points(bench)
    if not ours:
        message = ("no results yet: run python -m benchmarks.reproduce_seeds and python -m benchmarks.modern_recipes "
                   "first")
        if args.quick:
            print(f"{message}; nothing drawn (--quick)")
            return
        sys.exit(message)
    keras = [(f"{name}, SEEDS.md", ref.train_seconds, ref.test_accuracy) for name, ref in kit.KERAS_SEEDS_MD.items()]
    keras += keras_here(bench)
    print(f"results read from {bench}")
    print(kit.markdown(["recipe", "precision", "runs", "test % mean", "worst–best", "train s (mean)"],
                       [[f"`{g.key[0]}`", g.key[1], g.n, f"{g.mean('test_accuracy', 100):.2f}", g.span(),
                         f"{g.mean('train_seconds'):.0f}"] for g in ours]
                       + [[f"Keras {label}", kit.NONE, kit.NONE, f"{acc:.2f}", kit.NONE, f"{secs:.0f}"]
                          for label, secs, acc in keras], "llrrrr"))
    draw(ours, keras, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    kit.run(main)
