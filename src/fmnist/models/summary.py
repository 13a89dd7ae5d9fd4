"""Model summary like Keras' `model.summary()`: layers, output shapes, parameters, plus multiply-accumulates.

Shapes come from one forward pass of a zero image with forward hooks on the leaf modules, so the table
shows what the model actually computes rather than what its constructor arguments suggest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from rich.table import Table
from torch import nn

# Layers whose multiply-accumulates are counted; activations, pooling, normalisation and dropout cost
# a few operations per element and are left out, as in the usual MAC/FLOP tallies.
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class LayerRow:
    """One leaf module's call: output shape per image, its parameters and its MACs per image."""

    name: str
    type: str
    output_shape: tuple[int, ...]
    params: int
    macs: int


@dataclass(frozen=True)
class ModelSummary:
    """A model's layer table and totals (trainable parameters, multiply-accumulates per image)."""

    model: str
    input_shape: tuple[int, ...]
    rows: list[LayerRow] = field(default_factory=list)
    params: int = 0
    macs: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def count_params(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of parameters (only those with requires_grad unless `trainable_only` is False)."""
    # BatchNorm running statistics are buffers here; Keras lists them as non-trainable parameters, so a
    # Keras total exceeds this by 2 * channels per BatchNorm layer.
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def layer_macs(module: nn.Module, output: torch.Tensor) -> int:
    """Multiply-accumulates per image of one conv or linear call that produced `output` ([N, ...])."""
    per_image = output[0].numel() if output.dim() > 0 else output.numel()
    if isinstance(module, _CONV):
        # Each output element is a dot product over in_channels/groups * kernel elements: weight[0].numel().
        return per_image * module.weight[0].numel()
    if isinstance(module, nn.Linear):
        return per_image * module.in_features
    return 0


def summarize(model: nn.Module, input_shape: tuple[int, ...] = (1, 28, 28)) -> ModelSummary:
    """The layer table of `model` for one image of `input_shape` ([C, H, W]), found in eval mode without grad."""
    leaves = [(name, m) for name, m in model.named_modules() if name and not any(True for _ in m.children())]
    rows: list[LayerRow] = []

    def hook_for(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            shape = tuple(output.shape[1:]) if isinstance(output, torch.Tensor) else ()
            macs = layer_macs(module, output) if isinstance(output, torch.Tensor) else 0
            params = sum(p.numel() for p in module.parameters())
            rows.append(LayerRow(name, type(module).__name__, shape, params, macs))

        return hook

    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    handles = [m.register_forward_hook(hook_for(name)) for name, m in leaves]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=device, dtype=dtype))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return ModelSummary(
        model=type(model).__name__,
        input_shape=tuple(input_shape),
        rows=rows,
        params=count_params(model),
        macs=sum(r.macs for r in rows),
    )


def format_summary(summary: ModelSummary, title: str | None = None) -> Table:
    """A rich table of the summary with a totals row (shapes are per image, channels first)."""
    table = Table(title=title or summary.model, title_justify="left")
    table.add_column("Layer")
    table.add_column("Type")
    table.add_column("Output shape")
    table.add_column("Params", justify="right")
    table.add_column("MACs", justify="right")
    table.add_row("input", "", _shape(summary.input_shape), "", "")
    for r in summary.rows:
        table.add_row(r.name, r.type, _shape(r.output_shape), f"{r.params:,}", f"{r.macs:,}" if r.macs else "")
    table.add_section()
    table.add_row("Total (trainable)", "", "", f"{summary.params:,}", f"{summary.macs:,}", style="bold")
    return table


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"
