"""The fused Conv 3x3 -> MaxPool 2 -> ReLU kernel: same values and gradients as PyTorch's layers, ties and NaN
handled as PyTorch does, deterministic, used only where it applies, and a clean fallback when it cannot build."""

from __future__ import annotations

import shutil

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fmnist.ops import conv_pool_relu as fused
from fmnist.models import build_model
from tests.helpers import make_split

needs_kernel = pytest.mark.skipif(fused.library() is None, reason=f"fused kernels {fused.status()}")


@pytest.fixture
def fresh_kernel_state(monkeypatch):
    """The loader as if nothing had been built or loaded in this process (restored after the test)."""
    monkeypatch.setattr(fused, "_state", {"tried": False, "lib": None, "why": "not loaded yet", "calls": 0})


def reference(x, weight, bias, padding):
    return F.relu(F.max_pool2d(F.conv2d(x, weight, bias, padding=padding), 2))


def both(x, weight, bias, padding, grad=None):
    """(output, weight grad, bias grad) from PyTorch's layers and from the kernel, same upstream gradient."""
    out = []
    for fn in (reference, fused.conv_pool_relu):
        w = weight.detach().clone().requires_grad_(True)
        b = bias.detach().clone().requires_grad_(True)
        y = fn(x, w, b, padding)
        g = torch.randn(y.shape, generator=torch.Generator().manual_seed(1)) if grad is None else grad
        y.backward(g)
        out.append((y.detach(), w.grad, b.grad))
    return out


