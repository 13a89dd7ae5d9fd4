"""Hyperparameter trials on the validation split only: train a recipe (with overrides) on 90% of the
training set and print the held-out accuracy per epoch and the training time. The test set is never read.

    python benchmarks/tune.py fast
    python benchmarks/tune.py fast --set epochs=10 --set 'model_args={"stem": 24, "widths": [32, 64, 128], "blocks": [0, 1, 0]}'
    python benchmarks/tune.py fast --set optimizer.lr=0.4 --set augment.erase=0.25

Each trial is appended to runs/bench/tune.json with its overrides, so choices can be traced later.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, append_result, load_average, machine  # noqa: E402

from fmnist.data import load_dataset  # noqa: E402
from fmnist.engine.trainer import TrainOptions, fit  # noqa: E402
from fmnist.recipes import Recipe, get_recipe  # noqa: E402
from fmnist.runs import holdout_split  # noqa: E402


def apply_override(recipe: Recipe, assignment: str) -> Recipe:
    """`key=value` or `group.key=value` (value parsed as JSON when it can be) applied to the recipe."""
    key, _, raw = assignment.partition("=")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    if "." in key:
        group, field = key.split(".", 1)
        sub = getattr(recipe, group)
        return dataclasses.replace(recipe, **{group: dataclasses.replace(sub, **{field: value})})
    return dataclasses.replace(recipe, **{key: value})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe")
    parser.add_argument("--set", action="append", default=[], help="override, e.g. optimizer.lr=0.4")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", default="recipe", help="recipe (its own), auto, bf16 or fp32")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    recipe = get_recipe(args.recipe)
    for assignment in args.set:
        recipe = apply_override(recipe, assignment)
    ds = load_dataset()
    tr, va = holdout_split(ds.train.labels, recipe.val_fraction, seed=0)
    train = (ds.train.images[tr], ds.train.labels[tr])
    val = (ds.train.images[va], ds.train.labels[va])
    load = load_average()
    t0 = time.perf_counter()
    result = fit(recipe, train, val, TrainOptions(seed=args.seed, device=args.device, precision=args.precision), num_classes=10)
    for h in result.history:
        print(f"epoch {h.epoch:>2}: train {h.train_acc * 100:.2f}%  val {h.val_acc * 100:.2f}%  ({h.seconds:.1f}s)")
    final = result.history[-1].val_acc
    print(f"{args.recipe} {' '.join(args.set)}: val {final * 100:.2f}% in {result.seconds:.1f}s (load {load:.1f})")
    append_result(ROOT / "runs" / "bench" / "tune.json", {
        "recipe": args.recipe, "overrides": args.set, "seed": args.seed, "val_accuracy": final,
        "seconds": result.seconds, "wall": time.perf_counter() - t0, "epochs": recipe.epochs,
        "history": [h.as_dict() for h in result.history], "load": load, "machine": machine(),
    })


if __name__ == "__main__":
    main()
