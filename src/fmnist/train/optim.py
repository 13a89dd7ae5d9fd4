"""The optimizers a recipe names, with fused update kernels (one kernel for every parameter's update)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from fmnist.config import OptimizerConfig
from fmnist.models.whiten import PatchWhitening
from fmnist.train.muon import muon_step


def param_groups(model: nn.Module, cfg: OptimizerConfig) -> list[dict]:
    """The model's trainable parameters as optimizer groups, each with an `lr_scale` (its learning rate is the
    schedule's times that): BatchNorm biases at cfg.norm_bias_lr, with weight decay divided by it, the rest at 1.
    With cfg.whiten_bias_epochs, the patch-whitening biases form a group of their own whose `train_epochs` says
    after which epoch the loop stops them (`freeze_groups`). With cfg.name "muon", the convolution filters (the
    trainable 4-D weights) form a group flagged "muon" at cfg.muon_lr and cfg.muon_momentum. Frozen parameters
    (requires_grad False) are left out."""
    norm_biases = {id(m.bias) for m in model.modules() if isinstance(m, _BatchNorm) and m.bias is not None}
    whiten_biases = ({id(m.bias) for m in model.modules() if isinstance(m, PatchWhitening) and m.bias is not None}
                     if cfg.whiten_bias_epochs is not None else set())
    trainable = [p for p in model.parameters() if p.requires_grad]
    filters = {id(p) for p in trainable if p.dim() == 4} if cfg.name == "muon" else set()
    scale_biases = cfg.norm_bias_lr != 1.0
    groups = [{"params": [p for p in trainable if id(p) not in whiten_biases and id(p) not in filters
                          and not (scale_biases and id(p) in norm_biases)], "lr_scale": 1.0}]
    if filters:
        groups.append({"params": [p for p in trainable if id(p) in filters], "muon": True,
                       "lr_scale": cfg.muon_lr / cfg.lr, "momentum": cfg.muon_momentum, "nesterov": True,
                       "weight_decay": 0.0})
    if scale_biases:
        groups.append({"params": [p for p in trainable if id(p) in norm_biases], "lr_scale": cfg.norm_bias_lr,
                       "weight_decay": cfg.weight_decay / cfg.norm_bias_lr})
    if whiten_biases:
        groups.append({"params": [p for p in trainable if id(p) in whiten_biases], "lr_scale": 1.0,
                       "train_epochs": cfg.whiten_bias_epochs})
    return [g for g in groups if g["params"]]


def freeze_groups(optimizer: torch.optim.Optimizer, epoch: int) -> bool:
    """Stop the groups whose `train_epochs` have passed before (1-based) `epoch`: their learning rate scale
    becomes 0 and their parameters stop asking for gradients, so the backward pass skips the work that only fed
    them (for the whitening bias: the first convolution's input gradient and the ReLU before it, about 8% of a
    `fast` step). True when a group was stopped just now."""
    stopped = False
    for group in optimizer.param_groups:
        if "train_epochs" in group and epoch > group["train_epochs"]:
            for p in group["params"]:
                p.requires_grad_(False)
                p.grad = None
            if group["lr_scale"] != 0.0:
                group["lr_scale"] = 0.0
                stopped = True
    return stopped


def make_optimizer(cfg: OptimizerConfig, params, lr: float, device: torch.device,
                   ns_dtype: torch.dtype = torch.float32) -> torch.optim.Optimizer:
    """The recipe's optimizer with fused kernels (one kernel for every parameter's update); `params` is a list of
    tensors or of groups (`param_groups`). `ns_dtype` is the dtype of Muon's orthogonalization (the training's
    autocast dtype: bf16 where the hardware runs it natively)."""
    # Fused SGD/Adam/AdamW run on CPU as well as CUDA since torch 2.4; on CPU they took a `baseline` step from
    # ~3.8 to ~2.8 ms against foreach. Older builds fall back to foreach.
    kw: dict = {"fused": True} if _fused_supported(device) else {"foreach": True}
    if cfg.name == "sgd":
        sgd = LeanSGD if kw.get("fused") else torch.optim.SGD
        return sgd(params, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay, **kw)
    if cfg.name == "muon":
        return MuonSGD(params, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay,
                       ns_dtype=ns_dtype, **kw)
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay, **kw)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay, **kw)
    raise ValueError(f"unknown optimizer {cfg.name!r}")


class LeanSGD(torch.optim.SGD):
    """Fused SGD whose step() calls the fused kernel directly.

    torch.optim.SGD.step() wraps that same kernel in generic machinery (profiler hooks, grad-mode guards,
    grouping tensors by device and dtype, per-parameter bookkeeping): about 90 us per call here, 7% of a
    1.3 ms `baseline` step (measured in one process, alternating blocks of steps: 1.317 -> 1.223 ms). The
    update is the same kernel with the same arguments, and the momentum buffers live in `self.state[p]` as
    SGD keeps them, so state_dict() is unchanged. Anything off the common path (a closure, sparse or missing
    gradients, parameters on several devices or of several dtypes) goes to SGD.step.
    """

    def step(self, closure=None):
        if closure is not None:
            return super().step(closure)
        if not all(map(self._fits, self.param_groups)):  # decided before any group steps: SGD.step steps all
            return super().step()
        with torch.no_grad():
            for group in self.param_groups:
                self._lean_step(group)
        return None

    @staticmethod
    def _fits(group: dict) -> bool:
        """Whether torch._fused_sgd_ takes the group: dense gradients, one device and one dtype."""
        params = [p for p in group["params"] if p.grad is not None]
        return not params or not any(
            p.grad.is_sparse or p.device != params[0].device or p.dtype != params[0].dtype for p in params)

    def _lean_step(self, group: dict) -> None:
        """One group's update through torch._fused_sgd_ (a group `_fits` takes). Parameters without a gradient
        (frozen ones: `freeze_groups`) are skipped, as SGD skips them."""
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            return
        grads = [p.grad for p in params]
        momentum = group["momentum"]
        bufs: list[torch.Tensor] = []
        first_step = False
        if momentum != 0:
            states = [self.state[p] for p in params]
            first_step = "momentum_buffer" not in states[0]
            if first_step:
                for st, g in zip(states, grads):
                    st["momentum_buffer"] = torch.empty_like(g)  # the kernel fills it on the first step
            bufs = [st["momentum_buffer"] for st in states]
        torch._fused_sgd_(
            params, grads, bufs, weight_decay=group["weight_decay"], momentum=momentum, lr=group["lr"],
            dampening=group["dampening"], nesterov=group["nesterov"], maximize=group["maximize"],
            is_first_step=first_step,
        )


class MuonSGD(LeanSGD):
    """Muon (fmnist.train.muon) for the groups flagged "muon", whose lr and momentum are their own; fused SGD, as
    LeanSGD, for the others. A group off the fused path (sparse gradients, several devices or dtypes: none of
    this project's models) is refused rather than stepped by SGD's generic code, which would step every group."""

    def __init__(self, params, ns_dtype: torch.dtype = torch.float32, **kw) -> None:
        super().__init__(params, **kw)
        self.ns_dtype = ns_dtype

    def step(self, closure=None):
        if closure is not None:
            raise ValueError("the muon optimizer takes no closure")
        if not all(self._fits(g) for g in self.param_groups if not g.get("muon")):
            raise RuntimeError("the muon optimizer needs dense gradients of one device and dtype")
        with torch.no_grad():
            for group in self.param_groups:
                if group.get("muon"):
                    muon_step(group["params"], self.state, group["lr"], group["momentum"], group["nesterov"],
                              self.ns_dtype)
                else:
                    self._lean_step(group)
        return None


def _fused_supported(device: torch.device) -> bool:
    try:
        torch.optim.SGD([torch.zeros(1, device=device, requires_grad=True)], lr=0.1, fused=True)
        return True
    except (RuntimeError, TypeError, ValueError):
        return False
