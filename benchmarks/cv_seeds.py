"""The second seed's experiment, repeated: 5-fold cross-validation of `baseline`, `baseline-same` and
`baseline-wide` on the same folds (KFold(5, shuffle=True, random_state=1)), 10 epochs each, and the
measured table written into docs/results.md beside the seed's figures.

    python -m benchmarks.cv_seeds                 # the full experiment (resumable: finished folds are kept)
    python -m benchmarks.cv_seeds --jobs 2        # the same folds in 2 processes (1 thread each)
    python -m benchmarks.cv_seeds --executors     # one small CV three ways: in-process, --jobs 2, Ray tasks
    python -m benchmarks.cv_seeds --precision-check   # baseline in bf16 (its recipe) against fp32, same folds
    python -m benchmarks.cv_seeds --quick         # 1 epoch on 2,000 images: checks the script, docs untouched

The folds run through `fmnist.cv.runner.run_cv` (what `fmnist cv` runs), each scored on its held-out fold
through fmnist.inference. The run lives in runs/bench/cv-seeds (or --out; runs/bench/quick/cv-seeds with
--quick); `fmnist cv` with the same arguments and --out reads it back. The seed's figures are the kit's SEED_CV.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from benchmarks import kit
from fmnist.cv.results import CVConfig, CVData, CVProgress, CVResult, FoldResult
from fmnist.cv.runner import run_cv
from fmnist.cv.store import FOLDS_DIR
from fmnist.recipes import get_recipe

RECIPES = ["baseline", "baseline-same", "baseline-wide"]
EPOCHS = 10
EXECUTOR_EPOCHS, EXECUTOR_LIMIT = 2, 6000  # --executors: a small CV, run three ways


def fold_cells(results: list[FoldResult]) -> tuple[str, float]:
    """A recipe's fold scores as "90.38, 91.40, ..." (percent) and its mean seconds per fold."""
    return ", ".join(f"{r.score * 100:.2f}" for r in results), sum(r.seconds for r in results) / len(results)


class Printer(CVProgress):
    def fold_done(self, result: FoldResult, fold) -> None:
        how = "read back" if result.reused else f"{result.seconds:.1f} s"
        print(f"{result.recipe} {fold.label}: {result.score * 100:.2f}% ({how})", flush=True)


def cross_validate(args, names: list[str] | tuple, out: Path, epochs: int, limit: int | None = None,
                   recipes: tuple = (), **kw) -> CVResult:
    """run_cv on the seed's folds (5, seed 1) of the dataset (the --quick subset with --quick, at its size)."""
    if args.quick:
        kit.clear_quick(out)
        epochs, limit = kit.QUICK_EPOCHS, None
    recipes = recipes or tuple(get_recipe(n) for n in names)
    config = CVConfig(recipes=tuple(r.replace(epochs=epochs) for r in recipes), out=out, folds=5, seed=1,
                      limit=limit, device=args.device, **kw)
    return run_cv(config, CVData.from_dataset(kit.dataset(args.quick)), Printer())


def render(cv: CVResult, load: float) -> str:
    """The markdown section: one row per recipe, then the paired comparisons."""
    header = ["recipe", "seed's 5-fold % (std)", "ours, 5-fold %", "ours, population std", "95% CI", "fold scores %",
              "s/fold", "precision"]
    rows = []
    for name, results in cv.results.items():
        s = cv.summaries[name]
        seed_mean, seed_std = kit.SEED_CV.get(name, (float("nan"), float("nan")))
        folds, secs = fold_cells(results)
        rows.append([f"`{name}`", f"{seed_mean:.2f} ({seed_std:.2f})", f"{s.mean * 100:.2f} ± {s.std * 100:.2f}",
                     f"{np.std([r.score for r in results]) * 100:.2f}", f"{s.ci_low * 100:.2f}–{s.ci_high * 100:.2f}",
                     folds, f"{secs:.0f}", results[0].autocast])
    threads = {r.threads for rs in cv.results.values() for r in rs}
    return "\n".join([
        "## Cross-validation of the seed-002 variants",
        "",
        "`fmnist cv baseline baseline-same baseline-wide --folds 5 --epochs 10` (written by",
        "`python -m benchmarks.cv_seeds`): every recipe trained on exactly the same 5 folds of the 60,000 training",
        "images (`KFold(5, shuffle=True, random_state=1)`, 48,000 train / 12,000 held out), scored on the",
        "held-out fold after the last epoch. ± is the sample standard deviation over the 5 folds; the seed's std",
        "is numpy's population std, so the column beside it gives ours the same way. The interval is the 95%",
        "t-interval of the mean.",
        "",
        kit.markdown(header, rows, "lrrrrlrl"),
        "",
        "Paired comparisons on the same folds (paired t-test, 4 degrees of freedom):",
        "",
        *[f"- {c.sentence}" for c in cv.comparisons],
        "",
        f"Machine: {kit.machine()}; {cv.executor}, {', '.join(map(str, sorted(threads)))} thread(s) per fold; "
        f"load average {load:.1f} at the end.",
    ])


