"""The second seed's experiment, repeated: 5-fold cross-validation of `baseline`, `baseline-same` and
`baseline-wide` on the same folds (KFold(5, shuffle=True, random_state=1)), 10 epochs each, and the
measured table written into docs/results.md beside the seed's figures.

    python benchmarks/cv_seeds.py                 # the full experiment (resumable: finished folds are kept)
    python benchmarks/cv_seeds.py --quick         # 2 epochs on 6,000 images; does not touch docs/
    python benchmarks/cv_seeds.py --jobs 2        # the same folds in 2 processes (1 thread each)
    python benchmarks/cv_seeds.py --executors     # one small CV three ways: in-process, --jobs 2, Ray tasks
    python benchmarks/cv_seeds.py --precision-check   # baseline in bf16 (its recipe) against fp32, same folds

The run lives in runs/bench/cv-seeds (runs/bench/cv-seeds-quick with --quick); `fmnist cv` with the same
arguments and --out reads it back.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, load_average, machine, update_section  # noqa: E402

from fmnist.cv.runner import CVConfig, CVData, CVProgress, CVResult, FoldResult, run_cv  # noqa: E402
from fmnist.data import load_dataset  # noqa: E402
from fmnist.recipes import get_recipe  # noqa: E402

RECIPES = ["baseline", "baseline-same", "baseline-wide"]
# Seed 002's 5-fold figures (mean %, std %), ../shared/SEEDS.md.
SEED_CV = {"baseline": (91.187, 0.121), "baseline-same": (91.257, 0.209), "baseline-wide": (90.913, 0.412)}


def fold_cells(results: list[FoldResult]) -> tuple[str, float]:
    """A recipe's fold scores as "90.38, 91.40, ..." (percent) and its mean seconds per fold."""
    return ", ".join(f"{r.score * 100:.2f}" for r in results), sum(r.seconds for r in results) / len(results)


class Printer(CVProgress):
    def fold_done(self, result: FoldResult, fold) -> None:
        how = "read back" if result.reused else f"{result.seconds:.1f} s"
        print(f"{result.recipe} {fold.label}: {result.score * 100:.2f}% ({how})", flush=True)


def render(cv: CVResult, load: float) -> str:
    """The markdown section: one row per recipe, then the paired comparisons."""
    lines = [
        "## Cross-validation of the seed-002 variants (issue 4)",
        "",
        "`fmnist cv baseline baseline-same baseline-wide --folds 5 --epochs 10` (written by",
        "`benchmarks/cv_seeds.py`): every recipe trained on exactly the same 5 folds of the 60,000 training",
        "images (`KFold(5, shuffle=True, random_state=1)`, 48,000 train / 12,000 held out), scored on the",
        "held-out fold after the last epoch. ± is the sample standard deviation over the 5 folds; the seed's std",
        "is numpy's population std, so the column beside it gives ours the same way. The interval is the 95%",
        "t-interval of the mean.",
        "",
        "| recipe | seed's 5-fold % (std) | ours, 5-fold % | ours, population std | 95% CI | fold scores % | s/fold | precision |",
        "|---|---:|---:|---:|---:|---|---:|---|",
    ]
    for name, results in cv.results.items():
        s = cv.summaries[name]
        seed_mean, seed_std = SEED_CV.get(name, (float("nan"), float("nan")))
        folds, secs = fold_cells(results)
        lines.append(
            f"| `{name}` | {seed_mean:.2f} ({seed_std:.2f}) | {s.mean * 100:.2f} ± {s.std * 100:.2f} | "
            f"{np.std([r.score for r in results]) * 100:.2f} | "
            f"{s.ci_low * 100:.2f}–{s.ci_high * 100:.2f} | {folds} | {secs:.0f} | {results[0].autocast} |"
        )
    lines += ["", "Paired comparisons on the same folds (paired t-test, 4 degrees of freedom):", ""]
    lines += [f"- {c.sentence}" for c in cv.comparisons]
    threads = {r.threads for rs in cv.results.values() for r in rs}
    lines += [
        "",
        f"Machine: {machine()}; {cv.executor}, {', '.join(map(str, sorted(threads)))} thread(s) per fold; "
        f"load average {load:.1f} at the end.",
    ]
    return "\n".join(lines)


