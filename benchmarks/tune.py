"""Hyperparameter trials on the validation split only: train a recipe (with overrides) on 90% of the
training set and print the held-out accuracy per epoch and the training time. The test set is never read.

    python -m benchmarks.tune fast
    python -m benchmarks.tune fast --set epochs=10 --set 'model_args={"stem": 24, "widths": [32, 64, 128], "blocks": [0, 1, 0]}'
    python -m benchmarks.tune fast --set optimizer.lr=0.4 --set augment.erase=0.25
    python -m benchmarks.tune --quick              # fast, 1 epoch on 2,000 images: checks the script

The held-out split is the recipe's `val_fraction` of each class (`fmnist.data.splits.holdout_split`, seed 0);
training is `fmnist.train.loop.fit`, whose per-epoch validation runs through fmnist.inference. Each trial is
appended to runs/bench/tune.json (or --out) with its overrides, so choices can be traced later.
"""

from __future__ import annotations

from benchmarks import kit
from fmnist.config import TrainOptions
from fmnist.train.loop import fit


def main(argv: list[str] | None = None) -> None:
    parser = kit.parser(__doc__, out_help="the trials file to append to (default runs/bench/tune.json)")
    parser.add_argument("recipe", nargs="?", default="fast")
    parser.add_argument("--set", action="append", default=[], help="override, e.g. optimizer.lr=0.4")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", default="recipe", help="recipe (its own), auto, bf16 or fp32")
    args = parser.parse_args(argv)
    threads = kit.begin(args)

    recipe, data = kit.held_out(args.recipe, args.set, args.quick)
    options = TrainOptions(seed=args.seed, device=args.device, precision=args.precision, threads=threads)
    load = kit.load_average()
    with kit.timed(args.device) as wall:
        result = fit(recipe, data, options)

    header = ["epoch", "train %", "held-out %", "s"]
    print(kit.markdown(header, [[h.epoch, f"{h.train_acc * 100:.2f}", f"{h.val_acc * 100:.2f}", f"{h.seconds:.1f}"]
                                for h in result.history], "rrrr"))
    final = result.history[-1].val_acc
    trial = " ".join([args.recipe, *args.set])
    print(f"{trial}: held-out {final * 100:.2f}% in {result.seconds:.1f}s (load {load:.1f})")
    path = args.out or kit.bench_dir(args.quick) / "tune.json"
    if args.quick:
        kit.clear_quick(path)
    kit.append_result(path, {
        "recipe": args.recipe, "overrides": args.set, "seed": args.seed, "val_accuracy": final,
        "seconds": result.seconds, "wall": wall.seconds, "epochs": recipe.epochs,
        "images": len(data.train[1]) + len(data.val[1]),
        "history": [h.as_dict() for h in result.history], "load": load, "machine": kit.machine(), "date": kit.now(),
    })
    print(f"trial appended to {path}")


if __name__ == "__main__":
    kit.run(main)
