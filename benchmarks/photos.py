"""Accuracy on photo-like images, per distortion, with `dataset` against `photo` preprocessing.

    python -m benchmarks.photos --model runs/main              # 1,000 test images per distortion
    python -m benchmarks.photos --model runs/main --write      # and the table into docs/results.md
    python -m benchmarks.photos --quick                        # trains a 1-epoch model, 100 images each

The images are made from the *test* set (benchmarks.photo_synth says how: smooth upscaling by 8-30x, the grey
levels remapped to a coloured article of random tone, backgrounds that are off-white, grey, dark, a gradient or a
texture, a soft shadow, JPEG at quality 60-90, off-centre with margins of 5-60%, rotations of up to 6 degrees,
RGBA cut-outs, photos cropped tight to the article, noise; "everything" draws all of them at once). The same test images, untouched, give the
reference accuracy. Every image goes through `fmnist.imaging.prepare` as `fmnist predict` would, then through the
model's one inference path. Nothing is chosen on these figures: the pipeline's constants were set by looking at
generated sheets of training images, and the model was trained on the training set only.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from benchmarks import kit
from benchmarks.photo_synth import DISTORTIONS, not_clothing, photo
from fmnist.config import RunConfig, TrainOptions
from fmnist.data import load_split
from fmnist.errors import DataError
from fmnist.imaging import prepare
from fmnist.inference import Predictor
from fmnist.pipeline import train_run
from fmnist.recipes import get_recipe

TARGET = 3.0  # points: `photo` within this of the untouched accuracy under every distortion
QUICK_IMAGES = 100
IMAGES = 1000


def quick_model(out: Path) -> Path:
    """A 1-epoch `fast` model on a --quick subset (the figures then mean nothing, but every path runs)."""
    ds = kit.dataset(quick=True)
    cfg = RunConfig(recipe=get_recipe("fast").replace(epochs=kit.QUICK_EPOCHS), options=TrainOptions(seed=0), out=out)
    return train_run(cfg, dataset=ds).run_dir


def accuracy(predictor: Predictor, images: list[np.ndarray], labels: np.ndarray) -> float:
    return float((predictor.predict_proba(np.stack(images)).argmax(1) == labels).mean())


def flagged(predictor: Predictor, images: list[np.ndarray]) -> float:
    """The share of `images` whose top probability is below the model's confidence threshold."""
    return float((predictor.predict_proba(np.stack(images)).max(1) < predictor.threshold).mean())


def main(argv: list[str] | None = None) -> None:
    parser = kit.parser(__doc__, out_help="also write the table to this markdown file")
    parser.add_argument("--model", type=Path, help="a model file or run directory (default: runs/main)")
    parser.add_argument("--images", type=kit.positive, default=None, help=f"test images per distortion (default {IMAGES})")
    parser.add_argument("--distortions", default=",".join(DISTORTIONS), help="comma-separated subset")
    parser.add_argument("--write", action="store_true", help="write the table into docs/results.md")
    args = parser.parse_args(argv)
    unknown = [d for d in args.distortions.split(",") if d not in DISTORTIONS]
    if unknown:
        parser.error(f"--distortions: unknown {', '.join(map(repr, unknown))}; choose from {', '.join(DISTORTIONS)}")
    kit.begin(args)
    model = args.model
    if model is None:
        model = quick_model(kit.clear_quick(kit.QUICK_DIR / "photos-model")) if args.quick else Path("runs/main")
    predictor = Predictor.from_file(model, device=args.device if args.device != "auto" else "cpu")
    n = args.images or (QUICK_IMAGES if args.quick else IMAGES)
    test = load_split("test", predictor.meta.dataset or "fashion-mnist")
    pick = np.sort(np.random.default_rng(0).permutation(len(test.labels))[:n])
    images, labels = test.images[pick], test.labels[pick]
    untouched = accuracy(predictor, list(images), labels)
    print(f"model {model}: untouched {n} test images {untouched * 100:.2f}%", flush=True)
    rows = []
    everything: list[np.ndarray] = []
    for name in args.distortions.split(","):
        rng = np.random.default_rng(1)  # the same photos for every run of this script
        views: dict[str, list[np.ndarray]] = {"dataset": [], "photo": []}
        failed = 0
        t0 = time.perf_counter()
        for img in images:
            shot = photo(img, name, rng)
            views["dataset"].append(prepare(shot, "dataset").image)
            try:
                views["photo"].append(prepare(shot, "photo").image)
            except DataError:  # no article found: counted as wrong
                failed += 1
                views["photo"].append(np.zeros((28, 28), np.uint8))
        ms = (time.perf_counter() - t0) / n * 1e3
        acc = {mode: accuracy(predictor, v, labels) for mode, v in views.items()}
        if name == "everything":
            everything = views["photo"]
        gap = (untouched - acc["photo"]) * 100
        rows.append([name, f"{acc['dataset'] * 100:.1f}", f"{acc['photo'] * 100:.1f}", f"{round(-gap, 1) or 0.0:+.1f}",
                     "yes" if gap <= TARGET else "**no**", failed, f"{ms:.0f}"])
        print(f"{name:>12}: dataset {acc['dataset'] * 100:5.1f}%  photo {acc['photo'] * 100:5.1f}%  "
              f"({round(-gap, 1) or 0.0:+.1f} points; {failed} without an article; {ms:.0f} ms per image to make and preprocess)",
              flush=True)
    # Confidence: the share of each set the model flags "not confident" (below its threshold).
    rng = np.random.default_rng(2)
    others = []
    for _ in range(max(20, n // 5)):
        try:
            others.append(prepare(not_clothing(rng), "auto").image)
        except DataError:
            pass
    unsure = {"untouched test images": flagged(predictor, list(images)),
              "photos (everything)": flagged(predictor, everything) if everything else None,
              f"not clothing ({len(others)} shapes, boxes, blobs)": flagged(predictor, others) if others else None}
    for what, share in unsure.items():
        if share is not None:
            print(f"not confident: {share * 100:.1f}% of {what}", flush=True)
    table = kit.markdown(["distortion", "dataset %", "photo %", "photo vs untouched", f"within {TARGET:g}",
                          "no article found", "ms/image"], rows, "lrrrlrr")
    section = "\n".join([
        "## Photo-like images: dataset vs photo preprocessing (benchmarks.photos)", "",
        f"Model `{model}` ({predictor.meta.recipe.get('name', '?') if predictor.meta.recipe else '?'}); {n} test images per "
        f"distortion, the same ones untouched: **{untouched * 100:.2f}%**. Each row is one run of the distortion's "
        "random draws (seeded); a row's sampling error is about ±1 point at 1,000 images.", "",
        table, "",
        f"Not confident (top probability below the model's threshold, {predictor.threshold:.3f}): "
        + "; ".join(f"{share * 100:.1f}% of the {what}" for what, share in unsure.items() if share is not None) + ".", "",
        f"Machine: {kit.machine()}; {kit.now()}. ms/image covers making the photo and preprocessing it both ways.",
    ])
    print("\n" + section)
    kit.save_text(args.out, section)
    kit.publish(args, "photos", section, when=args.write)


if __name__ == "__main__":
    kit.run(main)
