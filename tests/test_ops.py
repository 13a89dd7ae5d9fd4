"""The fused Conv 3x3 -> MaxPool 2 -> ReLU kernel: same values and gradients as PyTorch's layers, ties and NaN
handled as PyTorch does, deterministic, used only where it applies, and a clean fallback when it cannot build.
It is a registered torch op (opcheck), its ctypes declarations match the C prototypes, a refused backward
raises, and a compiled model runs through it with the eager gradients."""

from __future__ import annotations

import dataclasses
import functools
import re
import shutil

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fmnist.config import TrainOptions
from fmnist.models import build_model
from fmnist.ops import build
from fmnist.ops import conv_pool_relu as fused
from fmnist.recipes import get_recipe
from fmnist.train.loop import TrainData, fit
from tests.helpers import make_split

needs_kernel = pytest.mark.skipif(build.library() is None, reason=f"fused kernels {build.status()}")


@pytest.fixture
def fresh_kernel_state(monkeypatch):
    """The loader and call count as if nothing had been built, loaded or run in this process (restored after)."""
    monkeypatch.setattr(build, "load", functools.cache(build.load.__wrapped__))
    monkeypatch.setattr(fused, "calls", fused.CallCounter())


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
    monkeypatch.setenv(build.SWITCH, "0")
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
    assert build.library() is None
    assert build.status().startswith("unavailable:")
    model = build_model("baseline").train()
    model(torch.rand(2, 1, 28, 28)).sum().backward()  # layer by layer, no error
    assert fused.calls() == 0
    monkeypatch.setenv(build.SWITCH, "0")
    assert build.status() == f"off ({build.SWITCH}=0)"


@needs_kernel
def test_build_lands_in_the_cache_by_rename(monkeypatch, tmp_path, fresh_kernel_state):
    monkeypatch.setenv("FMNIST_CACHE", str(tmp_path))
    assert build.library() is not None and build.status() == "available"
    built = list((tmp_path / "kernels").iterdir())
    assert len(built) == 1 and built[0].name.startswith("conv_pool_relu-") and built[0].suffix == ".so"


@needs_kernel
def test_fit_reports_the_kernel():
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
    assert build.library() is not None, build.status()
    torch.manual_seed(0)
    x, weight, bias = torch.randn(3, 1, 28, 28), torch.randn(16, 1, 3, 3), torch.randn(16)
    (y0, gw0, _), (y1, gw1, _) = both(x, weight, bias, 0)
    torch.testing.assert_close(y1, y0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gw1, gw0, rtol=1e-4, atol=1e-4)


def _sample(padding, bf16, with_bias=True, channels=16, size=(10, 12)):
    """Forward-op arguments on small random data; the weight (and bias) require grad, x does not."""
    g = torch.Generator().manual_seed(padding + 2 * bf16)
    x = torch.randn(3, 1, *size, generator=g)
    weight = torch.randn(channels, 1, 3, 3, generator=g).requires_grad_(True)
    bias = torch.randn(channels, generator=g).requires_grad_(True) if with_bias else None
    return x, weight, bias, padding, bf16


@needs_kernel
@pytest.mark.parametrize("padding", [0, 1])
@pytest.mark.parametrize("bf16", [False, True])
def test_opcheck_forward(padding, bf16):
    op = torch.ops.fmnist.conv_pool_relu_forward.default
    torch.library.opcheck(op, _sample(padding, bf16))
    torch.library.opcheck(op, _sample(padding, bf16, with_bias=False, channels=32, size=(9, 9)))


@needs_kernel
@pytest.mark.parametrize("padding", [0, 1])
@pytest.mark.parametrize("bf16", [False, True])
def test_opcheck_backward(padding, bf16):
    x, weight, bias, _, _ = _sample(padding, bf16)
    out, arg = fused.conv_pool_relu_forward(x, weight.detach(), bias.detach(), padding, bf16)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(3)).to(out.dtype)
    torch.library.opcheck(torch.ops.fmnist.conv_pool_relu_backward.default, (grad, x, arg, weight.detach(), padding))


