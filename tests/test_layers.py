"""The shared layers: the fp32 classifier head under autocast, the cheap-mask dropout, pool-before-ReLU."""

from __future__ import annotations

import torch
from torch import nn

from fmnist.models import build_model
from fmnist.models.layers import Classifier, Dropout, keep_mask


def test_classifier_is_fp32_under_bf16_autocast():
    torch.manual_seed(0)
    head = Classifier(16, 10)
    plain = nn.Linear(16, 10)
    plain.load_state_dict(head.state_dict())  # same keys and shapes as nn.Linear
    x = torch.randn(4, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert plain(x).dtype == torch.bfloat16
        got = head(x.bfloat16())
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, plain(x.bfloat16().float()))


def test_every_model_ends_in_an_fp32_classifier():
    for name in ("mlp", "baseline", "seed003", "seed004", "minivgg", "resnet"):
        model = build_model(name)
        last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
        assert isinstance(last, Classifier), name
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert model(torch.rand(2, 1, 28, 28)).dtype == torch.float32, name


def test_dropout_keeps_the_expected_share_and_scale():
    torch.manual_seed(0)
    drop = Dropout(0.25).train()
    x = torch.ones(200_000)
    y = drop(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.75) < 0.005
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.75))
    assert abs(y.mean().item() - 1.0) < 0.01  # unbiased in expectation, as nn.Dropout


def test_dropout_is_seeded_identity_in_eval_and_passes_gradients():
    x = torch.randn(64, 8, requires_grad=True)
    drop = Dropout(0.5).train()
    torch.manual_seed(3)
    a = drop(x)
    torch.manual_seed(3)
    b = drop(x)
    assert torch.equal(a, b)
    a.sum().backward()
    # The gradient is the mask times the scale: zero where dropped, 2 where kept.
    assert set(x.grad.unique().tolist()) <= {0.0, 2.0}
    assert torch.equal(drop.eval()(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)


def test_dropout_rates_and_mask_layout():
    torch.manual_seed(0)
    for p in (0.1, 0.2, 0.5):
        assert abs((~keep_mask(torch.zeros(400_000), p)).float().mean().item() - p) < 0.004, p
    # A channels-last activation gets a channels-last mask; a transposed one, a transposed mask.
    x = torch.zeros(4, 8, 5, 5).contiguous(memory_format=torch.channels_last)
    assert keep_mask(x, 0.25).stride() == x.stride()
    t = torch.zeros(6, 3).t()
    assert keep_mask(t, 0.25).stride() == t.stride()
    # A strided view (gaps in memory) still gets a mask of its shape.
    assert keep_mask(torch.zeros(6, 8)[:, ::2], 0.25).shape == (6, 4)


def test_dropout_scales_bf16_in_fp32():
    # 1 / 0.75 is not a bf16 number; each kept value is scaled in fp32 and rounded once, as nn.Dropout does.
    torch.manual_seed(0)
    x = torch.full((1000,), 3.0, dtype=torch.bfloat16)
    y = Dropout(0.25).train()(x)
    assert y.dtype == torch.bfloat16
    assert set(y.unique().tolist()) == {0.0, torch.tensor(4.0, dtype=torch.bfloat16).item()}


def test_pool_before_relu_is_the_same_function_and_gradient():
    torch.manual_seed(0)
    x = torch.randn(8, 4, 12, 12, requires_grad=True)
    pool = nn.MaxPool2d(2)
    a = torch.relu(pool(x))
    (ga,) = torch.autograd.grad(a.sum(), x)
    b = pool(torch.relu(x))
    (gb,) = torch.autograd.grad(b.sum(), x)
    assert torch.equal(a, b) and torch.equal(ga, gb)
    # The seed models put their pools first.
    names = [n for n, _ in build_model("baseline").named_children()]
    assert names.index("pool1") < names.index("relu1")
