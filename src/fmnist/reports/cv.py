"""The cross-validation report: figures and report.md in the cv directory, rendered from cv.json's content.

One fold-curves figure per recipe (`curves-<recipe>.png`: loss and accuracy, train vs held-out, every
fold), one box plot of every recipe's fold scores (`boxplot.png`), and report.md tying them together
with the summary table, the per-fold scores side by side and the paired comparisons.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fmnist.data import DEFAULT_DATASET
from fmnist.fileio import write_text
from fmnist.paths import safe_name
from fmnist.plots.training import plot_boxplot, plot_fold_curves
from fmnist.reports.markdown import NONE, cell, format_p, pct

REPORT_NAME = "report.md"
BOXPLOT = "boxplot.png"


def write_cv_report(out: str | Path, cv: dict[str, Any]) -> dict[str, Any]:
    """Draw the figures and write report.md into `out` from a cv.json dict (with histories); return the figure names."""
    out = Path(out)
    figures: dict[str, Any] = {"boxplot": BOXPLOT, "curves": {}}
    for name, rec in cv["recipes"].items():
        fname = f"curves-{safe_name(name)}.png"
        histories = [f["history"] for f in rec["folds"]]
        plot_fold_curves(histories, out / fname, title=f"{name}: learning curves of {len(histories)} folds (train vs held-out)")
        figures["curves"][name] = fname
    plot_boxplot({name: rec["scores"] for name, rec in cv["recipes"].items()}, out / BOXPLOT,
                 title=f"{_protocol(cv['config'])}: held-out accuracy (▲ = mean)")
    write_text(out / REPORT_NAME, cv_report_markdown(cv | {"figures": figures}))
    return figures


def _protocol(config: dict[str, Any]) -> str:
    """`5-fold CV`, `stratified 5-fold CV x 3`."""
    kind = f"{'stratified ' if config['stratified'] else ''}{config['folds']}-fold CV"
    return kind if config["repeats"] == 1 else f"{kind} × {config['repeats']}"


def cv_report_markdown(cv: dict[str, Any]) -> str:
    """report.md for a cv.json dict (its `figures` names the figure files)."""
    config, data = cv["config"], cv["data"]
    names = list(cv["recipes"])
    seeds = f"seed {config['seed']}" if config["repeats"] == 1 else f"seeds {config['seed']}–{config['seed'] + config['repeats'] - 1}"
    limit = f" (a seeded subset, --limit {data['limit']})" if data.get("limit") else ""
    lines = [
        f"# Cross-validation: {', '.join(names)}",
        "",
        (
            f"{_protocol(cv['config'])} (shuffled, {seeds}) on {data['images']:,} training images of {data['name']}{limit}. "
            "Every recipe is trained and scored on the same folds, each fold with the same training seed. "
            "A fold's score is the accuracy on its held-out images after the last epoch."
        ),
        "",
        (
            f"{cv['trained']} folds trained in this call, {cv['reused']} read back from earlier runs; "
            f"executor: {cv['executor']}, {cv['threads']} thread(s) per fold. Data checksum `{data['checksum'] or NONE}`."
        ),
        "",
        "## Recipes",
        "",
        "| recipe | mean (%) | std (points) | 95% CI (%) | folds | epochs | seed reported |",
        "|---|---:|---:|---|---:|---:|---|",
    ]
    fashion = data.get("name") == DEFAULT_DATASET  # the seeds' figures are of Fashion-MNIST
    for name, rec in cv["recipes"].items():
        s = rec["summary"]
        ci = NONE if s["ci_low"] is None else f"{pct(s['ci_low'])}–{pct(s['ci_high'])}"
        reported = rec["recipe"].get("reported_note") if fashion else None
        lines.append(
            f"| {cell(name)} | {pct(s['mean'], 3)} | {pct(s['std'], 3)} | {ci} | {s['n']} | "
            f"{rec['recipe']['epochs']} | {cell(reported or NONE)} |"
        )
    lines += [
        "",
        (
            "std is the sample standard deviation (ddof=1), in the box plot too; the seed printed numpy's population "
            "std (ddof=0), a little smaller. The interval is mean ± t·s/√n, clipped to 0-100%; fold scores share most "
            "of their training images, so they are not independent and the interval is somewhat optimistic."
        ),
        "",
        "## Scores per fold (%)",
        "",
        "| fold | held-out images | " + " | ".join(cell(n) for n in names) + " |",
        "|---|---:|" + "---:|" * len(names),
    ]
    for i, fold in enumerate(cv["folds"]):
        scores = " | ".join(pct(cv["recipes"][n]["scores"][i]) for n in names)
        lines.append(f"| {fold['key']} | {fold['held_out_size']:,} | {scores} |")
    if cv["comparisons"]:
        lines += _comparisons(cv)
    figures = cv.get("figures") or {}
    if figures:
        lines += ["", "## Figures", "", f"![Box plot of the fold scores]({figures['boxplot']})", ""]
        for name, fname in figures["curves"].items():
            lines += [f"### {name}", "", f"![Learning curves of every fold of {name}]({fname})", ""]
    return "\n".join(lines).rstrip() + "\n"


def _comparisons(cv: dict[str, Any]) -> list[str]:
    if cv["config"]["repeats"] > 1:
        basis = (
            "The verdict rests on the corrected resampled t-test (Nadeau & Bengio), which widens the variance of the "
            "mean difference by n2/n1 = 1/(K−1) for the overlap between training sets."
        )
    else:
        basis = (
            "The verdict rests on the paired t-test over the folds (with `--repeats` > 1 the corrected resampled "
            "t-test of Nadeau & Bengio is added, which allows for the overlap between training sets)."
        )
    lines = [
        "",
        "## Comparisons",
        "",
        "Paired on the folds: each recipe later on the command line against each earlier one (difference = later − earlier). "
        + basis
        + " p-values are per comparison, not corrected for multiple comparisons.",
        "",
        "| comparison | difference (points) | 95% CI (points) | paired t-test p | corrected p | verdict |",
        "|---|---:|---|---:|---:|---|",
    ]
    for c in cv["comparisons"]:
        ci = NONE if c["ci_low"] is None else f"{c['ci_low'] * 100:+.2f} to {c['ci_high'] * 100:+.2f}"
        corrected = _p(c["corrected"]["p"]) if c["corrected"] else NONE
        lines.append(
            f"| {cell(c['a'])} vs {cell(c['b'])} | {c['mean_difference'] * 100:+.3f} | {ci} | {_p(c['paired']['p'])} | "
            f"{corrected} | {'real' if c['significant'] else 'not tested' if c['p'] is None else 'within noise'} |"
        )
    lines += [""] + [f"- {c['sentence']}" for c in cv["comparisons"]]
    return lines


def _p(p: float | None) -> str:
    return NONE if p is None else format_p(p).removeprefix("p = ").replace("p < ", "< ")
