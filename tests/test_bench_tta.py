"""benchmarks.tta combines views as fmnist.inference does: its "flip" and "flip + 2 diagonal shifts" rows are
exactly the predictions of tta_shift=0 and tta_shift=1, so the table compares the recipe's own TTA fairly."""

import torch

from benchmarks.tta import SCHEMES, score, view_logits
from fmnist.inference import batched_logits, moved
from fmnist.models.resnet import ResNet
from tests.helpers import SMALL_RESNET


def test_moved_views_keep_shape_and_move_by_one_pixel():
    x = torch.arange(2 * 28 * 28, dtype=torch.float32).reshape(2, 1, 28, 28)
    assert torch.equal(moved(x, 0, 0), x)
    down = moved(x, 1, 0)
    assert down.shape == x.shape and down.dtype == x.dtype
    assert torch.equal(down[..., :27, :], x[..., 1:, :]) and torch.equal(down[..., 27, :], x[..., 27, :])


def test_schemes_match_the_predictions_of_the_recipes_tta():
    torch.manual_seed(0)
    model = ResNet(**SMALL_RESNET).eval()
    x = torch.randn(40, 1, 28, 28)
    views = view_logits(model, x, None, 16)
    assert len(views) == 2 * len({s for _, _, w in SCHEMES for s in w})
    for shift, name in [(0, "flip"), (1, "flip + 2 diagonal shifts (centre 1/2)")]:
        labels = batched_logits(model, x, 16, tta_flip=True, shift=shift).argmax(1)
        accuracy = score(views, labels)
        assert accuracy[name] == 1.0
    assert set(accuracy) == {name for name, _, _ in SCHEMES} and all(0 <= a <= 1 for a in accuracy.values())
