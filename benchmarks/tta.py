"""Test-time augmentation, view by view, on the held-out split: train a recipe on 90% of the training set once
per seed, score each view of the held-out 10% (the image moved by up to one pixel by fmnist.inference.moved,
and its mirror) once, then score each way of averaging the views from those same logits. So the rows differ
only in how the views are combined, never in the nets. The test set is never read.

    python -m benchmarks.tta fast --runs 6
    python -m benchmarks.tta best --runs 3 --set epochs=8
    python -m benchmarks.tta --quick          # fast, 1 run, 1 epoch on 2,000 images: checks the script

Each row's accuracy is the mean over the runs (seeds 0..n-1) ± the sample standard deviation; `better` counts
the runs in which it beat the recipe's own TTA. The runs are appended to runs/bench/tta.json (or --out), and
the section "tta-TRIAL" of docs/results.md (TRIAL: the recipe and its --set overrides) is rewritten from the
runs there of that trial; other trials' sections are left as they are.
"""

from __future__ import annotations

import re
import statistics

import torch

from benchmarks import kit
from fmnist.inference import batched_logits, moved

DIAGONAL = [(-1, -1), (1, 1)]  # fmnist.inference's shift views: up-left and down-right
AXIAL = [(-1, 0), (1, 0), (0, -1), (0, 1)]
CORNERS = [(-1, -1), (-1, 1), (1, -1), (1, 1)]

# (name, mirror too?, weight of each (dy, dx) view). `flip + 2 diagonal shifts` is what tta_shift=1 computes.
SCHEMES: list[tuple[str, bool, dict[tuple[int, int], float]]] = [
    ("none", False, {(0, 0): 1}),
    ("flip", True, {(0, 0): 1}),
    ("flip + 2 diagonal shifts (centre 1/2)", True, {(0, 0): 2, **{d: 1 for d in DIAGONAL}}),
    ("flip + 4 axial shifts (centre 1/2)", True, {(0, 0): 4, **{d: 1 for d in AXIAL}}),
    ("flip + 8 neighbours (centre 1/2)", True, {(0, 0): 8, **{d: 1 for d in AXIAL + CORNERS}}),
    ("flip + 8 neighbours (all 9 equal)", True, {(0, 0): 1, **{d: 1 for d in AXIAL + CORNERS}}),
]


def view_logits(model: torch.nn.Module, x: torch.Tensor, amp: torch.dtype | None, batch_size: int
                ) -> dict[tuple[int, int, bool], torch.Tensor]:
    """Logits [N, K] of every (dy, dx, mirrored) view any scheme uses."""
    shifts = {s for _, _, weights in SCHEMES for s in weights}
    out = {}
    for dy, dx in sorted(shifts):
        view = moved(x, dy, dx)
        out[dy, dx, False] = batched_logits(model, view, batch_size, amp=amp)
        out[dy, dx, True] = batched_logits(model, torch.flip(view, dims=[-1]), batch_size, amp=amp)
    return out


def score(views: dict[tuple[int, int, bool], torch.Tensor], labels: torch.Tensor) -> dict[str, float]:
    """Held-out accuracy of each scheme (logits averaged with its weights; a mirror weighs as its view)."""
    accuracy = {}
    for name, mirror, weights in SCHEMES:
        total = sum(w * ((views[s + (False,)] + views[s + (True,)]) / 2 if mirror else views[s + (False,)])
                    for s, w in weights.items())
        accuracy[name] = (total.argmax(1) == labels).float().mean().item()
    return accuracy


def passes(mirror: bool, weights: dict) -> int:
    return len(weights) * (2 if mirror else 1)


def main(argv: list[str] | None = None) -> None:
    parser = kit.trial_parser(__doc__, out_help="the results file to append to (default runs/bench/tta.json)",
                              runs=3, quick_runs=1)
    args = parser.parse_args(argv)
    threads = kit.begin(args)

    held = kit.held_out_trial(args, threads, "tta.json")
    recipe, trial, path = held.recipe, held.name, held.path
    for seed in range(held.runs):
        load = kit.load_average()
        result, amp = held.fit(seed)
        accuracy = score(view_logits(result.model, held.x, amp, kit.EVAL_BATCH), held.y)
        print(f"{trial}, seed {seed}: " + ", ".join(f"{k} {v * 100:.2f}" for k, v in accuracy.items()))
        kit.append_result(path, {
            "trial": trial, "seed": seed, "own_tta": {"flip": recipe.tta_flip, "shift": recipe.tta_shift},
            "fit_val_accuracy": result.history[-1].val_acc, "accuracy": accuracy, "seconds": result.seconds,
            "load": load, "machine": kit.machine(), "date": kit.now(),
        })

    runs = [r for r in kit.read_results(path) if r["trial"] == trial]
    section = render(trial, runs)
    print()
    print(section)
    kit.publish(args, "tta-" + re.sub(r"[^\w.=-]+", "-", trial), section)


def render(trial: str, runs: list[dict]) -> str:
    own = {(False, 0): "none", (True, 0): "flip", (True, 1): SCHEMES[2][0]}.get(
        (runs[0]["own_tta"]["flip"], runs[0]["own_tta"]["shift"]))
    rows = []
    for name, mirror, weights in SCHEMES:
        acc = [r["accuracy"][name] * 100 for r in runs]
        sd = f" ± {statistics.stdev(acc):.2f}" if len(acc) > 1 else ""
        better = sum(r["accuracy"][name] > r["accuracy"][own] for r in runs) if own and name != own else None
        rows.append([name + (" (the recipe's own)" if name == own else ""), passes(mirror, weights),
                     f"{statistics.mean(acc):.2f}{sd}", " ".join(f"{a:.2f}" for a in acc),
                     "–" if better is None else f"{better}/{len(runs)}"])
    header = ["views averaged", "passes", "held-out % mean ± std", "per run (seeds 0..n-1)", "better"]
    machines = sorted({r["machine"] for r in runs})
    return "\n".join([
        f"## Test-time augmentation on the held-out split: `{trial}` (benchmarks.tta)",
        "",
        f"`{trial}` trained on 90% of the training set, {len(runs)} run(s) (seeds 0..{len(runs) - 1}); each row",
        "combines the same nets' views of the held-out 10% differently (logits averaged with the weights given;",
        "shifts by one pixel, edges replicated). `better`: the runs in which the row beat the recipe's own TTA.",
        "",
        kit.markdown(header, rows, "lrrll"),
        "",
        f"Machine: {'; '.join(machines)}.",
    ])


if __name__ == "__main__":
    kit.run(main)
