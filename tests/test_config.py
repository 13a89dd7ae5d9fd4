"""The typed run configuration validates itself: a bad value fails at once with a sentence naming the field."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fmnist.config import AugmentConfig, OptimizerConfig, Recipe, RunConfig, TrainOptions
from fmnist.errors import UsageError
from fmnist.recipes import get_recipe


@pytest.mark.parametrize("changes, message", [
    ({"epochs": 0}, "epochs must be a whole number >= 1"),
    ({"epochs": -1}, "epochs must be a whole number >= 1"),
    ({"batch_size": 0}, "batch size must be a whole number >= 1"),
    ({"precision": "fp8"}, "precision 'fp8' is not one of auto, bf16, fp32"),
    ({"validation": "bogus"}, "validation 'bogus' is not one of test, holdout, none"),
    ({"label_smoothing": 1.0}, "label_smoothing must be in"),
    ({"std": 0.0}, "std must be a finite number > 0"),
    ({"val_fraction": 0.0}, "val_fraction must be in"),
])
def test_bad_recipe_values_fail_when_the_recipe_is_made(changes, message):
    with pytest.raises(UsageError, match=message):
        dataclasses.replace(get_recipe("fast"), **changes)


@pytest.mark.parametrize("lr", [-1.0, float("nan"), float("inf")])
def test_a_learning_rate_must_be_finite_and_not_negative(lr):
    with pytest.raises(UsageError, match="lr must be a finite number >= 0"):
        OptimizerConfig(lr=lr)


@pytest.mark.parametrize("changes, message", [
    ({"seed": -1}, "--seed must be a whole number"),
    ({"seed": 2**64}, "--seed must be a whole number"),
    ({"precision": "half"}, "--precision 'half' is not one of recipe, auto, bf16, fp32"),
    ({"threads": 0}, "--threads must be a whole number >= 1"),
    ({"val_precision": "bf16"}, "val_precision 'bf16' is not one of train, fp32"),
])
def test_bad_options_fail_when_the_options_are_made(changes, message):
    with pytest.raises(UsageError, match=message):
        TrainOptions(**changes)


def test_run_config_round_trips_through_its_dict():
    cfg = RunConfig(recipe=get_recipe("minivgg").replace(epochs=3), options=TrainOptions(seed=4, precision="fp32"),
                    dataset="idx", data_dir=Path("/data"), limit=500, data_source="data-dir", train_images=500)
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    assert RunConfig.from_dict(cfg.to_dict() | {"created": "x", "fmnist_version": "0"}) == cfg
    with pytest.raises(UsageError, match="--limit must be a whole number >= 1"):
        dataclasses.replace(cfg, limit=0)


def test_recipe_from_dict_restores_nested_configs_and_refuses_unknown_fields():
    recipe = get_recipe("fast")
    assert Recipe.from_dict(recipe.to_dict()) == recipe
    with pytest.raises(UsageError, match=r"unknown recipe optimizer fields: \['nestrov'\]"):
        Recipe.from_dict(recipe.to_dict() | {"optimizer": {"name": "sgd", "nestrov": True}})


def test_the_cli_refuses_bad_values_before_anything_is_written(cli, tiny_data_dir, tmp_path):
    out = tmp_path / "run"
    for args in (["--lr", "nan"], ["--seed", "-1"], ["--precision", "fp16"], ["--epochs", "0"]):
        r = cli("--dataset", "idx", "--data-dir", tiny_data_dir, "train", "mlp", *args, "--out", out)
        assert r.exit_code == 2, (args, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr and not out.exists()


def test_a_saved_true_false_setting_of_another_type_reads_as_it_trained():
    # An older --set stored augment.flip=False as the string "False", which trained with flips on.
    d = get_recipe("mlp").to_dict()
    d["augment"]["flip"], d["tta_flip"] = "False", 0
    r = Recipe.from_dict(d)
    assert r.augment.flip is True and r.tta_flip is False
    with pytest.raises(UsageError, match="flip must be true or false"):
        AugmentConfig(flip="False")