@needs_kernel
@pytest.mark.parametrize("padding", [0, 1])
@pytest.mark.parametrize(("channels", "size"), [(32, (28, 28)), (16, (27, 25)), (48, (9, 12))])
def test_matches_pytorch_layers(padding, channels, size):
    torch.manual_seed(0)
    x = torch.randn(5, 1, *size)
    x[:, :, : size[0] // 3] = 0  # a blank band: equal conv values (ties) in every window there
    weight, bias = torch.randn(channels, 1, 3, 3), torch.randn(channels)
    (y0, gw0, gb0), (y1, gw1, gb1) = both(x, weight, bias, padding)
    assert y1.shape == y0.shape
    assert y1.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y1, y0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gw1, gw0, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(gb1, gb0, rtol=1e-4, atol=1e-4)


@needs_kernel
def test_ties_go_to_the_first_position_like_pytorch():
    # Only the centre tap is set, so the conv output is the image shifted by one pixel. Every 2x2 window holds
    # its maximum twice, at different places whose 3x3 patches differ: the weight gradient tells which won.
    weight = torch.zeros(16, 1, 3, 3)
    weight[:, 0, 1, 1] = 1.0
    bias = torch.zeros(16)
    x = torch.rand(2, 1, 10, 10) + 1.0
    window = x[:, :, 1:9, 1:9]
    window[:, :, 1::2, 1::2] = window[:, :, ::2, ::2]  # bottom-right equals top-left in each window
    window[:, :, ::2, 1::2] = window[:, :, ::2, ::2]  # top-right too
    (y0, gw0, gb0), (y1, gw1, gb1) = both(x, weight, bias, 0)
    torch.testing.assert_close(y1, y0, rtol=0, atol=0)
    torch.testing.assert_close(gw1, gw0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gb1, gb0, rtol=1e-5, atol=1e-5)


@needs_kernel
def test_nan_propagates_like_pytorch():
    torch.manual_seed(0)
    x = torch.randn(2, 1, 12, 12)
    x[0, 0, 5, 5] = float("nan")
    weight, bias = torch.randn(16, 1, 3, 3), torch.randn(16)
    y0 = reference(x, weight, bias, 0)
    y1 = fused.conv_pool_relu(x, weight, bias, 0)
    assert torch.isnan(y0).any()
    assert torch.equal(torch.isnan(y1), torch.isnan(y0))
    torch.testing.assert_close(y1.nan_to_num(), y0.nan_to_num(), rtol=1e-5, atol=1e-5)


@needs_kernel
def test_bf16_autocast_output_is_the_fp32_result_rounded():
    torch.manual_seed(0)
    x = torch.randn(4, 1, 28, 28)
    weight = torch.randn(32, 1, 3, 3, requires_grad=True)
    bias = torch.randn(32, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = fused.conv_pool_relu(x, weight, bias, 0)
    assert y.dtype == torch.bfloat16
    exact = fused.conv_pool_relu(x, weight, bias, 0)
    assert torch.equal(y, exact.to(torch.bfloat16))
    g = torch.randn(y.shape).to(torch.bfloat16)
    y.backward(g)
    w, b = weight.detach().clone().requires_grad_(True), bias.detach().clone().requires_grad_(True)
    reference(x, w, b, 0).backward(g.float())
    assert weight.grad.dtype == torch.float32
    torch.testing.assert_close(weight.grad, w.grad, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(bias.grad, b.grad, rtol=1e-3, atol=1e-3)


@needs_kernel
def test_backward_is_deterministic():
    torch.manual_seed(0)
    x = torch.randn(8, 1, 28, 28)
    weight, bias = torch.randn(32, 1, 3, 3), torch.randn(32)
    runs = [both(x, weight, bias, 1)[1] for _ in range(3)]
    for y, gw, gb in runs[1:]:
        assert torch.equal(y, runs[0][0]) and torch.equal(gw, runs[0][1]) and torch.equal(gb, runs[0][2])


@needs_kernel
@pytest.mark.parametrize("name", ["baseline", "seed003"])
def test_models_train_through_the_kernel_with_the_same_gradients(name, monkeypatch):
    torch.manual_seed(0)
    model = build_model(name).to(memory_format=torch.channels_last)
    x = torch.rand(6, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.tensor([0, 1, 2, 3, 4, 5])

    def grads():
        model.zero_grad(set_to_none=True)
        torch.manual_seed(1)  # the same dropout masks (seed003) both times
        before = fused.calls()
        logits = model(x)
        F.cross_entropy(logits, y).backward()
        return fused.calls() - before, logits.detach(), {k: p.grad.clone() for k, p in model.named_parameters()}

    used, logits, g = grads()
    monkeypatch.setenv(fused.SWITCH, "0")
    unused, logits0, g0 = grads()
    assert (used, unused) == (1, 0)
    torch.testing.assert_close(logits, logits0, rtol=1e-4, atol=1e-4)
    for k in g0:
        torch.testing.assert_close(g[k], g0[k], rtol=1e-3, atol=1e-4, msg=k)


@needs_kernel
def test_eval_mode_hooks_and_unsupported_shapes_run_layer_by_layer():
    model = build_model("baseline").train()
    x = torch.rand(2, 1, 28, 28)
    before = fused.calls()
    model.eval()(x)
    seen = []
    handle = model.train().conv1.register_forward_hook(lambda *_: seen.append(1))
    model(x)
    handle.remove()
    assert seen == [1] and fused.calls() == before
    narrow = build_model("baseline", filters=8).train()  # not a multiple of the kernel's 16 lanes
    narrow(x)
    assert fused.calls() == before
    model(x)
    assert fused.calls() == before + 1


def test_switch_off_and_missing_compiler_fall_back(monkeypatch, tmp_path, fresh_kernel_state):
    monkeypatch.setenv("FMNIST_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    assert fused.library() is None
    assert fused.status().startswith("unavailable:")
    model = build_model("baseline").train()
    model(torch.rand(2, 1, 28, 28)).sum().backward()  # layer by layer, no error
    assert fused.calls() == 0
    monkeypatch.setenv(fused.SWITCH, "0")
    assert fused.status() == f"off ({fused.SWITCH}=0)"


@needs_kernel
def test_build_lands_in_the_cache_by_rename(monkeypatch, tmp_path, fresh_kernel_state):
    monkeypatch.setenv("FMNIST_CACHE", str(tmp_path))
    assert fused.library() is not None and fused.status() == "available"
    built = list((tmp_path / "kernels").iterdir())
    assert len(built) == 1 and built[0].name.startswith("conv_pool_relu-") and built[0].suffix == ".so"


@needs_kernel
def test_fit_reports_the_kernel():
    from fmnist.config import TrainOptions
    from fmnist.train.loop import TrainData, fit
    from fmnist.recipes import get_recipe

    split = make_split(64)
    recipe = get_recipe("baseline").replace(epochs=1)
    result = fit(recipe, TrainData((split.images, split.labels), None, num_classes=10), TrainOptions())
    assert result.extras["fused_kernels"] == ["conv_pool_relu"]
    assert isinstance(result.model.conv1, nn.Conv2d)


@needs_kernel
def test_a_compiler_without_openmp_still_builds_a_working_kernel(monkeypatch, tmp_path, fresh_kernel_state):
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("needs gcc to stand behind the fake compiler")
    cc = tmp_path / "cc-without-openmp"
    cc.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do [ "$a" = -fopenmp ] && { echo "unsupported option -fopenmp" >&2; exit 1; }; done\n'
        f'exec {gcc} "$@"\n'
    )
    cc.chmod(0o755)
    monkeypatch.setenv("FMNIST_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", str(cc))
    assert fused.library() is not None, fused.status()
    torch.manual_seed(0)
    x, weight, bias = torch.randn(3, 1, 28, 28), torch.randn(16, 1, 3, 3), torch.randn(16)
    (y0, gw0, gb0), (y1, gw1, gb1) = both(x, weight, bias, 0)
    torch.testing.assert_close(y1, y0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gw1, gw0, rtol=1e-4, atol=1e-4)
