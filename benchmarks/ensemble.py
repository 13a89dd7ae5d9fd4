"""Ensembles of independently trained nets on the held-out split: train a recipe on 90% of the training set once
per seed, keep each net's class probabilities for the held-out 10% (with the recipe's own test-time
augmentation), then score every ensemble of k of those nets (probabilities averaged) for k = 1..runs. This asks
whether a training budget buys more accuracy as k short runs averaged or as one long run. The test set is never
read.

    python -m benchmarks.ensemble fast --runs 6
    python -m benchmarks.ensemble best --runs 4 --set epochs=5
    python -m benchmarks.ensemble --quick          # fast, 2 runs, 1 epoch on 2,000 images: checks the script

Each row: the mean accuracy over all C(runs, k) ensembles of k nets, with the worst and best of them; the cost
is k times the mean training time of one net (validation included). Probabilities are kept in
runs/bench/ensemble/ (or next to --out), one file per trial and seed, so more seeds can be added later; the runs
are appended to runs/bench/ensemble.json, and the section "ensemble-TRIAL" of docs/results.md is rewritten from
that trial's runs.
"""

from __future__ import annotations

import itertools
import re
import statistics

import torch

from benchmarks import kit
from fmnist.inference import batched_logits


def ensemble_accuracy(probabilities: list[torch.Tensor], labels: torch.Tensor) -> float:
    """Accuracy of the mean of these probability tables [N, K] against labels [N]."""
    return (torch.stack(probabilities).mean(0).argmax(1) == labels).double().mean().item()


def by_size(probabilities: list[torch.Tensor], labels: torch.Tensor) -> list[list[float]]:
    """For k = 1..len(probabilities): the accuracy of every ensemble of k of them."""
    n = len(probabilities)
    return [[ensemble_accuracy([probabilities[i] for i in group], labels)
             for group in itertools.combinations(range(n), k)] for k in range(1, n + 1)]


def main(argv: list[str] | None = None) -> None:
    parser = kit.trial_parser(__doc__, out_help="the results file to append to (default runs/bench/ensemble.json)",
                              runs=4, quick_runs=2)
    args = parser.parse_args(argv)
    threads = kit.begin(args)

    held = kit.held_out_trial(args, threads, "ensemble.json")
    recipe, trial, path = held.recipe, held.name, held.path
    store = path.parent / "ensemble"
    stem = re.sub(r"[^\w.=-]+", "-", trial)
    done = {r["seed"] for r in kit.read_results(path) if r["trial"] == trial}
    for seed in range(held.runs):
        if seed in done and (store / f"{stem}-s{seed}.pt").exists():
            print(f"{trial}, seed {seed}: measured earlier")
            continue
        load = kit.load_average()
        result, amp = held.fit(seed)
        out = batched_logits(result.model, held.x, kit.EVAL_BATCH, tta_flip=recipe.tta_flip, amp=amp,
                             shift=recipe.tta_shift)
        probabilities = out.softmax(1).cpu()
        store.mkdir(parents=True, exist_ok=True)
        torch.save(probabilities, store / f"{stem}-s{seed}.pt")
        accuracy = ensemble_accuracy([probabilities], held.y.cpu())
        print(f"{trial}, seed {seed}: {accuracy * 100:.2f}% held out in {result.seconds:.0f} s")
        kit.append_result(path, {"trial": trial, "seed": seed, "accuracy": accuracy, "seconds": result.seconds,
                                 "load": load, "machine": kit.machine(), "date": kit.now()})

    # One row per seed, its latest (a seed whose probabilities were lost is measured again and appended).
    latest = {r["seed"]: r for r in kit.read_results(path) if r["trial"] == trial}
    runs = [latest[seed] for seed in sorted(latest) if (store / f"{stem}-s{seed}.pt").exists()]
    probabilities = [torch.load(store / f"{stem}-s{r['seed']}.pt") for r in runs]
    section = render(trial, runs, by_size(probabilities, held.y.cpu()))
    print()
    print(section)
    kit.publish(args, "ensemble-" + stem, section)


def render(trial: str, runs: list[dict], accuracies: list[list[float]]) -> str:
    seconds = statistics.mean(r["seconds"] for r in runs)
    rows = [[k, len(acc), f"{statistics.mean(acc) * 100:.2f}", f"{min(acc) * 100:.2f}–{max(acc) * 100:.2f}",
             f"{k * seconds:.0f}"] for k, acc in enumerate(accuracies, start=1)]
    header = ["nets averaged", "ensembles", "held-out % mean", "worst–best", "training s (k x mean)"]
    machines = sorted({r["machine"] for r in runs})
    return "\n".join([
        f"## Ensembles on the held-out split: `{trial}` (benchmarks.ensemble)",
        "",
        f"`{trial}` trained on 90% of the training set, {len(runs)} run(s) (seeds "
        f"{', '.join(str(r['seed']) for r in runs)}); each row averages the class probabilities (with the recipe's",
        "own test-time augmentation) of every ensemble of k of those nets on the held-out 10%.",
        "",
        kit.markdown(header, rows, "rrrlr"),
        "",
        f"Machine: {'; '.join(machines)}.",
    ])


if __name__ == "__main__":
    kit.run(main)
