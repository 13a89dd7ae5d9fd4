"""The seed recipes say what ../shared/SEEDS.md says: layers, filters, padding, optimizer, schedule, epochs, batch."""

from __future__ import annotations

import json

import pytest
from torch import nn

from fmnist.errors import UsageError
from fmnist.models import build_model
from fmnist.recipes import RECIPES, Recipe, get_recipe

SEED_RECIPES = ["mlp", "baseline", "baseline-same", "baseline-wide", "seed003", "seed004", "minivgg"]

# recipe: (Conv2d, Linear, BatchNorm, Dropout) module counts.
LAYER_COUNTS = {
    "mlp": (0, 2, 0, 0),
    "baseline": (1, 2, 0, 0),
    "baseline-same": (1, 2, 0, 0),
    "baseline-wide": (1, 2, 0, 0),
    "seed003": (2, 2, 0, 1),
    "seed004": (2, 1, 0, 1),
    "minivgg": (4, 2, 5, 3),
}

# recipe: (conv filters in order, conv padding, dropout rates in order).
CONVS = {
    "mlp": ([], 0, []),
    "baseline": ([32], 0, []),
    "baseline-same": ([32], 1, []),
    "baseline-wide": ([64], 1, []),
    "seed003": ([32, 64], 0, [0.2]),
    "seed004": ([32, 64], 0, [0.25]),
    "minivgg": ([32, 32, 64, 64], 1, [0.25, 0.25, 0.5]),
}

# recipe: (optimizer, lr, momentum, schedule, epochs, batch size).
TRAINING = {
    "mlp": ("adam", 1e-3, 0.0, "constant", 10, 32),
    "baseline": ("sgd", 0.01, 0.9, "constant", 10, 32),
    "baseline-same": ("sgd", 0.01, 0.9, "constant", 10, 32),
    "baseline-wide": ("sgd", 0.01, 0.9, "constant", 10, 32),
    "seed003": ("adam", 1e-3, 0.0, "constant", 20, 128),
    "seed004": ("adam", 1e-3, 0.0, "constant", 30, 32),
    "minivgg": ("sgd", 0.01, 0.9, "keras_decay", 25, 32),
}


def _model(name: str) -> nn.Module:
    r = get_recipe(name)
    return build_model(r.model, **r.model_args)


def test_all_seed_recipes_exist():
    assert set(SEED_RECIPES) <= set(RECIPES)


@pytest.mark.parametrize("name", SEED_RECIPES)
def test_layer_counts(name):
    modules = list(_model(name).modules())

    def count(kind):
        return sum(isinstance(m, kind) for m in modules)

    got = (count(nn.Conv2d), count(nn.Linear), count(nn.modules.batchnorm._BatchNorm), count(nn.Dropout))
    assert got == LAYER_COUNTS[name]


@pytest.mark.parametrize("name", SEED_RECIPES)
def test_filters_padding_dropout(name):
    filters, padding, rates = CONVS[name]
    modules = list(_model(name).modules())
    convs = [m for m in modules if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == filters
    for c in convs:
        assert c.kernel_size == (3, 3)
        assert c.stride == (1, 1)
        assert c.padding == (padding, padding)
    assert [m.p for m in modules if isinstance(m, nn.Dropout)] == rates


def test_hidden_widths():
    assert _model("mlp").fc1.out_features == 128
    assert _model("baseline").fc1.out_features == 100
    assert _model("seed003").fc1.out_features == 128
    assert _model("minivgg").fc1.out_features == 512


@pytest.mark.parametrize("name", SEED_RECIPES)
def test_training_settings(name):
    optimizer, lr, momentum, schedule, epochs, batch_size = TRAINING[name]
    r = get_recipe(name)
    assert r.optimizer.name == optimizer
    assert r.optimizer.lr == pytest.approx(lr)
    assert r.optimizer.momentum == pytest.approx(momentum)
    assert r.schedule.name == schedule
    assert r.epochs == epochs
    assert r.batch_size == batch_size
    # The seeds scale pixels to [0, 1] and nothing more.
    assert (r.mean, r.std) == (0.0, 1.0)


def test_keras_adam_defaults():
    opt = get_recipe("seed004").optimizer
    assert opt.betas == (0.9, 0.999)
    assert opt.eps == pytest.approx(1e-7)


def test_minivgg_keras_decay_is_lr_over_epochs():
    assert get_recipe("minivgg").schedule.decay == pytest.approx(0.01 / 25)


def test_reported_figures():
    assert get_recipe("minivgg").reported == pytest.approx(93.52)
    assert get_recipe("seed004").reported == pytest.approx(92.03)
    assert get_recipe("baseline").reported == pytest.approx(90.99)


@pytest.mark.parametrize("name", SEED_RECIPES)
def test_round_trip_through_json(name):
    r = get_recipe(name)
    assert Recipe.from_dict(r.to_dict()) == r
    # Through JSON, tuples come back as lists: from_dict must restore them.
    assert Recipe.from_dict(json.loads(json.dumps(r.to_dict()))) == r


def test_from_dict_rejects_unknown_fields():
    d = get_recipe("baseline").to_dict()
    d["learning_rate"] = 0.1
    with pytest.raises(UsageError, match="learning_rate"):
        Recipe.from_dict(d)


def test_unknown_recipe_lists_known_ones():
    with pytest.raises(UsageError, match="minivgg"):
        get_recipe("nope")


def test_changes_name_what_a_run_set_apart_from_its_recipe():
    from fmnist.recipes import changes
    from fmnist.recipes.overrides import apply_assignment

    fast = get_recipe("fast")
    assert changes(fast.to_dict()) == []
    run = apply_assignment(apply_assignment(fast, "epochs=4"), "lr=0.2")
    assert changes(run.to_dict()) == ["epochs 4 (the recipe's 6)", "optimizer.lr 0.2 (the recipe's 0.35)"]
    assert changes({"name": "not-in-the-catalogue", "epochs": 4}) == []
