"""Every registered model: shapes, gradients, memory formats; seed architectures' sizes, init and summary; CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from fmnist.errors import UsageError
from fmnist.models import build_model, list_models
from fmnist.models.init import glorot_uniform_, he_uniform_
from fmnist.models.summary import count_params, format_summary, summarize
from fmnist.recipes import RECIPES

SEED_MODELS = {"mlp", "baseline", "seed003", "seed004", "minivgg"}


def test_seed_models_are_registered():
    assert SEED_MODELS <= set(list_models())


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_finite(name):
    torch.manual_seed(0)
    model = build_model(name)
    logits = model(torch.rand(3, 1, 28, 28))
    assert logits.shape == (3, 10)
    assert torch.isfinite(logits).all()
    nn.functional.cross_entropy(logits, torch.tensor([0, 4, 9])).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
    # Some gradient must be non-zero, or the model is not actually connected to the loss.
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("name", list_models())
def test_other_channels_and_classes(name):
    model = build_model(name, in_channels=3, num_classes=5)
    assert model(torch.rand(3, 3, 28, 28)).shape == (3, 5)


@pytest.mark.parametrize("name", list_models())
def test_channels_last_matches_contiguous(name):
    torch.manual_seed(0)
    model = build_model(name).eval()
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        ref = model(x)
        model = model.to(memory_format=torch.channels_last)
        got = model(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", list_models())
def test_autocast_bf16(name):
    model = build_model(name)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(torch.rand(3, 1, 28, 28).to(memory_format=torch.channels_last))
    assert logits.shape == (3, 10)
    assert torch.isfinite(logits.float()).all()


@pytest.mark.parametrize(
    "name, args, expected",
    [
        # 784*128+128 = 100,480; 128*10+10 = 1,290.
        ("mlp", {}, 101_770),
        # conv 32*9+32 = 320; 13*13*32 = 5408 -> dense 5408*100+100 = 540,900; out 100*10+10 = 1,010.
        ("baseline", {"padding": "valid"}, 542_230),
        # same padding: 14*14*32 = 6272 -> 627,300.
        ("baseline", {"padding": "same"}, 320 + 627_300 + 1_010),
        # 64 filters: conv 640; 14*14*64 = 12544 -> 1,254,500.
        ("baseline", {"filters": 64, "padding": "same"}, 640 + 1_254_500 + 1_010),
        # conv 320; conv 32*64*9+64 = 18,496; 26->13->11->5: 5*5*64 = 1600 -> 1600*128+128 = 204,928; 1,290.
        ("seed003", {}, 320 + 18_496 + 204_928 + 1_290),
        # conv 320; conv 18,496; 28->26->24->12: 12*12*64 = 9216 -> 9216*10+10 = 92,170.
        ("seed004", {}, 320 + 18_496 + 92_170),
        # convs 320 + 9,248 (32*32*9+32) + 18,496 + 36,928 (64*64*9+64); BN gamma/beta 2*(32+32+64+64) = 384;
        # 7*7*64 = 3136 -> 3136*512+512 = 1,606,144; BN1d 2*512 = 1,024; out 512*10+10 = 5,130.
        ("minivgg", {}, 320 + 9_248 + 18_496 + 36_928 + 384 + 1_606_144 + 1_024 + 5_130),
    ],
)
def test_parameter_counts(name, args, expected):
    assert count_params(build_model(name, **args)) == expected


def test_minivgg_total_is_1677674():
    assert count_params(build_model("minivgg")) == 1_677_674


def test_minivgg_batchnorm_uses_keras_defaults():
    bns = [m for m in build_model("minivgg").modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(bns) == 5
    for bn in bns:
        assert bn.momentum == pytest.approx(0.01)
        assert bn.eps == pytest.approx(1e-3)


def _assert_uniform_bound(weight: torch.Tensor, limit: float) -> None:
    # Within the bound, and (with hundreds of samples) close to it: PyTorch's own default bound
    # 1/sqrt(fan_in) is far below these limits, so this tells the two apart.
    top = weight.abs().max().item()
    assert top <= limit
    assert top >= 0.9 * limit


def test_baseline_he_uniform_and_glorot_output():
    torch.manual_seed(0)
    model = build_model("baseline")
    _assert_uniform_bound(model.conv1.weight, math.sqrt(6 / 9))  # fan_in = 1*3*3
    _assert_uniform_bound(model.fc1.weight, math.sqrt(6 / 5408))
    _assert_uniform_bound(model.fc2.weight, math.sqrt(6 / (100 + 10)))
    for layer in (model.conv1, model.fc1, model.fc2):
        assert torch.count_nonzero(layer.bias) == 0


def test_glorot_conv_fans_are_channels_times_kernel():
    torch.manual_seed(0)
    model = build_model("seed003")
    _assert_uniform_bound(model.conv2.weight, math.sqrt(6 / (32 * 9 + 64 * 9)))
    _assert_uniform_bound(model.fc1.weight, math.sqrt(6 / (1600 + 128)))
    assert torch.count_nonzero(model.conv2.bias) == 0


def test_init_helpers_reach_nested_layers():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Sequential(nn.Conv2d(4, 8, 5)), nn.Linear(20, 30))
    he_uniform_(net)
    _assert_uniform_bound(net[0][0].weight, math.sqrt(6 / (4 * 25)))
    _assert_uniform_bound(net[1].weight, math.sqrt(6 / 20))
    glorot_uniform_(net[1])
    _assert_uniform_bound(net[1].weight, math.sqrt(6 / 50))
    assert torch.count_nonzero(net[0][0].bias) == 0


def test_bad_padding_is_a_usage_error():
    with pytest.raises(UsageError, match="padding"):
        build_model("baseline", padding="full")
    with pytest.raises(UsageError, match="out of bounds"):  # what a model file may not hold is not built either
        build_model("baseline", filters=5000)
    assert build_model("resnet", widths=(8, 16), blocks=(0, 1)) is not None  # a tuple is a list here too
    with pytest.raises(UsageError, match="widths and blocks must have the same length"):  # refused together
        build_model("resnet", widths=[8, 16])


def test_flatten_size_follows_image_size():
    model = build_model("baseline", image_size=32)
    assert model.fc1.in_features == 15 * 15 * 32
    assert model(torch.rand(2, 1, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("name", sorted(SEED_MODELS))
def test_summary_totals(name):
    model = build_model(name)
    s = summarize(model)
    assert s.params == count_params(model)
    assert sum(r.params for r in s.rows) == s.params
    assert s.rows[-1].output_shape == (10,)
    assert model.training  # summarize restores the mode it found


def test_summary_of_baseline():
    s = summarize(build_model("baseline"))
    rows = {r.name: r for r in s.rows}
    assert rows["conv1"].output_shape == (32, 26, 26)
    assert rows["pool1"].output_shape == (32, 13, 13)
    assert rows["flatten"].output_shape == (5408,)
    # conv 26*26*32 outputs x 1*3*3 each = 194,688; dense 5408*100 = 540,800; out 100*10 = 1,000.
    assert rows["conv1"].macs == 194_688
    assert s.macs == 194_688 + 540_800 + 1_000
    assert rows["relu1"].macs == 0


def test_summary_does_not_touch_batchnorm_statistics():
    model = build_model("minivgg")
    before = model.bn1.running_var.clone()
    summarize(model)
    assert torch.equal(model.bn1.running_var, before)
    assert model.bn1.num_batches_tracked.item() == 0


def test_format_summary_has_layers_and_totals():
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(format_summary(summarize(build_model("seed004"))))
    text = console.export_text()
    assert "conv2" in text and "(64, 24, 24)" in text
    assert "110,986" in text


def test_cli_lists_all_recipes_as_json(cli):
    r = cli("models", "--json")
    assert r.exit_code == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [row["name"] for row in rows] == list(RECIPES)
    by_name = {row["name"]: row for row in rows}
    assert by_name["baseline"]["params"] == 542_230
    assert by_name["baseline"]["macs"] == 736_488
    assert by_name["minivgg"]["optimizer"] == "sgd"
    assert by_name["minivgg"]["reported"] == 93.52
    for row in rows:
        assert {"model", "params", "macs", "epochs", "batch_size", "optimizer", "seed_doc", "reported_note"} <= set(row)


def test_cli_lists_recipes_as_table(cli):
    r = cli("models")
    assert r.exit_code == 0, r.stderr
    for name in RECIPES:
        assert name in r.stdout
    assert "1,677,674" in r.stdout


def test_cli_show_minivgg(cli):
    r = cli("models", "show", "minivgg")
    assert r.exit_code == 0, r.stderr
    for text in ("conv4", "bn5", "BatchNorm2d", "(64, 7, 7)", "1,677,674", "Total"):
        assert text in r.stdout


def test_cli_show_json(cli):
    r = cli("models", "show", "baseline-same", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["recipe"] == "baseline-same"
    assert doc["params"] == 628_630
    assert doc["rows"][0]["output_shape"] == [32, 28, 28]


def test_cli_show_unknown_recipe(cli):
    r = cli("models", "show", "resnet-9000")
    assert r.exit_code == 2
    assert "resnet-9000" in r.stderr and "minivgg" in r.stderr
    assert r.stdout == ""