@needs_kernel
def test_a_refused_backward_raises(monkeypatch):
    x, weight, bias, padding, _ = _sample(0, False)
    y = fused.conv_pool_relu(x, weight, bias, padding)
    refusing = dataclasses.replace(build.library(), backward=lambda *args: 1)
    monkeypatch.setattr(build, "library", lambda: refusing)
    with pytest.raises(RuntimeError, match="return code 1"):
        y.sum().backward()


@needs_kernel
@pytest.mark.parametrize("bf16", [False, True])
def test_the_eager_path_and_the_registered_op_agree(bf16):
    # Eager calls skip the op's dispatch (for speed); both run the same kernels and give the same bits.
    x, weight, bias, padding, _ = _sample(1, bf16)
    grads = []
    for path in ("eager", "op"):
        w, b = weight.detach().clone().requires_grad_(), bias.detach().clone().requires_grad_()
        if path == "op":
            out = fused.conv_pool_relu_forward(x, w, b, padding, bf16)[0]
        else:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = fused.conv_pool_relu(x, w, b, padding)
        (out.float() * torch.linspace(-1, 1, out.numel()).view(out.shape)).sum().backward()
        grads.append((out.detach(), w.grad, b.grad))
    for a, b in zip(*grads):
        assert torch.equal(a, b)


def _c_kind(param: str) -> type:
    """The ctypes type a C parameter declaration goes as: any pointer as c_void_p, else by its integer type."""
    if "*" in param:
        return build.ctypes.c_void_p
    return {"int64_t": build.ctypes.c_int64, "int": build.ctypes.c_int}[param.replace("const", "").split()[0]]


def test_argtypes_match_the_c_prototypes():
    source = build.SOURCE.read_text()
    prototypes = dict(re.findall(r"^int\s+(fmnist_\w+)\s*\(([^)]*)\)\s*\{", source, flags=re.MULTILINE))
    assert sorted(prototypes) == sorted(symbol for symbol, _ in build.PROTOTYPES.values())
    assert build.RESTYPE is build.ctypes.c_int
    for symbol, argtypes in build.PROTOTYPES.values():
        params = [p.strip() for p in prototypes[symbol].split(",")]
        assert tuple(_c_kind(p) for p in params) == argtypes, symbol


def _compiler_for_inductor() -> bool:
    return any(shutil.which(cxx) for cxx in ("g++", "c++", "clang++"))


@needs_kernel
@pytest.mark.skipif(not _compiler_for_inductor(), reason="torch.compile's CPU backend needs a C++ compiler")
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")  # inductor's imports
def test_compiled_baseline_trains_through_the_kernel_with_the_eager_gradients(monkeypatch):
    torch.manual_seed(0)
    model = build_model("baseline", in_channels=1, num_classes=10, filters=32, padding="valid").train()
    x, y = torch.rand(8, 1, 28, 28), torch.arange(8) % 10

    def grads(forward):
        model.zero_grad(set_to_none=True)
        before = fused.calls()
        F.cross_entropy(forward(x), y).backward()
        return fused.calls() - before, {k: p.grad.clone() for k, p in model.named_parameters()}

    torch._dynamo.reset()
    try:
        compiled = torch.compile(model)
        used, g = grads(compiled)
        monkeypatch.setenv(build.SWITCH, "0")
        unused, g0 = grads(model)  # eager, layer by layer
        assert (used, unused) == (1, 0)
        for k in g0:
            torch.testing.assert_close(g[k], g0[k], rtol=1e-4, atol=1e-5, msg=k)
        monkeypatch.delenv(build.SWITCH)
        before = {k: p.detach().clone() for k, p in model.named_parameters()}
        torch.optim.SGD(model.parameters(), lr=0.1).step()  # the compiled model trains a step
        assert all(not torch.equal(p, before[k]) for k, p in model.named_parameters())
        used, g = grads(compiled)
        assert used == 1 and all(torch.isfinite(v).all() for v in g.values())
    finally:
        torch._dynamo.reset()
