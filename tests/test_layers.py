"""The shared layers: the fp32 classifier head under autocast, and the rand-based dropout."""

from __future__ import annotations

import torch
from torch import nn

from fmnist.models import build_model
from fmnist.models.layers import Classifier, Dropout


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