def compare_executors() -> None:
    """The same small CV in-process, in 2 processes and as Ray tasks: are the fold scores identical?"""
    ways = [("in-process", {}), ("--jobs 2", {"jobs": 2}), ("--ray", {"ray": True, "jobs": 2})]
    data = CVData.from_dataset(load_dataset())
    scores, seconds = {}, {}
    for label, kw in ways:
        out = ROOT / "runs" / "bench" / f"cv-executors-{label.strip('-').replace(' ', '')}"
        config = CVConfig(recipes=tuple(get_recipe(n).replace(epochs=2) for n in RECIPES), out=out, folds=5, seed=1,
                          limit=6000, threads=1, **kw)
        t0 = time.perf_counter()
        cv = run_cv(config, data, Printer())
        seconds[label] = time.perf_counter() - t0
        scores[label] = cv.scores()
    same = all(scores[label] == scores[ways[0][0]] for label, _ in ways)
    lines = [
        "## Cross-validation executors give the same fold scores (issue 4)",
        "",
        "`benchmarks/cv_seeds.py --executors`: the three recipes, 5 folds of a seeded 6,000-image subset, 2 epochs,",
        "1 thread per fold, run in this process, in 2 worker processes (`--jobs 2`) and as tasks on a local Ray",
        "instance (`--ray`). Fold scores, held-out accuracy %:",
        "",
        "| recipe | " + " | ".join(label for label, _ in ways) + " |",
        "|---|" + "---|" * len(ways),
    ]
    for name in RECIPES:
        cells = [", ".join(f"{x * 100:.2f}" for x in scores[label][name]) for label, _ in ways]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    lines += ["", f"Identical to the last digit: {'yes' if same else 'NO'}. Wall seconds: "
              + ", ".join(f"{label} {secs:.0f}" for label, secs in seconds.items())
              + " (Ray's includes starting the local instance; a folder already holding finished folds would be read back)."]
    section = "\n".join(lines)
    print(section)
    update_section("cv-executors", section)


def precision_check() -> None:
    """Does bf16 autocast cost `baseline` accuracy? The paired comparison on the seed's 5 folds says."""
    import shutil

    from fmnist.cv.runner import FOLDS_DIR

    main_run = ROOT / "runs" / "bench" / "cv-seeds"
    out = ROOT / "runs" / "bench" / "cv-precision"
    bf16 = get_recipe("baseline").replace(epochs=10)
    fp32 = bf16.replace(name="baseline-fp32", precision="fp32")
    # The bf16 folds are the main run's: same recipe, folds and data, so they are read back, not retrained.
    src = main_run / FOLDS_DIR / "baseline"
    if src.exists() and not (out / FOLDS_DIR / "baseline").exists():
        shutil.copytree(src, out / FOLDS_DIR / "baseline")
    config = CVConfig(recipes=(bf16, fp32), out=out, folds=5, seed=1)
    cv = run_cv(config, CVData.from_dataset(load_dataset()), Printer())
    lines = [
        "## Does bf16 cost accuracy? `baseline` in bf16 against fp32 on the same folds",
        "",
        "`benchmarks/cv_seeds.py --precision-check`: the seed's 5 folds, 10 epochs; `baseline` runs in bf16 autocast",
        "(its recipe; the logits layer stays fp32), `baseline-fp32` is the same recipe in fp32 throughout.",
        "",
        "| recipe | 5-fold % | fold scores % | s/fold |",
        "|---|---:|---|---:|",
    ]
    for name, results in cv.results.items():
        s = cv.summaries[name]
        folds, secs = fold_cells(results)
        lines.append(f"| `{name}` | {s.mean * 100:.2f} ± {s.std * 100:.2f} | {folds} | {secs:.0f} |")
    lines += ["", *[f"- {c.sentence}" for c in cv.comparisons]]
    section = "\n".join(lines)
    print(section)
    update_section("cv-precision", section)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 epochs on 6,000 images; does not touch docs/")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads per fold")
    parser.add_argument("--ray", action="store_true", help="run the folds as tasks on a local Ray instance")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--executors", action="store_true",
                        help="2 epochs on 6,000 images, run in-process, in 2 processes and as Ray tasks (1 thread "
                             "per fold each time); compare the fold scores and write them into docs/results.md")
    parser.add_argument("--precision-check", action="store_true",
                        help="baseline (bf16, its recipe's precision) against the same recipe in fp32 on the same "
                             "5 folds; the bf16 folds are read back from the main run")
    args = parser.parse_args()
    if args.precision_check:
        precision_check()
        return
    if args.executors:
        compare_executors()
        return

    epochs, limit = (2, 6000) if args.quick else (10, None)
    out = args.out or ROOT / "runs" / "bench" / ("cv-seeds-quick" if args.quick else "cv-seeds")
    config = CVConfig(
        recipes=tuple(get_recipe(n).replace(epochs=epochs) for n in RECIPES),
        out=out, folds=5, seed=1, limit=limit, jobs=args.jobs, threads=args.threads, ray=args.ray,
    )
    t0 = time.perf_counter()
    cv = run_cv(config, CVData.from_dataset(load_dataset()), Printer())
    print(f"{cv.trained} folds trained, {cv.reused} read back, {time.perf_counter() - t0:.0f} s")
    section = render(cv, load_average())
    print(section)
    if not args.quick:
        update_section("cv", section)
        print(f"\nwrote the table into {ROOT / 'docs' / 'results.md'}")


if __name__ == "__main__":
    main()
