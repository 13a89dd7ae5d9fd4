"""The modern recipes against their targets: train `fast` and `best` several times with their own protocol
(hyperparameters chosen on a held-out 10% of the training set; the test set read once, at the end of each
run) and write the measured table into docs/results.md.

    python -m benchmarks.modern_recipes                  # fast and best, 3 runs each (seeds 0, 1, 2)
    python -m benchmarks.modern_recipes fast --runs 5
    python -m benchmarks.modern_recipes --device cuda --runs 5 --out runs/bench/modern-gpu.json
    python -m benchmarks.modern_recipes --quick          # 1 run each, 1 epoch on 2,000 images: checks the script

Targets (the kit's TARGETS), training time only, data cached: on 2 CPU cores `fast` >= 94.0% test in <= 60 s,
`best` >= 95.5% in <= 10 minutes and `sota` >= 96.0% (as fast as it can be had); on one GPU `fast` >= 94.0% in
<= 5 s and `sota` >= 96.0% in <= 2 minutes (with --compile, the compile time apart). Each run is
`fmnist train`'s own path (fmnist.pipeline.train_run: the test figure is the fp32 one `fmnist evaluate`
prints). Runs already measured are read back from the results file, so the table grows as runs are added, and
rows of docs/results.md for recipes the results file has no runs of are kept; a
results file whose name has "gpu" in it writes the "modern-gpu" section instead of "modern".
"""

from __future__ import annotations

from benchmarks import kit
from fmnist.recipes import get_recipe

# What a recipe's validation protocol means for the images it trains on (fmnist.data.splits).
TRAIN_ON = {"holdout": "holdout", "none": "all", "test": "all"}


def main(argv: list[str] | None = None) -> None:
    parser = kit.parser(__doc__, out_help="the results file (default runs/bench/modern.json)")
    parser.add_argument("recipes", nargs="*", default=["fast", "best"])
    parser.add_argument("--runs", type=kit.positive, default=None,
                        help="runs per recipe (seeds 0..runs-1; default 3, 1 with --quick)")
    parser.add_argument("--precision", default="recipe", help="recipe (its own), auto, bf16 or fp32")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the model; the compile time is recorded apart from the training time")
    args = parser.parse_args(argv)
    kit.begin(args)

    ds = kit.dataset(args.quick)
    results = args.out or kit.bench_dir(args.quick) / "modern.json"
    if args.quick:
        kit.clear_quick(results)
        kit.clear_quick(results.parent / "modern")
    for name in args.recipes:
        recipe = get_recipe(name)
        if args.quick:
            recipe = recipe.replace(epochs=kit.QUICK_EPOCHS)
        runs = args.runs or (1 if args.quick else 3)
        kit.measure_runs(results, recipe, runs, args.precision, ds, group="modern", device=args.device,
                         compile=args.compile)
    section = render(kit.read_results(results), current_only=not args.quick)
    print()
    print(section)
    kit.publish(args, "modern-gpu" if "gpu" in results.stem else "modern", section, keep=3)


def render(rows: list[dict], current_only: bool = True) -> str:
    """One line per (recipe, device, precision): mean ± std test accuracy over the runs, training seconds; only
    the runs of each recipe as the registry defines it now, unless `current_only` is False (--quick, whose runs
    are cut to an epoch)."""
    cells = []
    for g in kit.group_runs(rows, "recipe", "device", "precision", "compiled", where=kit.current if current_only else None):
        name, device, precision, compiled = g.key
        mean, secs = g.mean("test_accuracy", 100), g.mean("train_seconds")
        target = kit.TARGETS.get(device.split(":")[0], {}).get(name)
        met = ""
        if target:
            ok = mean >= target[0] and (target[1] is None or secs <= target[1])
            met = f"{'yes' if ok else 'no'} (>= {target[0]}%" + (f" in <= {target[1]:g} s)" if target[1] else ")")
        cells.append([
            f"`{name}`", device, precision + (", compiled" if compiled else ""),
            TRAIN_ON.get(g.rows[0].get("validation"), "?"), g.n, g.rows[0]["epochs"],
            g.mean_pm(), g.span(), f"{secs:.0f}" if secs >= 10 else f"{secs:.1f}", f"{g.mean('seconds_per_epoch'):.2f}",
            f"{g.mean('compile_seconds'):.1f}" if compiled else "–", met,
        ])
    header = ["recipe", "device", "precision", "train on", "runs", "epochs", "test % mean ± std", "worst–best",
              "train s (mean)", "s/epoch", "compile s (apart)", "target met?"]
    machines = sorted({r["machine"] for r in rows})
    return "\n".join([
        "## The modern recipes against the targets",
        "",
        "Each run: hyperparameters as chosen on the held-out 10% of the training set, then trained as the",
        "`train on` column says (`holdout`: on the other 90%, validating on the 10% after every epoch; `all`: on",
        "all 60,000 images, no per-epoch validation), the test set read once after training. Accuracy is the",
        "mean over the runs (seeds 0..n-1) ± the sample standard deviation, with the worst and best run; seconds",
        "are training time (validation included), measured by `python -m benchmarks.modern_recipes`.",
        "",
        kit.markdown(header, cells, "llllrrrrrrrl"),
        "",
        f"Machine: {'; '.join(machines)}. Load average before the runs: {kit.loads_line(rows)}.",
    ])


if __name__ == "__main__":
    kit.run(main)