def compare_executors(args) -> None:
    """The same small CV in-process, in 2 processes and as Ray tasks: are the fold scores identical?"""
    ways = [("in-process", {}), ("--jobs 2", {"jobs": 2}), ("--ray", {"ray": True, "jobs": 2})]
    scores, seconds = {}, {}
    for label, kw in ways:
        out = kit.bench_dir(args.quick) / f"cv-executors-{label.strip('-').replace(' ', '')}"
        with kit.timed(args.device) as t:
            cv = cross_validate(args, RECIPES, out, EXECUTOR_EPOCHS, EXECUTOR_LIMIT, threads=1, **kw)
        seconds[label], scores[label] = t.seconds, cv.scores()
    same = all(scores[label] == scores[ways[0][0]] for label, _ in ways)
    images, epochs = (kit.QUICK_LIMIT, kit.QUICK_EPOCHS) if args.quick else (EXECUTOR_LIMIT, EXECUTOR_EPOCHS)
    rows = [[f"`{name}`", *(", ".join(f"{x * 100:.2f}" for x in scores[label][name]) for label, _ in ways)]
            for name in RECIPES]
    section = "\n".join([
        "## Cross-validation executors give the same fold scores",
        "",
        f"`python -m benchmarks.cv_seeds --executors`: the three recipes, 5 folds of a seeded {images:,}-image "
        f"subset, {epochs} epoch{'s' if epochs > 1 else ''},",
        "1 thread per fold, run in this process, in 2 worker processes (`--jobs 2`) and as tasks on a local Ray",
        "instance (`--ray`). Fold scores, held-out accuracy %:",
        "",
        kit.markdown(["recipe", *(label for label, _ in ways)], rows),
        "",
        f"Identical to the last digit: {'yes' if same else 'NO'}. Wall seconds: "
        + ", ".join(f"{label} {secs:.0f}" for label, secs in seconds.items())
        + " (Ray's includes starting the local instance; a folder already holding finished folds would be read back).",
    ])
    print(section)
    kit.publish(args, "cv-executors", section)


def precision_check(args) -> None:
    """Does bf16 autocast cost `baseline` accuracy? The paired comparison on the seed's 5 folds says."""
    out = kit.bench_dir(args.quick) / "cv-precision"
    bf16 = get_recipe("baseline")
    fp32 = bf16.replace(name="baseline-fp32", precision="fp32")
    # The bf16 folds are the main run's: same recipe, folds and data, so they are read back, not retrained.
    src = kit.bench_dir(args.quick) / "cv-seeds" / FOLDS_DIR / "baseline"
    if not args.quick and src.exists() and not (out / FOLDS_DIR / "baseline").exists():
        shutil.copytree(src, out / FOLDS_DIR / "baseline")
    cv = cross_validate(args, (), out, EPOCHS, recipes=(bf16, fp32))
    rows = []
    for name, results in cv.results.items():
        s = cv.summaries[name]
        folds, secs = fold_cells(results)
        rows.append([f"`{name}`", f"{s.mean * 100:.2f} ± {s.std * 100:.2f}", folds, f"{secs:.0f}"])
    section = "\n".join([
        "## Does bf16 cost accuracy? `baseline` in bf16 against fp32 on the same folds",
        "",
        "`python -m benchmarks.cv_seeds --precision-check`: the seed's 5 folds, 10 epochs; `baseline` runs in bf16",
        "autocast (its recipe; the logits layer stays fp32), `baseline-fp32` is the same recipe in fp32 throughout.",
        "",
        kit.markdown(["recipe", "5-fold %", "fold scores %", "s/fold"], rows, "lrlr"),
        "",
        *[f"- {c.sentence}" for c in cv.comparisons],
    ])
    print(section)
    kit.publish(args, "cv-precision", section)


def main(argv: list[str] | None = None) -> None:
    parser = kit.parser(__doc__, out_help="the cross-validation run directory (default runs/bench/cv-seeds)")
    parser.add_argument("--jobs", type=kit.positive, default=1, help="folds trained at once, each in its own process")
    parser.add_argument("--ray", action="store_true", help="run the folds as tasks on a local Ray instance")
    parser.add_argument("--executors", action="store_true",
                        help=f"{EXECUTOR_EPOCHS} epochs on {EXECUTOR_LIMIT:,} images, run in-process, in 2 processes "
                             "and as Ray tasks (1 thread per fold each time); compare the fold scores")
    parser.add_argument("--precision-check", action="store_true",
                        help="baseline (bf16, its recipe's precision) against the same recipe in fp32 on the same "
                             "5 folds; the bf16 folds are read back from the main run")
    args = parser.parse_args(argv)
    kit.begin(args)  # --threads: intra-op threads per fold, as `fmnist cv --threads`
    if args.precision_check:
        precision_check(args)
        return
    if args.executors:
        compare_executors(args)
        return

    out = args.out or kit.bench_dir(args.quick) / "cv-seeds"
    with kit.timed(args.device) as t:
        cv = cross_validate(args, RECIPES, out, EPOCHS, jobs=args.jobs, threads=args.threads, ray=args.ray)
    print(f"{cv.trained} folds trained, {cv.reused} read back, {t.seconds:.0f} s")
    section = render(cv, kit.load_average())
    print()
    print(section)
    kit.publish(args, "cv", section)


if __name__ == "__main__":
    kit.run(main)
