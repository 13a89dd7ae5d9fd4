"""Augmentation keeps shapes, dtypes and label alignment and is deterministic under a seed; EMA and TTA
change what they should."""

from __future__ import annotations

import numpy as np
import torch

from fmnist.config import AugmentConfig, TrainOptions
from fmnist.inference import batched_logits, loss_and_accuracy
from fmnist.recipes import get_recipe
from fmnist.train.augment import augment_batch, random_crop, random_erase, random_flip
from fmnist.train.ema import WeightEMA, recalibrate_batchnorm
from fmnist.train.loop import TrainData, fit
from tests.helpers import make_split


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def batch(n: int = 16) -> torch.Tensor:
    # Each image carries its index in pixel (0, 0) region-free centre so alignment can be checked.
    x = torch.zeros(n, 1, 28, 28)
    for i in range(n):
        x[i, 0, 10:18, 10:18] = i + 1
    return x.contiguous(memory_format=torch.channels_last)


def test_shapes_dtypes_and_determinism():
    x = batch()
    cfg = AugmentConfig(crop_padding=2, flip=True, erase=0.5)
    a, b = augment_batch(x, cfg, gen(1)), augment_batch(x, cfg, gen(1))
    assert a.shape == x.shape and a.dtype == x.dtype and torch.equal(a, b)
    assert not torch.equal(a, augment_batch(x, cfg, gen(2)))
    assert a.is_contiguous(memory_format=torch.channels_last)


def test_labels_stay_aligned():
    # Crops move the centre square by at most 2 px and flips mirror it: image i still holds value i + 1.
    x = batch()
    out = augment_batch(x, AugmentConfig(crop_padding=2, flip=True), gen(3))
    for i in range(len(x)):
        values = set(out[i].unique().tolist()) - {0.0}
        assert values == {float(i + 1)}


def test_crop_shifts_by_at_most_padding_and_pads_with_background():
    x = torch.ones(64, 1, 28, 28)
    out = random_crop(x, 3, gen(0), value=-1.0)
    # Every crop keeps at least 25 x 25 of the original; the rest is background.
    kept = (out == 1).flatten(1).sum(1)
    assert kept.min() >= 25 * 25 and set(out.unique().tolist()) <= {1.0, -1.0}
    assert (out == -1).any()


def test_flip_mirrors_about_half_the_images():
    x = torch.arange(28.0).repeat(200, 1, 28, 1)
    out = random_flip(x, gen(0))
    flipped = (out[:, 0, 0, 0] == 27).sum().item()
    assert 70 < flipped < 130 and torch.equal(out[out[:, 0, 0, 0] == 27], x[:1].flip(3).expand(flipped, -1, -1, -1))


def test_erase_fills_rectangles_with_the_value():
    x = torch.ones(100, 1, 28, 28)
    out = random_erase(x, gen(0), p=1.0, value=0.0)
    erased = (out == 0).flatten(1).sum(1)
    assert (erased > 0).all() and (erased <= 0.25 * 784 + 28).all()
    assert torch.equal(random_erase(x, gen(0), p=0.0), x)


def test_ema_tracks_an_average_and_swaps():
    model = torch.nn.Linear(3, 1)
    ema = WeightEMA(model, decay=0.5)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(2.0)
    ema.update()
    assert torch.allclose(ema.shadow[0], start + 1.0)  # halfway to the new weights
    ema.swap()
    assert torch.allclose(model.weight, start + 1.0)
    ema.swap()
    assert torch.allclose(model.weight, start + 2.0)


def test_ema_recipe_ends_with_the_averaged_weights_and_tta_changes_the_evaluation():
    train = make_split(64, seed=5)
    base = get_recipe("mlp").replace(epochs=1, batch_size=16)
    plain = fit(base, TrainData((train.images, train.labels), None, 10), TrainOptions(seed=0)).model
    averaged = fit(base.replace(ema_decay=0.9), TrainData((train.images, train.labels), None, 10), TrainOptions(seed=0)).model
    assert not torch.equal(plain[1].weight, averaged[1].weight)
    x = torch.from_numpy(train.images).float().div(255).unsqueeze(1)
    x[:, :, :, :14] = 0  # asymmetric images: the mirror differs
    y = torch.from_numpy(train.labels)
    assert loss_and_accuracy(batched_logits(plain, x), y) != loss_and_accuracy(batched_logits(plain, x, tta_flip=True), y)


def test_resnet_recipe_trains_a_step_with_augmentation():
    train = make_split(32, seed=6)
    recipe = get_recipe("mlp").replace(
        model="resnet", model_args={"stem": 8, "widths": [8, 16], "blocks": [1, 0]}, epochs=1, batch_size=16,
        augment=AugmentConfig(crop_padding=2, flip=True, erase=0.5), label_smoothing=0.1, ema_decay=0.99,
        drop_last=True, mean=0.286, std=0.353,
    )
    result = fit(recipe, TrainData((train.images, train.labels), (train.images, train.labels), 10), TrainOptions(seed=0))
    assert np.isfinite(result.history[0].train_loss) and result.history[0].val_acc is not None


def test_recalibrated_batchnorm_matches_the_statistics_of_the_current_weights():
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4, momentum=0.01), nn.Flatten(), nn.Dropout(0.5), nn.Linear(4 * 26 * 26, 3))
    bn = model[1]
    bn.running_mean.fill_(5.0)  # stale statistics, as averaged ones would be
    bn.running_var.fill_(9.0)
    x = torch.randn(64, 1, 28, 28)
    recalibrate_batchnorm(model, x, batch_size=64)
    features = model[0](x).detach()
    torch.testing.assert_close(bn.running_mean, features.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(bn.running_var, features.var(dim=(0, 2, 3), unbiased=True), rtol=1e-4, atol=1e-5)
    assert bn.momentum == 0.01 and not model.training
    # Eval mode afterwards: the same input gives the same output twice (Dropout off).
    assert torch.equal(model(x), model(x))
