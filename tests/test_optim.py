"""The optimizers: LeanSGD is torch's fused SGD step without its machinery, with the same state."""

from __future__ import annotations

import pytest
import torch

from fmnist.train.optim import LeanSGD


@pytest.mark.parametrize("kw", [{"momentum": 0.9}, {"momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}, {"momentum": 0.0}])
def test_lean_sgd_matches_torch_fused_sgd(kw):
    torch.manual_seed(0)
    ours = [torch.randn(5, 3, requires_grad=True), torch.randn(3, requires_grad=True)]
    theirs = [t.detach().clone().requires_grad_() for t in ours]
    opt_ours, opt_theirs = LeanSGD(ours, lr=0.1, fused=True, **kw), torch.optim.SGD(theirs, lr=0.1, fused=True, **kw)
    for _ in range(4):
        for a, b in zip(ours, theirs):
            a.grad = torch.randn_like(a)
            b.grad = a.grad.clone()
        opt_ours.step()
        opt_theirs.step()
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))
    # The same state layout, so checkpoints and load_state_dict work as with SGD.
    assert opt_ours.state_dict()["state"].keys() == opt_theirs.state_dict()["state"].keys()
    # A parameter without a gradient sends the step down SGD's own path, which skips it.
    ours[1].grad = None
    before = ours[1].detach().clone()
    ours[0].grad = torch.ones_like(ours[0])
    opt_ours.step()
    assert torch.equal(ours[1], before)


def test_a_group_off_the_fused_path_steps_every_group_once():
    # The second group mixes dtypes, so SGD's own step takes over; the first group must not be stepped twice.
    a = torch.zeros(3, requires_grad=True)
    b, c = torch.zeros(3, requires_grad=True), torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = LeanSGD([{"params": [a]}, {"params": [b, c]}], lr=0.1, fused=True)
    for p in (a, b, c):
        p.grad = torch.ones_like(p)
    opt.step()
    assert all(torch.allclose(p.detach().double(), torch.full((3,), -0.1, dtype=torch.float64)) for p in (a, b, c))
