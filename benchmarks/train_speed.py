"""Training speed per recipe: seconds per epoch, images per second, achieved GFLOP/s against the machine's
peak, and time-to-accuracy (training seconds until the validation accuracy first crosses 91 / 93 / 93.5 /
94 / 95 %).

    python -m benchmarks.train_speed                  # every recipe, full epochs, full data
    python -m benchmarks.train_speed fast minivgg --epochs 3
    python -m benchmarks.train_speed --write          # and the table into docs/results.md
    python -m benchmarks.train_speed --quick          # 1 epoch on 2,000 images of baseline and fast: checks the script

Each recipe trains through `fmnist.train.loop.fit` with its own validation protocol (validation through
fmnist.inference, in the training precision). Achieved GFLOP/s counts 6 FLOPs per multiply-accumulate per
training image (forward 2, backward 4), from the model summary; the peak is measured here with large matrix
products (fp32 and bf16), as the project's reference figures were (about 190 and 810 GFLOP/s on 2 cores).
Matrix products are timed with kit.timed, which synchronises with a GPU.
"""

from __future__ import annotations

import torch

from benchmarks import kit
from fmnist.config import TrainOptions
from fmnist.data.splits import split_for_validation
from fmnist.models import build_model
from fmnist.models.summary import summarize
from fmnist.recipes import RECIPES, get_recipe
from fmnist.runtime import resolve_device
from fmnist.train.loop import TrainData, TrainResult, fit

THRESHOLDS = [0.91, 0.93, 0.935, 0.94, 0.95]
QUICK_RECIPES = ["baseline", "fast"]


def peak_gflops(dtype: torch.dtype, device: torch.device, n: int = 2048, reps: int = 10) -> float:
    """GFLOP/s of an n x n matrix product: the practical ceiling for this machine and dtype."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    with kit.timed(device) as t:
        for _ in range(reps):
            a @ b
    return 2 * n**3 * reps / t.seconds / 1e9


def time_to(history: list, threshold: float) -> float | None:
    """Cumulative training seconds at the first epoch whose validation accuracy reaches `threshold`."""
    total = 0.0
    for h in history:
        total += h.seconds
        if h.val_acc is not None and h.val_acc >= threshold:
            return total
    return None


def speed_row(name: str, recipe, result: TrainResult, n_img: int, peaks: dict[str, float]) -> dict:
    """The figures of one trained recipe."""
    macs = summarize(build_model(recipe.model, **recipe.model_args)).macs
    # Epoch 1 carries the one-time costs (compilation, allocator warm-up); report the steady state apart.
    secs = [h.seconds for h in result.history]
    steady = sorted(secs[1:])[len(secs[1:]) // 2] if len(secs) > 1 else secs[0]
    ips = n_img / steady
    gflops = 6 * macs * ips / 1e9
    return {
        "recipe": name, "epochs": recipe.epochs, "batch": recipe.batch_size, "precision": result.precision,
        "first_epoch_s": secs[0], "s_per_epoch": steady, "images_per_s": ips, "gflops": gflops,
        "peak_fraction": gflops / peaks[result.precision], "total_s": result.seconds,
        "val": recipe.validation, "final_val": result.history[-1].val_acc,
        **{f"t{t * 100:g}": time_to(result.history, t) for t in THRESHOLDS},
    }


def main(argv: list[str] | None = None) -> None:
    parser = kit.parser(__doc__, out_help="also write the table to this markdown file")
    parser.add_argument("recipes", nargs="*", help=f"default: every recipe ({', '.join(QUICK_RECIPES)} with --quick)")
    parser.add_argument("--epochs", type=kit.positive, default=None, help="override epochs")
    parser.add_argument("--precision", default="recipe", help="recipe (its own), auto, bf16 or fp32")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--write", action="store_true", help="write the table into docs/results.md")
    args = parser.parse_args(argv)
    threads = kit.begin(args)

    device = resolve_device(args.device)
    names = args.recipes or (QUICK_RECIPES if args.quick else list(RECIPES))
    ds = kit.dataset(args.quick)
    n, reps = (1024, kit.QUICK_STEPS) if args.quick else (2048, 10)
    peaks = {"fp32": peak_gflops(torch.float32, device, n, reps), "bf16": peak_gflops(torch.bfloat16, device, n, reps)}
    print(f"peak matmul: fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s")

    rows = []
    for name in names:
        recipe = get_recipe(name).replace(epochs=args.epochs or (kit.QUICK_EPOCHS if args.quick else None))
        test = (ds.test.images, ds.test.labels)
        train, val = split_for_validation(recipe, ds.train.images, ds.train.labels, test, 0)
        opts = TrainOptions(seed=0, device=args.device, precision=args.precision, compile=args.compile, threads=threads)
        result = fit(recipe, TrainData(train, val, num_classes=len(ds.classes)), opts)
        rows.append(speed_row(name, recipe, result, len(train[1]), peaks))
        print(format_row(rows[-1]), flush=True)
    section = render(rows, peaks, threads)
    print()
    print(section)
    kit.save_text(args.out, section)
    kit.publish(args, "train-speed", section, when=args.write)


def format_row(r: dict) -> str:
    """One line for the console."""
    return (f"{r['recipe']:>14}: {r['s_per_epoch']:.2f} s/epoch (first {r['first_epoch_s']:.2f}), "
            f"{r['images_per_s']:.0f} img/s, {r['gflops']:.0f} GFLOP/s "
            f"({r['peak_fraction']:.0%} of {r['precision']} peak)")


def dash(value: float | None, spec: str, scale: float = 1.0) -> str:
    """`value * scale` formatted, or – (never reached, no validation)."""
    return "–" if value is None else f"{value * scale:{spec}}"


def render(rows: list[dict], peaks: dict[str, float], threads: int) -> str:
    """The markdown section."""
    header = ["recipe", "precision", "batch", "first epoch s", "s/epoch", "images/s", "GFLOP/s", "% of peak", "val",
              "final val %", "→91%", "→93%", "→93.5%", "→94%", "→95%"]
    cells = [
        [f"`{r['recipe']}`", r["precision"], r["batch"], f"{r['first_epoch_s']:.1f}", f"{r['s_per_epoch']:.2f}",
         f"{r['images_per_s']:.0f}", f"{r['gflops']:.0f}", f"{r['peak_fraction']:.0%}", r["val"],
         dash(r["final_val"], ".2f", 100), *(dash(r[f"t{t * 100:g}"], ".0f") for t in THRESHOLDS)]
        for r in rows
    ]
    return "\n".join([
        "## Training speed (benchmarks.train_speed)",
        "",
        f"Machine: {kit.machine()}, {threads} threads. Peak matmul measured here: fp32 {peaks['fp32']:.0f}, "
        f"bf16 {peaks['bf16']:.0f} GFLOP/s.",
        "s/epoch is the median of epochs 2..n (epoch 1 includes one-time costs, shown apart). Time-to-accuracy",
        "columns: training seconds until the per-epoch validation accuracy first reaches the figure (– = never).",
        "",
        kit.markdown(header, cells, "llrrrrrrlrrrrrr"),
    ])


if __name__ == "__main__":
    kit.run(main)
