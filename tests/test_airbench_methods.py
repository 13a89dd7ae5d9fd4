"""airbench's methods in the engine: patch whitening, dirac init, BatchNorm bias learning rate and frozen weights,
lookahead, alternating flips, multi-crop test-time augmentation and logit scale. Each keeps shapes and dtypes and
is deterministic under a seed; the whitening is checked on generated data whose patches are strongly correlated."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fmnist.config import AugmentConfig, OptimizerConfig, TrainOptions
from fmnist.errors import UsageError
from fmnist.inference import batched_logits, logits
from fmnist.models import build_model
from fmnist.models.resnet import ResNet, dirac_
from fmnist.models.whiten import PatchWhitening, whitening_filters
from fmnist.recipes import get_recipe
from fmnist.recipes.overrides import apply_assignment
from fmnist.train.augment import alternating_flips, augment_batch, flip_plan
from fmnist.train.ema import Lookahead, lookahead_decay
from fmnist.train.loop import TrainData, fit
from fmnist.train.muon import orthogonalize
from fmnist.train.optim import freeze_groups, make_optimizer, param_groups
from tests.helpers import AIRBENCH_RESNET as ALL_ON
from tests.helpers import SMALL_RESNET as SMALL
from tests.helpers import airbench_recipe, make_split


def correlated_images(n: int = 64, seed: int = 0) -> torch.Tensor:
    """Smooth random images [n, 1, 16, 16]: neighbouring pixels are strongly correlated, as in real images."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 16, 16, generator=g)
    return F.avg_pool2d(F.pad(x, (2, 2, 2, 2), mode="circular"), 5, stride=1) * 3 + 0.5


def test_whitening_filters_decorrelate_the_patches_they_were_computed_from():
    x = correlated_images()
    before = torch.cov(F.unfold(x, 3).transpose(1, 2).reshape(-1, 9).T)
    assert before[0, 1] / before[0, 0] > 0.5  # the generated patches are far from white
    w = whitening_filters(x, 3, eps=1e-6)
    assert w.shape == (18, 1, 3, 3) and w.dtype == torch.float32
    assert torch.equal(w[1::2], -w[0::2])  # each filter followed by its negation
    out = F.conv2d(x, w[0::2])  # [N, 9, 14, 14]
    cov = torch.cov(out.transpose(0, 1).reshape(9, -1))
    assert torch.allclose(cov, torch.eye(9), atol=2e-2)
    assert torch.equal(whitening_filters(x, 3, eps=1e-6), w)  # deterministic


def test_patch_whitening_layer_is_frozen_and_keeps_the_size():
    layer = PatchWhitening(1, 3)
    assert not layer.weight.requires_grad and layer.bias.requires_grad
    assert torch.count_nonzero(layer.weight) == 0  # nothing until fitted
    x = correlated_images(8)
    layer.fit(x)
    assert torch.count_nonzero(layer.weight) > 0
    y = layer(x)
    assert y.shape == (8, 18, 16, 16) and y.dtype == x.dtype


@pytest.mark.parametrize("k", [2, 3, 4])
def test_a_stride_2_stem_halves_the_size_whitened_or_not(k):
    x = F.interpolate(correlated_images(4), size=28)
    white = PatchWhitening(1, k, stride=2)
    white.fit(x)
    assert white(x).shape == (4, 2 * k * k, 14, 14)
    torch.manual_seed(0)
    a = ResNet(**SMALL, whiten=k, stem_stride=2)
    torch.manual_seed(0)
    b = ResNet(**SMALL, whiten=k, stem_stride=2)
    a.fit_whitening(x), b.fit_whitening(x)
    a.eval(), b.eval()
    out = a(x)
    assert out.shape == (4, 10) and out.dtype == torch.float32 and torch.equal(out, b(x))
    assert ResNet(**SMALL, stem_stride=2).stem(x).shape[-2:] == (14, 14)
    with pytest.raises(UsageError, match="stem_stride"):
        ResNet(**SMALL, stem_stride=3)


