"""Dynamic data pruning (InfoBatch): which images sit an epoch out and how the rest are weighed, which epochs prune,
and a pruning run that is deterministic, takes fewer steps in its pruned epochs and still ends its schedule."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from fmnist.config import TrainOptions
from fmnist.errors import UsageError
from fmnist.recipes import get_recipe
from fmnist.train import prune
from fmnist.train.loop import TrainData, fit
from tests.helpers import SMALL_RESNET, make_split


def test_select_leaves_out_part_of_the_images_below_the_mean_and_weighs_the_rest_up():
    scores = torch.tensor([0.1, 0.2, 0.3, 5.0, 6.0, float("inf")] * 200)
    kept, weights = prune.select(scores, 0.5, torch.Generator().manual_seed(0))
    assert kept.dtype == torch.int64 and weights.shape == scores.shape and weights.dtype == torch.float32
    learned = scores < 5.0
    out = torch.ones(len(scores), dtype=torch.bool)
    out[kept] = False
    assert not out[~learned].any()  # above the mean, or never scored: always trained
    assert 0.4 < float(out[learned].float().mean()) < 0.6  # about half of the learned ones sit out
    assert torch.all(weights[kept][learned[kept]] == 2.0) and torch.all(weights[~learned] == 1.0)
    assert torch.equal(kept, torch.sort(kept).values)  # in order: the loop shuffles them
    again = prune.select(scores, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(again[0], kept) and torch.equal(again[1], weights)


def test_select_with_nothing_scored_keeps_everything():
    kept, weights = prune.select(torch.full((10,), prune.UNSCORED), 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(kept, torch.arange(10)) and torch.all(weights == 1.0)


@pytest.mark.parametrize(("fraction", "until", "epochs", "expected"), [
    (0.5, 0.875, 8, [2, 3, 4, 5, 6, 7]), (0.5, 0.875, 5, [2, 3, 4]), (0.5, 1.0, 4, [2, 3]),
    (0.0, 0.875, 8, []), (0.5, 0.875, 2, []),
])
def test_pruned_epochs_start_at_the_second_and_never_include_the_last(fraction, until, epochs, expected):
    assert list(prune.epochs_pruned(fraction, until, epochs)) == expected


@pytest.mark.parametrize("change", [{"prune": 1.0}, {"prune": -0.1}, {"prune_until": 1.5}])
def test_pruning_settings_are_checked(change):
    with pytest.raises(UsageError, match="prune"):
        get_recipe("fast").replace(**change)


def pruning_recipe(fraction: float):
    fast = get_recipe("fast")
    return fast.replace(epochs=4, batch_size=16, model_args=SMALL_RESNET, prune=fraction, prune_until=1.0,
                        augment=dataclasses.replace(fast.augment, resize=()))


def data():
    train, val = make_split(160, seed=41), make_split(32, seed=42)
    return TrainData((train.images, train.labels), (val.images, val.labels), 10)


class StepCounter:
    def __init__(self):
        self.steps = {}

    def epoch_start(self, epoch, epochs, steps):
        self.steps[epoch] = steps

    def step(self, *args): ...

    def epoch_end(self, stats): ...

    def should_stop(self):
        return False


def test_a_pruning_run_is_deterministic_and_takes_fewer_steps_in_its_pruned_epochs():
    runs = []
    for fraction in (0.5, 0.5, 0.0):
        counter = StepCounter()
        result = fit(pruning_recipe(fraction), data(), TrainOptions(seed=5, device="cpu"), callbacks=counter)
        runs.append((counter.steps, result))
    (steps, a), (_, b), (full, unpruned) = runs
    assert all(torch.equal(a.model.state_dict()[k], b.model.state_dict()[k]) for k in a.model.state_dict())
    assert full == {1: 10, 2: 10, 3: 10, 4: 10}
    assert steps[1] == 10 and steps[4] == 10  # the first scores every image; the last trains on all of them
    assert steps[2] < 10 and steps[3] < 10
    # The schedule still reaches its end: the last step's learning rate is the unpruned run's.
    assert a.history[-1].lr == pytest.approx(unpruned.history[-1].lr)
    assert [h.lr for h in a.history] != [h.lr for h in unpruned.history]  # a pruned epoch's steps stride further
