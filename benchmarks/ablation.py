"""airbench's methods tried on `fast`, one at a time: each row is its parent row with one change, trained on 90% of
the training set for a fixed schedule and scored on the held-out 10% after every epoch (the test set is never
read). The table gives, per row, the held-out accuracy after the last epoch and the epoch (and seconds of
training, validation included) at which it first reached 94%, as means over the runs (seeds 0..n-1).

    python -m benchmarks.ablation                   # every row, 3 runs each
    python -m benchmarks.ablation whiten dirac      # those rows (and nothing else)
    python -m benchmarks.ablation --runs 5
    python -m benchmarks.ablation --quick           # every row, 1 run, 1 epoch on 2,000 images: checks the script

Runs already measured are read back from the results file (runs/bench/ablation.json), so rows can be added
one at a time; the section "ablation" of docs/results.md is rewritten from every row measured, and its rows
that this results file has no runs of (measured from another checkout) are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks import kit
from fmnist.config import TrainOptions
from fmnist.data.splits import holdout_split
from fmnist.recipes import get_recipe
from fmnist.recipes.overrides import apply_assignment
from fmnist.train.loop import TrainData, fit

TARGET = 0.94  # held-out accuracy whose first crossing is reported
EPOCHS = 6  # the fixed schedule every row trains for (about a minute of `fast` on 2 cores)


@dataclass(frozen=True)
class Row:
    """One change (`settings`, applied after its parent's) and what it is called in the table."""

    name: str
    change: str
    settings: tuple[str, ...]
    parent: str | None = None

    def assignments(self) -> list[str]:
        """Every setting from the root row down to this one, in order."""
        chain = [*ROWS[self.parent].assignments()] if self.parent else []
        return chain + list(self.settings)


# The recipe every row starts from: `fast` as it stood before airbench's methods (a 16-channel 3x3 stem, stages
# 32-64-128, lr 0.2, weight decay 5e-4, flip TTA only, no resizing). The settings `fast` has changed since are
# spelled out here; the others (batch, schedule, label smoothing, crop and flip, precision) still come from it.
ROOT = (f"epochs={EPOCHS}", 'model_args={"stem": 16, "widths": [32, 64, 128], "blocks": [0, 1, 0]}', "optimizer.lr=0.2",
        "optimizer.weight_decay=5e-4", "optimizer.norm_bias_lr=1", "tta_shift=0", "augment.resize=[]",
        "augment.crop_padding=2", "optimizer.whiten_bias_epochs=null", "batch_size=256")

ROWS: dict[str, Row] = {r.name: r for r in [
    Row("baseline", f"`fast` for {EPOCHS} epochs", ROOT),
    Row("whiten", "patch-whitening first layer (3x3, 18 filters, frozen)", ("model_args.whiten=3",), "baseline"),
    Row("dirac", "dirac (identity) initialisation of the convolutions", ("model_args.dirac=true",), "whiten"),
    Row("bn-bias-lr", "BatchNorm biases at 16x the learning rate", ("optimizer.norm_bias_lr=16",), "dirac"),
    Row("bn-frozen", "BatchNorm weights frozen at 1", ("model_args.bn_weight=false",), "bn-bias-lr"),
    Row("lookahead", "fast BatchNorm momentum (0.4) + lookahead (0.95^5, cubic ramp)",
        ("model_args.bn_momentum=0.4", "lookahead=0.774"), "bn-bias-lr"),
    Row("alt-flip", "alternating flips", ("augment.alternate_flip=true",), "bn-bias-lr"),
    Row("tta-shift", "multi-crop TTA (flip and 1-pixel shifts)", ("tta_shift=1",), "bn-bias-lr"),
    Row("whiten-bias", "the whitening layer's bias trained for the first 2 epochs only",
        ("optimizer.whiten_bias_epochs=2",), "tta-shift"),
    Row("smooth-0.2", "label smoothing 0.2 (from 0.1)", ("label_smoothing=0.2",), "tta-shift"),
    Row("logit-scale", "logits scaled by 1/2", ("model_args.logit_scale=0.5",), "tta-shift"),
    Row("batch-512", "batch 512 at twice the learning rate (0.4)", ("batch_size=512", "optimizer.lr=0.4"), "tta-shift"),
    Row("progressive", "progressive resizing: the first 2 epochs at 20x20", ("augment.resize=[20, 2]",), "tta-shift"),
    Row("narrow-early", "fewer channels early: stem 8, stages 24-64-128 (11.3 M MACs, from 14.6 M)",
        ('model_args.stem=8', 'model_args.widths=[24, 64, 128]'), "tta-shift"),
    Row("no-crop", "no random crop (flips only)", ("augment.crop_padding=0",), "tta-shift"),
    Row("muon", "Muon for the convolution filters (lr 0.08, momentum 0.6; SGD for the rest)",
        ("optimizer.name=muon", "optimizer.muon_lr=0.08"), "tta-shift"),
    Row("prune", "data pruning (InfoBatch): half of the learned images sit out epochs 2-5", ("prune=0.5",),
        "tta-shift"),
    Row("bn-calibration", "BatchNorm statistics recomputed from 10,000 training images after the last step",
        ("bn_calibration=10000",), "tta-shift"),
    Row("last-pool", "no pooling in the last stage (global pooling over 7x7 instead of 3x3)",
        ("model_args.last_pool=false",), "tta-shift"),
]}


def main(argv: list[str] | None = None) -> None:
    parser = kit.parser(__doc__, out_help="the results file (default runs/bench/ablation.json)")
    parser.add_argument("rows", nargs="*", help=f"rows to measure (default all): {', '.join(ROWS)}")
    parser.add_argument("--runs", type=kit.positive, default=None, help="runs per row (seeds 0..runs-1; default 3, 1 with --quick)")
    args = parser.parse_args(argv)
    unknown = [r for r in args.rows if r not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; rows: {', '.join(ROWS)}")
    threads = kit.begin(args)
    ds = kit.dataset(args.quick)
    images, labels = ds.train.images, ds.train.labels
    base = get_recipe("fast")
    tr, va = holdout_split(labels, base.val_fraction, seed=0)
    data = TrainData((images[tr], labels[tr]), (images[va], labels[va]), num_classes=len(ds.classes))
    results = args.out or kit.bench_dir(args.quick) / "ablation.json"
    if args.quick:
        kit.clear_quick(results)
    runs = args.runs or (1 if args.quick else 3)
    for name in args.rows or list(ROWS):
        row = ROWS[name]
        recipe = base
        for assignment in row.assignments():
            recipe = apply_assignment(recipe, assignment)
        if args.quick:
            recipe = recipe.replace(epochs=kit.QUICK_EPOCHS)
        done = {r["seed"] for r in kit.read_results(results) if r["row"] == name and r["settings"] == row.assignments()}
        for seed in range(runs):
            if seed in done:
                continue
            load = kit.load_average()
            result = fit(recipe, data, TrainOptions(seed=seed, device=args.device, threads=threads))
            history = [h.as_dict() for h in result.history]
            kit.append_result(results, {
                "row": name, "settings": row.assignments(), "seed": seed, "epochs": recipe.epochs,
                "val_accuracy": history[-1]["val_acc"], "train_seconds": result.seconds, "history": history,
                "load_before": load, "machine": kit.machine(), "date": kit.now(),
            })
            reached = crossing(history)
            print(f"{name} seed {seed}: held-out {history[-1]['val_acc'] * 100:.2f}% in {result.seconds:.1f} s; "
                  f"94%: {'not reached' if reached is None else f'epoch {reached[0]}, {reached[1]:.1f} s'}", flush=True)
    section = render(kit.read_results(results))
    print()
    print(section)
    kit.publish(args, "ablation", section, keep=1)


def crossing(history: list[dict], target: float = TARGET) -> tuple[int, float] | None:
    """(epoch, seconds of training so far) when the held-out accuracy first reached `target`, or None."""
    seconds = 0.0
    for h in history:
        seconds += h["seconds"]
        if h["val_acc"] is not None and h["val_acc"] >= target:
            return h["epoch"], seconds
    return None


def render(rows: list[dict]) -> str:
    """The table: one line per row measured (in ROWS order), means over its runs."""
    lines = []
    for name, row in ROWS.items():
        runs = [r for r in rows if r["row"] == name and r["settings"] == row.assignments()]
        if not runs:
            continue
        g = kit.RunGroup((name,), runs)
        hits = [c for c in (crossing(r["history"]) for r in runs) if c is not None]
        to_target = (f"{sum(e for e, _ in hits) / len(hits):.1f}", f"{sum(s for _, s in hits) / len(hits):.0f}") if hits else ("–", "–")
        reached = f"{len(hits)}/{g.n}"
        lines.append([f"{row.change}" + (f" (on {ROWS[row.parent].name})" if row.parent else ""), g.n,
                      runs[0]["epochs"], g.mean_pm("val_accuracy"), reached, *to_target, f"{g.mean('train_seconds'):.0f}"])
    header = ["change", "runs", "epochs", "held-out % (mean ± std)", "runs reaching 94%", "epochs to 94%",
              "s to 94%", "train s"]
    table = kit.markdown(header, lines, "lrrrrrrr")
    return (table + f"\n\nMachine: {rows[0]['machine'] if rows else kit.machine()}. Load average before the runs: "
            f"{kit.loads_line(rows)}.")


if __name__ == "__main__":
    kit.run(main)
