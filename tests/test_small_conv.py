"""The 3x3 convolution whose weight gradient on small maps is a batch-as-channels convolution: the same output
and gradients as PyTorch's convolution, under autocast too, taken only where it applies, and used by resnet."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fmnist.models.resnet import Conv3x3
from fmnist.ops import small_conv


def grads(fn, x, w, amp):
    xi, wi = x.detach().clone().requires_grad_(True), w.detach().clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        y = fn(xi, wi)
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(3))
    (y.float() * g).sum().backward()
    return y, xi.grad, wi.grad


@pytest.mark.parametrize("amp", [False, True])
@pytest.mark.parametrize(("shape", "out"), [((6, 16, 3, 3), 24), ((4, 8, 4, 4), 8), ((5, 8, 2, 3), 4)])
def test_matches_pytorch_convolution(shape, out, amp):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g).contiguous(memory_format=torch.channels_last)
    w = torch.randn(out, shape[1], 3, 3, generator=g).contiguous(memory_format=torch.channels_last)
    y0, gx0, gw0 = grads(lambda a, b: F.conv2d(a, b, padding=1), x, w, amp)
    y1, gx1, gw1 = grads(small_conv.conv3x3, x, w, amp)
    assert y1.dtype == y0.dtype and y1.shape == y0.shape and torch.equal(y1, y0)
    assert gx1.dtype == gx0.dtype == torch.float32 and torch.allclose(gx1, gx0, rtol=1e-5, atol=1e-5)
    assert gw1.dtype == gw0.dtype == torch.float32 and gw1.shape == w.shape
    assert torch.allclose(gw1, gw0, rtol=1e-5, atol=1e-4 * float(gw0.abs().max()))


def test_applies_to_small_maps_in_training_only():
    w = torch.randn(4, 4, 3, 3, requires_grad=True)
    assert small_conv.applies(torch.randn(2, 4, 3, 3), w)
    assert small_conv.applies(torch.randn(2, 4, 4, 4), w)
    assert not small_conv.applies(torch.randn(2, 4, 7, 7), w)  # oneDNN's own kernel is as fast there
    assert not small_conv.applies(torch.randn(2, 4, 3, 3), w.detach())  # frozen: nothing to gain
    with torch.no_grad():
        assert not small_conv.applies(torch.randn(2, 4, 3, 3), w)


def test_resnet_conv_gives_the_plain_convolution_either_way():
    torch.manual_seed(0)
    conv = Conv3x3(8, 8)
    x = torch.randn(3, 8, 3, 3)
    y = conv(x)
    with torch.no_grad():
        assert torch.allclose(y, F.conv2d(x, conv.weight, padding=1), atol=1e-6)
    y.sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.shape == conv.weight.shape