def test_dirac_init_passes_the_first_channels_through():
    conv = nn.Conv2d(4, 6, 3, padding=1, bias=False)
    kept = conv.weight[4:].detach().clone()
    dirac_(conv.weight)
    x = torch.randn(2, 4, 5, 5)
    assert torch.allclose(conv(x)[:, :4], x)
    assert torch.equal(conv.weight[4:], kept)  # the extra filters keep their random start


def test_resnet_options_keep_shapes_dtypes_and_determinism():
    torch.manual_seed(0)
    a = ResNet(**ALL_ON)
    torch.manual_seed(0)
    b = ResNet(**ALL_ON)
    x = correlated_images(4)
    x = F.interpolate(x, size=28)
    a.fit_whitening(x)
    b.fit_whitening(x)
    a.eval(), b.eval()
    out = a(x)
    assert out.shape == (4, 10) and out.dtype == torch.float32
    assert torch.equal(out, b(x))
    bns = [m for m in a.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(not m.weight.requires_grad and m.momentum == 0.4 for m in bns)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert a(x).dtype == torch.float32  # the head stays fp32; the scale keeps it so


def test_default_resnet_state_dict_is_unchanged_by_the_options():
    keys = set(ResNet(**SMALL).state_dict())
    assert keys == set(ResNet(**SMALL, dirac=True, bn_weight=False, logit_scale=0.5).state_dict())
    with pytest.raises(UsageError, match="whiten"):
        ResNet(**SMALL, whiten=9)


def test_logit_scale_scales_the_logits():
    torch.manual_seed(3)
    plain = ResNet(**SMALL).eval()
    scaled = ResNet(**SMALL, logit_scale=0.25).eval()
    scaled.load_state_dict(plain.state_dict())
    x = torch.randn(3, 1, 28, 28)
    assert torch.allclose(scaled(x), plain(x) * 0.25)


def test_param_groups_scale_batchnorm_biases_and_leave_out_frozen_weights():
    model = ResNet(**ALL_ON)
    groups = param_groups(model, OptimizerConfig(lr=0.1, weight_decay=5e-4, norm_bias_lr=16))
    biases = {id(m.bias) for m in model.modules() if isinstance(m, nn.BatchNorm2d)}
    rest, fast = groups
    assert rest["lr_scale"] == 1.0 and fast["lr_scale"] == 16 and fast["weight_decay"] == pytest.approx(5e-4 / 16)
    assert {id(p) for p in fast["params"]} == biases
    every = [p for g in groups for p in g["params"]]
    assert all(p.requires_grad for p in every)
    assert len(every) == sum(p.requires_grad for p in model.parameters())
    assert len(param_groups(model, OptimizerConfig())) == 1


def test_whitening_bias_gets_a_group_that_stops_after_its_epochs():
    model = ResNet(**ALL_ON)
    cfg = OptimizerConfig(lr=0.1, norm_bias_lr=16, whiten_bias_epochs=2)
    groups = param_groups(model, cfg)
    white = [g for g in groups if "train_epochs" in g]
    assert len(white) == 1 and white[0]["train_epochs"] == 2
    assert [id(p) for p in white[0]["params"]] == [id(model.stem[0].bias)]
    assert sum(len(g["params"]) for g in groups) == sum(p.requires_grad for p in model.parameters())
    assert not any("train_epochs" in g for g in param_groups(model, OptimizerConfig(norm_bias_lr=16)))
    opt = make_optimizer(cfg, groups, 0.1, torch.device("cpu"))
    assert not freeze_groups(opt, 1) and not freeze_groups(opt, 2)
    assert freeze_groups(opt, 3) and not freeze_groups(opt, 4)  # stopped once, after epoch 2
    assert [g["lr_scale"] for g in opt.param_groups] == [1.0, 16, 0.0]


@pytest.mark.parametrize("value", [-1, 1.5, True, "2"])
def test_whiten_bias_epochs_is_checked(value):
    with pytest.raises(UsageError, match="whiten_bias_epochs"):
        OptimizerConfig(whiten_bias_epochs=value)


def test_training_leaves_the_whitening_bias_once_its_epochs_are_over():
    recipe = airbench_recipe(epochs=2)
    def bias(epochs):
        r = apply_assignment(recipe, f"optimizer.whiten_bias_epochs={epochs}")
        return fit(r, data(), TrainOptions(seed=3, device="cpu")).model.state_dict()["stem.0.bias"]
    never, first, always = bias(0), bias(1), bias("null")
    assert torch.count_nonzero(never) == 0  # still its zero start
    assert torch.count_nonzero(first) > 0 and not torch.equal(first, always)
    assert torch.equal(first, bias(1))  # deterministic


def test_alternating_flips_are_the_complement_every_other_epoch():
    plan = flip_plan(100, torch.Generator().manual_seed(4), torch.device("cpu"))
    assert plan.dtype == torch.bool and 30 < int(plan.sum()) < 70
    assert torch.equal(plan, flip_plan(100, torch.Generator().manual_seed(4), torch.device("cpu")))
    idx = torch.randperm(100)[:40]
    even, odd = alternating_flips(plan, idx, 0), alternating_flips(plan, idx, 1)
    assert torch.equal(odd, ~even) and torch.equal(alternating_flips(plan, idx, 2), even)
    x = torch.randn(40, 1, 6, 6)
    out = augment_batch(x, AugmentConfig(flip=True, alternate_flip=True), torch.Generator(), 0.0, even)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(out[even], x[even].flip(3)) and torch.equal(out[~even], x[~even])


def test_progressive_resizing_downsizes_the_early_epochs_only():
    cfg = AugmentConfig(resize=(20, 2))
    x = torch.rand(8, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    assert [cfg.small_epochs(n) for n in (1, 2, 3, 5)] == [0, 1, 2, 2]  # never the last epoch
    early = augment_batch(x, cfg, torch.Generator().manual_seed(0), 0.0, small=True)
    assert early.shape == (8, 1, 20, 20) and early.dtype == x.dtype
    assert early.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(early, augment_batch(x, cfg, torch.Generator().manual_seed(5), 0.0, small=True))  # no randomness
    assert abs(float(early.mean()) - float(x.mean())) < 0.02  # a scaled image, not a crop
    assert torch.equal(augment_batch(x, cfg, torch.Generator(), 0.0, small=False), x)


@pytest.mark.parametrize("value", [20, [20], [4, 1], [20, 0], [20, 1.5], [20, 2, 3], "20,2"])
def test_progressive_resizing_settings_are_checked(value):
    with pytest.raises(UsageError, match=r"resize is \[side, epochs\]"):
        AugmentConfig(resize=value)


def test_training_with_progressive_resizing_is_deterministic_and_changes_the_early_epochs():
    recipe = apply_assignment(airbench_recipe(epochs=2), "augment.resize=[16, 1]")
    a = fit(recipe, data(), TrainOptions(seed=3, device="cpu"))
    b = fit(recipe, data(), TrainOptions(seed=3, device="cpu"))
    assert all(torch.equal(v, b.model.state_dict()[k]) for k, v in a.model.state_dict().items())
    assert [h.train_loss for h in a.history] == [h.train_loss for h in b.history]
    plain = fit(airbench_recipe(epochs=2), data(), TrainOptions(seed=3, device="cpu"))
    assert a.history[0].train_loss != plain.history[0].train_loss


@pytest.mark.parametrize("model, args, side", [("baseline", {}, 20), ("resnet", {"stem_stride": 2}, 8)])
def test_a_model_that_cannot_take_the_smaller_images_is_a_usage_error(model, args, side):
    recipe = airbench_recipe(epochs=2).replace(model=model, model_args=args)
    recipe = apply_assignment(recipe, f"augment.resize=[{side}, 1]")
    with pytest.raises(UsageError, match=f"cannot train on {side}x{side} images"):
        fit(recipe, data(), TrainOptions(seed=0, device="cpu"))


def test_alternate_flip_needs_flip():
    with pytest.raises(UsageError, match="alternate_flip needs flip"):
        AugmentConfig(alternate_flip=True)


def test_lookahead_moves_the_weights_to_the_average():
    model = nn.Linear(3, 2)
    la = Lookahead(model)
    start = [t.clone() for t in la.shadow]
    with torch.no_grad():
        model.weight.add_(1.0)
    la.update(0.0)  # decay 0: the average is the weights; the weights unchanged
    assert torch.allclose(la.shadow[0], start[0] + 1)
    with torch.no_grad():
        model.weight.add_(1.0)
    la.update(0.5)
    assert torch.allclose(model.weight, start[0] + 1.5) and torch.equal(model.weight.detach(), la.shadow[0])
    assert lookahead_decay(0.8, 0, 100) == 0 and lookahead_decay(0.8, 100, 100) == pytest.approx(0.8)
    assert lookahead_decay(0.8, 50, 100) == pytest.approx(0.1)


def test_shift_tta_is_a_weighted_mean_of_the_moved_views():
    torch.manual_seed(0)
    model = ResNet(**SMALL).eval()
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        plain = logits(model, x, tta_flip=True)
        assert torch.equal(logits(model, x, tta_flip=True, shift=0), plain)
        shifted = logits(model, x, tta_flip=True, shift=1)
        padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
        expected = 0.5 * plain + 0.25 * (logits(model, padded[..., :28, :28].contiguous(), True)
                                         + logits(model, padded[..., 2:, 2:].contiguous(), True))
    assert shifted.shape == (5, 10) and shifted.dtype == torch.float32
    assert torch.allclose(shifted, expected, atol=1e-5)
    assert torch.allclose(batched_logits(model, x, 2, True, shift=1), shifted, atol=1e-5)


def test_model_args_can_be_set_one_at_a_time():
    fast = get_recipe("fast")
    r = apply_assignment(fast, "model_args.whiten=3")
    assert r.model_args == {**fast.model_args, "whiten": 3}
    with pytest.raises(UsageError, match="no argument 'colour'.*whiten"):
        apply_assignment(fast, "model_args.colour=1")


def data():
    train, val = make_split(96, seed=31), make_split(32, seed=32)
    return TrainData((train.images, train.labels), (val.images, val.labels), 10)


def test_training_with_every_method_is_deterministic_and_fits_the_whitening():
    recipe = airbench_recipe()
    a = fit(recipe, data(), TrainOptions(seed=7, device="cpu"))
    b = fit(recipe, data(), TrainOptions(seed=7, device="cpu"))
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert torch.count_nonzero(sa["stem.0.weight"]) > 0  # fitted before the first step
    assert [h.val_acc for h in a.history] == [h.val_acc for h in b.history]
    c = fit(recipe, data(), TrainOptions(seed=8, device="cpu"))
    assert not torch.equal(c.model.state_dict()["head.weight"], sa["head.weight"])


def test_a_model_with_every_method_rebuilds_from_its_arguments():
    model = build_model("resnet", in_channels=1, num_classes=10, **ALL_ON)
    again = build_model("resnet", in_channels=1, num_classes=10, **ALL_ON)
    again.load_state_dict(model.state_dict(), strict=True)


def test_a_stopped_group_stops_asking_for_gradients():
    model = ResNet(**ALL_ON)
    cfg = OptimizerConfig(lr=0.1, whiten_bias_epochs=1)
    opt = make_optimizer(cfg, param_groups(model, cfg), 0.1, torch.device("cpu"))
    bias = model.stem[0].bias
    assert bias.requires_grad
    freeze_groups(opt, 2)
    assert not bias.requires_grad  # the backward pass no longer computes what only fed it
    model(torch.randn(4, 1, 16, 16)).sum().backward()
    assert bias.grad is None
    opt.step()  # the stopped group has no gradients: skipped, as SGD skips them


def test_muon_orthogonalizes_to_singular_values_near_one():
    g = torch.randn(24, 90, generator=torch.Generator().manual_seed(0))
    for shape in [(24, 90), (90, 24)]:
        m = g if shape == (24, 90) else g.T
        for dtype in (torch.float32, torch.bfloat16):
            o = orthogonalize(m, dtype=dtype)
            assert o.shape == m.shape and o.dtype == m.dtype
            s = torch.linalg.svdvals(o.float())
            assert 0.6 < float(s.min()) and float(s.max()) < 1.25
    assert torch.equal(orthogonalize(g), orthogonalize(g))


def test_muon_takes_the_filters_and_pins_their_norms():
    model = ResNet(**ALL_ON)
    cfg = OptimizerConfig(name="muon", lr=0.1, momentum=0.9, nesterov=True, muon_lr=0.2, muon_momentum=0.6)
    groups = param_groups(model, cfg)
    muon = [g for g in groups if g.get("muon")]
    filters = [p for p in model.parameters() if p.requires_grad and p.dim() == 4]
    assert len(muon) == 1 and [id(p) for p in muon[0]["params"]] == [id(p) for p in filters]
    assert muon[0]["lr_scale"] == pytest.approx(2.0) and muon[0]["momentum"] == 0.6
    assert sum(len(g["params"]) for g in groups) == sum(p.requires_grad for p in model.parameters())
    opt = make_optimizer(cfg, groups, 0.1, torch.device("cpu"))
    model.fit_whitening(correlated_images(16))
    head_before = model.head.weight.detach().clone()
    F.cross_entropy(model(torch.randn(8, 1, 16, 16)), torch.arange(8)).backward()
    opt.step()
    for p in filters:
        assert float(p.detach().norm()) == pytest.approx(p.shape[0] ** 0.5, rel=0.2)  # pinned, then one step of 0.2
    assert not torch.equal(model.head.weight, head_before)  # the rest trains by SGD


def test_training_with_muon_is_deterministic():
    recipe = airbench_recipe().replace(optimizer=OptimizerConfig(name="muon", lr=0.1, momentum=0.9, nesterov=True))
    a = fit(recipe, data(), TrainOptions(seed=7, device="cpu")).model.state_dict()
    b = fit(recipe, data(), TrainOptions(seed=7, device="cpu")).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("change", [{"muon_lr": -1}, {"muon_momentum": 1.0}, {"name": "muon", "lr": 0.0}])
def test_muon_settings_are_checked(change):
    with pytest.raises(UsageError, match="muon"):
        OptimizerConfig(**change)


def test_bn_calibration_recomputes_the_statistics_from_training_images():
    recipe = airbench_recipe(epochs=1).replace(model_args=SMALL, lookahead=0.0, bn_calibration=40)
    d = data()
    options = TrainOptions(seed=3, device="cpu", precision="fp32", channels_last=False)
    model = fit(recipe, d, options).model
    plain = fit(recipe.replace(bn_calibration=0), d, options).model
    first = model.stages[0]
    order = torch.randperm(len(d.train[1]), generator=torch.Generator().manual_seed(3))[:40]
    x = (torch.from_numpy(d.train[0][order.numpy()]).float()[:, None] / 255 - recipe.mean) / recipe.std
    with torch.no_grad():
        pre = first[1](first[0](model.stem(x)))  # what the stage's BatchNorm sees
    assert torch.allclose(first[2].running_mean, pre.mean((0, 2, 3)), atol=1e-4)
    assert torch.allclose(first[2].running_var, pre.var((0, 2, 3)), rtol=1e-3, atol=1e-5)
    assert not torch.allclose(plain.stages[0][2].running_mean, first[2].running_mean)


def test_without_the_last_pool_the_last_stage_keeps_its_size():
    torch.manual_seed(0)
    model = ResNet(**SMALL, last_pool=False).eval()
    x = torch.randn(2, 1, 28, 28)
    assert model.stages(model.stem(x)).shape == (2, 16, 14, 14)  # one pool (28 -> 14), not two
    assert ResNet(**SMALL).stages(ResNet(**SMALL).stem(x)).shape == (2, 16, 7, 7)
    assert model(x).shape == (2, 10)
