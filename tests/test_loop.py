"""The training loop on tiny generated data: one epoch end to end, the step, seeding, validation's path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fmnist.config import TrainOptions
from fmnist.data.transforms import to_device_tensors
from fmnist.inference import batched_logits, loss_and_accuracy
from fmnist.recipes import get_recipe
from fmnist.train.loop import Callbacks, TrainData, fit, start, train_step
from fmnist.train.stats import RunningStats
from tests.helpers import make_split


class Recorder(Callbacks):
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None:
        self.events.append(("start", epoch, epochs, steps))

    def step(self, step: int, loss: float, acc: float) -> None:
        self.events.append(("step", step))

    def epoch_end(self, stats) -> None:
        self.events.append(("end", stats.epoch))


def test_one_epoch_on_64_images():
    split = make_split(64, seed=11)
    recipe = get_recipe("baseline").replace(epochs=1, batch_size=16)
    cb = Recorder()
    result = fit(recipe, TrainData((split.images, split.labels), (split.images, split.labels), 10),
                 TrainOptions(seed=0, device="cpu", progress_every=2), cb)
    (stats,) = result.history
    assert stats.epoch == 1 and np.isfinite(stats.train_loss) and 0 <= stats.train_acc <= 1
    assert stats.val_loss is not None and 0 <= stats.val_acc <= 1 and stats.lr == pytest.approx(0.01)
    assert cb.events == [("start", 1, 1, 4), ("step", 2), ("step", 4), ("end", 1)]
    assert not result.model.training and result.device.type == "cpu" and result.precision == "bf16"
    assert result.threads == torch.get_num_threads() and result.seconds > 0


def test_validation_goes_through_the_inference_path():
    # With fp32 validation, the last epoch's held-out figures are exactly what fmnist.inference gives the final model.
    train, val = make_split(64, seed=12), make_split(32, seed=13)
    recipe = get_recipe("mlp").replace(epochs=2, batch_size=16, tta_flip=True)
    result = fit(recipe, TrainData((train.images, train.labels), (val.images, val.labels), 10),
                 TrainOptions(seed=1, device="cpu", val_precision="fp32"))
    x, y = to_device_tensors(val.images, val.labels, torch.device("cpu"), recipe.mean, recipe.std)
    loss, acc = loss_and_accuracy(batched_logits(result.model, x, tta_flip=True), y)
    assert (result.history[-1].val_loss, result.history[-1].val_acc) == (loss, acc)


def test_train_step_takes_one_optimizer_step():
    split = make_split(32, seed=14)
    recipe = get_recipe("mlp").replace(epochs=1, batch_size=8)
    loop = start(recipe, TrainData((split.images, split.labels), None, 10), TrainOptions(seed=0, device="cpu"))
    before = [p.detach().clone() for p in loop.params]
    loss, logits, labels = train_step(loop, torch.arange(8))
    assert loop.step == 1 and loop.total_steps == 4 and logits.shape == (8, 10) and torch.equal(labels, loop.y[:8])
    assert torch.isfinite(loss) and any(not torch.equal(a, b) for a, b in zip(before, loop.params))


def test_an_empty_training_split_is_refused():
    empty = (np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.int64))
    with pytest.raises(ValueError, match="no training images"):
        fit(get_recipe("mlp").replace(epochs=1), TrainData(empty, None, 10), TrainOptions(device="cpu"))


def test_same_seed_gives_the_same_weights():
    train, val = make_split(96, seed=3), make_split(32, seed=4)
    recipe = get_recipe("minivgg").replace(epochs=1)
    runs = [fit(recipe, TrainData((train.images, train.labels), (val.images, val.labels), 10), TrainOptions(seed=7)) for _ in range(2)]
    a, b = (r.model.state_dict() for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = fit(recipe, TrainData((train.images, train.labels), None, 10), TrainOptions(seed=8)).model.state_dict()
    assert not all(torch.equal(a[k], other[k]) for k in a)


def test_running_stats_weigh_batches_by_size():
    stats = RunningStats(torch.device("cpu"))
    # Batch 1: 4 images, mean loss 1.0, 3 right; batch 2: 2 images, mean loss 4.0, 0 right.
    logits1 = torch.eye(3)[[0, 1, 2, 0]]
    stats.add(torch.tensor(1.0), logits1, torch.tensor([0, 1, 2, 1]))
    assert stats.read() == (1.0, 0.75)
    stats.add(torch.tensor(4.0), torch.eye(3)[[0, 0]], torch.tensor([2, 2]))
    loss, acc = stats.read()
    assert loss == pytest.approx((4 * 1.0 + 2 * 4.0) / 6) and acc == pytest.approx(3 / 6)


def test_a_last_batch_of_one_image_joins_the_one_before_and_batch_size_1_is_refused_with_batchnorm():
    split = make_split(33, seed=15)
    recipe = get_recipe("minivgg").replace(epochs=1, batch_size=32)  # 33 images: a last batch of 1
    result = fit(recipe, TrainData((split.images, split.labels), None, 10), TrainOptions(device="cpu"))
    assert np.isfinite(result.history[0].train_loss)
    loop = start(recipe, TrainData((split.images, split.labels), None, 10), TrainOptions(device="cpu"))
    assert loop.steps_per_epoch == 1
    from fmnist.errors import UsageError

    with pytest.raises(UsageError, match="at least 2 images per batch"):
        fit(recipe.replace(batch_size=1), TrainData((split.images, split.labels), None, 10), TrainOptions(device="cpu"))
    # Without BatchNorm a batch of one is fine.
    fit(get_recipe("mlp").replace(epochs=1, batch_size=1), TrainData((split.images[:4], split.labels[:4]), None, 10),
        TrainOptions(device="cpu"))
