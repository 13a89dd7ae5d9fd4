"""Every figure writer produces a PNG that Pillow opens; the montage's geometry and label colours are checked."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fmnist.plots.evaluation import plot_confusion_matrix, plot_misclassified, plot_montage
from fmnist.plots.training import plot_boxplot, plot_fold_curves, plot_learning_curves

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Ankle boot"]


def _history(epochs: int, with_val: bool = True, offset: float = 0.0) -> list[dict]:
    return [
        {"epoch": e, "train_loss": 1.0 / e + offset, "train_acc": 0.7 + 0.02 * e, "val_loss": (1.2 / e) if with_val else None,
         "val_acc": (0.68 + 0.02 * e) if with_val else None, "lr": 0.01, "seconds": 1.0}
        for e in range(1, epochs + 1)
    ]


def _open_png(path) -> Image.Image:
    assert path.is_file() and path.stat().st_size > 0
    img = Image.open(path)
    img.load()
    assert img.format == "PNG"
    assert not list(path.parent.glob(".*"))  # the atomic write left no temporary file
    return img


def test_learning_curves(tmp_path):
    img = _open_png(plot_learning_curves(_history(5), tmp_path / "lc.png", title="baseline"))
    assert img.width > img.height > 200  # two panels side by side


def test_learning_curves_without_validation(tmp_path):
    _open_png(plot_learning_curves(_history(3, with_val=False), tmp_path / "lc.png"))
    # A partly missing validation column (a gap) is fine too.
    history = _history(3)
    history[1]["val_loss"] = history[1]["val_acc"] = None
    _open_png(plot_learning_curves(history, tmp_path / "gap.png"))
    with pytest.raises(ValueError):
        plot_learning_curves([], tmp_path / "empty.png")


def test_fold_curves(tmp_path):
    img = _open_png(plot_fold_curves([_history(4, offset=0.01 * k) for k in range(5)], tmp_path / "folds.png"))
    assert img.height > img.width  # loss above accuracy, as the seed draws them


def test_boxplot(tmp_path):
    scores = {"baseline": [0.911, 0.913, 0.910, 0.912, 0.914], "baseline-same": [0.912, 0.915, 0.911, 0.910, 0.916]}
    _open_png(plot_boxplot(scores, tmp_path / "box.png", title="padding"))
    with pytest.raises(ValueError):
        plot_boxplot({"empty": []}, tmp_path / "none.png")


@pytest.mark.parametrize("normalize", [False, True])
def test_confusion_matrix(tmp_path, normalize):
    cm = np.array([[5, 1, 0, 0], [0, 6, 0, 0], [2, 0, 4, 0], [0, 0, 0, 0]])  # last class absent: no NaN row
    _open_png(plot_confusion_matrix(cm, CLASSES, tmp_path / "cm.png", normalize=normalize))
    with pytest.raises(ValueError, match="shape"):
        plot_confusion_matrix(cm[:3], CLASSES, tmp_path / "bad.png")


def _label_colours(montage: np.ndarray, tile: int, size: int, grid: int) -> tuple[int, int]:
    """Counts of clearly green and clearly red pixels in the top third (where the label is) of one tile."""
    y, x = (tile // grid) * size, (tile % grid) * size
    region = montage[y:y + size // 3, x:x + size].astype(int)
    r, g, b = region[..., 0], region[..., 1], region[..., 2]
    return int(((g > 150) & (r < 100) & (b < 100)).sum()), int(((r > 150) & (g < 100) & (b < 100)).sum())


@pytest.mark.parametrize("size,grid", [(96, 4), (64, 2)])
def test_montage_geometry_and_colours(tmp_path, size, grid):
    n = grid * grid
    rng = np.random.default_rng(0)
    # Bright garments: the label must stay readable (and its colour measurable) over white pixels.
    images = rng.integers(180, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = np.arange(n) % len(CLASSES)
    preds = labels.copy()
    preds[1::2] = (labels[1::2] + 1) % len(CLASSES)  # odd tiles wrong
    img = _open_png(plot_montage(images, labels, preds, CLASSES, tmp_path / "montage.png", size=size, grid=grid))
    assert img.size == (grid * size, grid * size) and img.mode == "RGB"
    pixels = np.asarray(img)
    for tile in range(n):
        green, red = _label_colours(pixels, tile, size, grid)
        if tile % 2 == 0:
            assert green > 20 and red == 0, (tile, green, red)
        else:
            assert red > 20 and green == 0, (tile, green, red)


def test_montage_rejects_bad_input(tmp_path):
    images = np.zeros((17, 28, 28), np.uint8)
    with pytest.raises(ValueError):
        plot_montage(images, np.zeros(17), np.zeros(17), CLASSES, tmp_path / "m.png")  # more than 4x4
    with pytest.raises(ValueError, match="uint8"):
        plot_montage(images[:4].astype(float), np.zeros(4), np.zeros(4), CLASSES, tmp_path / "m.png")


def test_misclassified(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(30, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 4, 30)
    preds = labels.copy()
    preds[:10] = (labels[:10] + 1) % 4
    losses = rng.random(30)
    _open_png(plot_misclassified(images, labels, preds, losses, CLASSES, tmp_path / "mis.png", n=4))
    # Nothing wrong: still a figure, saying so.
    _open_png(plot_misclassified(images, labels, labels, losses, CLASSES, tmp_path / "none.png"))


@pytest.mark.parametrize("epochs", [1, 2])
def test_a_short_run_has_a_tick_at_each_epoch_and_none_beyond(epochs):
    # Two epochs drew an axis to epoch 3.
    import matplotlib.pyplot as plt

    from fmnist.plots.training import _draw_curves, _style

    fig, (loss_ax, acc_ax) = plt.subplots(1, 2)
    try:
        _draw_curves(loss_ax, acc_ax, _history(epochs), label=True, held_out="validation")
        _style(loss_ax, acc_ax)
        assert loss_ax.get_xlim() == (0.5, epochs + 0.5)
        assert [t for t in loss_ax.get_xticks() if 0.5 <= t <= epochs + 0.5] == list(range(1, epochs + 1))
    finally:
        plt.close(fig)
