"""Milliseconds per training step, one engine setting at a time: the before/after figures behind each
speed choice (memory format, bf16 autocast, torch.compile, threads, the fused kernels).

    python -m benchmarks.step_time                         # baseline, minivgg, fast; every setting
    python -m benchmarks.step_time minivgg --steps 100
    python -m benchmarks.step_time --write                 # and the table into docs/results.md
    python -m benchmarks.step_time --quick                 # baseline and fast, a few steps per setting, one compile

A step is the trainer's own: `fmnist.train.loop.train_step` on the `Loop` that `fmnist.train.loop.start` builds
for the recipe (gather the batch, augment it as the recipe does, set the learning rate when it changes, forward
under the recipe's autocast, loss, backward, fused optimizer step), cycling through 64 batches of random images
of the recipe's batch size. A setting goes in as a real run takes it: channels-last, precision and compilation
as TrainOptions, threads and the fused kernel as process settings (`fmnist.runtime.set_threads`, FMNIST_FUSED=0
for the layer-by-layer row). The first steps (and, compiled, the compilation) are timed apart and not counted;
timing synchronises with the device (kit.timed). Seconds per epoch = ms/step x 60,000 / batch.

The table in docs/results.md was measured with a copy of the step that did not augment; `fast` augments
(crop and flip), so its rows now include that.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import torch

from benchmarks import kit
from fmnist.config import Recipe, TrainOptions
from fmnist.ops import build as kernels
from fmnist.recipes import get_recipe
from fmnist.runtime import set_threads
from fmnist.train.loop import TrainData, kernel_calls, start, train_step

BATCHES = 64  # random batches the timed steps cycle through
WARMUP = 10  # steps timed apart before the measured ones (compilation included)
QUICK_WARMUP = 2
RECIPES = ["baseline", "minivgg", "fast"]
QUICK_RECIPES = ["baseline", "fast"]  # the fused kernel's model, and one that augments

# (label, channels_last, bf16, compile, threads, fused); threads None = every core. fused False runs the model
# layer by layer (FMNIST_FUSED=0); that row is shown only for models a fused kernel runs in (conv_pool_relu: the
# first block of `baseline` and `seed003`; pool_norm_relu: every `resnet` stage in bf16).
SETTINGS = [
    ("NCHW fp32", False, False, False, None, True),
    ("channels-last fp32", True, False, False, None, True),
    ("channels-last fp32, 1 thread", True, False, False, 1, True),
    ("channels-last bf16", True, True, False, None, True),
    ("channels-last bf16, layer by layer", True, True, False, None, False),
    ("channels-last bf16, compiled", True, True, True, None, True),
]
HEADER = ["recipe", "batch", "setting", "ms/step", "s/epoch (60k)", "warm-up s"]
ALIGN = "lrlrrr"


def time_steps(recipe: Recipe, options: TrainOptions, steps: int, warmup: int) -> tuple[float, float]:
    """(ms per step in the steady state, seconds of warm-up: the first steps, compilation included)."""
    bs = recipe.batch_size
    n = BATCHES * bs
    # Enough epochs that the schedule spans every step taken, as it does in a real run.
    # Full-size steps throughout: progressive resizing's small early epochs would make a step look cheaper.
    recipe = recipe.replace(epochs=-(-(warmup + steps) // BATCHES),
                            augment=dataclasses.replace(recipe.augment, resize=()))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.int64)
    loop = start(recipe, TrainData((images, labels), None, num_classes=10), options)
    loop.model.train()
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0)).to(loop.device)

    def run(k: int) -> None:
        for _ in range(k):
            i = loop.step % BATCHES
            train_step(loop, order[i * bs : (i + 1) * bs])

    with kit.timed(loop.device) as warm:
        run(warmup)
    with kit.timed(loop.device) as timed:
        run(steps)
    return timed.seconds / steps * 1e3, warm.seconds


def measure(name: str, args, all_threads: int, steps: int, warmup: int, compile_too: bool) -> list[list]:
    """The recipe's rows, one per setting, printed as they come."""
    recipe = get_recipe(name)
    rows = []
    calls = kernel_calls()
    switch = os.environ.get(kernels.SWITCH)
    for label, channels_last, bf16, compiled, threads, fuse in SETTINGS:
        if not fuse and kernel_calls() == calls:
            continue  # no kernel applies to this model: the row would repeat the one above
        if compiled and not compile_too:
            continue
        options = TrainOptions(seed=0, device=args.device, precision="bf16" if bf16 else "fp32",
                               channels_last=channels_last, compile=compiled)
        set_threads(threads or all_threads)
        os.environ[kernels.SWITCH] = "1" if fuse else "0"
        try:
            ms, warm = time_steps(recipe, options, steps, warmup)
        finally:
            set_threads(all_threads)
            if switch is None:
                os.environ.pop(kernels.SWITCH, None)
            else:
                os.environ[kernels.SWITCH] = switch
        bs = recipe.batch_size
        rows.append([f"`{name}`", bs, label, f"{ms:.2f}", f"{ms * 60000 / bs / 1e3:.2f}", f"{warm:.1f}"])
        print(kit.table(HEADER, rows[-1:], ALIGN)[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = kit.parser(__doc__, out_help="also write the table to this markdown file")
    parser.add_argument("recipes", nargs="*",
                        help=f"default: {', '.join(RECIPES)} ({', '.join(QUICK_RECIPES)} with --quick)")
    parser.add_argument("--steps", type=kit.positive, default=None,
                        help=f"timed steps per setting (default 200, {kit.QUICK_STEPS} with --quick)")
    parser.add_argument("--write", action="store_true", help="write the table into docs/results.md")
    args = parser.parse_args(argv)
    all_threads = kit.begin(args)
    steps, warmup = (kit.QUICK_STEPS, QUICK_WARMUP) if args.quick else (200, WARMUP)
    steps = args.steps or steps
    names = args.recipes or (QUICK_RECIPES if args.quick else RECIPES)

    print("\n".join(kit.table(HEADER, [], ALIGN)))
    # Compiling takes 10-30 s a model on 2 cores, so --quick compiles the first recipe only.
    rows = [row for i, name in enumerate(names)
            for row in measure(name, args, all_threads, steps, warmup, compile_too=not args.quick or i == 0)]
    section = "\n".join([
        "## Engine settings, one at a time (benchmarks.step_time)",
        "",
        f"Machine: {kit.machine()}; {steps} timed steps per setting after {warmup} warm-up steps (compilation",
        f"included in the warm-up); load average {kit.load_average():.1f} at the end.",
        "",
        kit.markdown(HEADER, rows, ALIGN),
    ])
    print()
    print(section)
    kit.save_text(args.out, section)
    kit.publish(args, "step-time", section, when=args.write)


if __name__ == "__main__":
    kit.run(main)
