"""Training checkpoints: everything a `Loop` needs to continue exactly where it stopped, in one safetensors file.

Written atomically at the end of every epoch and when training is interrupted (after the step in progress), so
after a crash or `kill -9` the last complete checkpoint is on disk. It holds the weights, the optimizer's state
(momentum buffers, Adam moments and step counts), the weight average, every random stream the loop draws from
(torch's global generator, which Dropout uses; the shuffling and augmentation generators; NumPy's and Python's
for completeness), the epoch in progress with its permutation and position, and the history so far. Tensors go
in as tensors and everything else as JSON in the header: loading runs no code from the file (no pickle). On CPU
a resumed run ends with the same weights, bit for bit, as one that was never interrupted.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from fmnist.checkpoint import CHECKPOINT_FILENAME, CHECKPOINT_FORMAT
from fmnist.errors import DataError
from fmnist.fileio import atomic_write
from fmnist.train.stats import EpochStats

FORMAT = CHECKPOINT_FORMAT
VERSION = 1
CHECKPOINT_FILE = CHECKPOINT_FILENAME


@dataclass
class Position:
    """Where the loop is: the epoch in progress (1-based), the steps of it already done, its permutation."""

    epoch: int
    done: int = 0  # steps of this epoch already taken
    perm: torch.Tensor | None = None  # the epoch's order of the training images (None: not started)
    running: tuple[float, int, int] = (0.0, 0, 0)  # summed loss, correct count, images seen this epoch
    history: list[dict[str, Any]] = field(default_factory=list)  # finished epochs (EpochStats.as_dict rows)
    seconds: float = 0.0  # training wall time spent before this point
    epoch_seconds: float = 0.0  # of it, the time spent in the epoch in progress


def save_checkpoint(path: str | os.PathLike, loop: Any, position: Position, identity: dict[str, Any]) -> Path:
    """Write the loop's state at `position` to `path` atomically; `identity` (recipe, seed, data) names the run."""
    tensors: dict[str, torch.Tensor] = {}
    for name, t in loop.model.state_dict().items():
        tensors[f"model.{name}"] = t
    opt = loop.optimizer.state_dict()
    opt_scalars: dict[str, dict[str, Any]] = {}
    for index, state in opt["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"opt.{index}.{key}"] = value
            else:
                opt_scalars.setdefault(str(index), {})[key] = value
    for kind, average in (("ema", loop.ema), ("lookahead", loop.lookahead)):
        if average is not None:
            for i, t in enumerate(average.shadow):
                tensors[f"{kind}.{i}"] = t
    for name in ("scores", "weights"):  # data pruning's last losses and the epoch's loss weights
        if getattr(loop, name, None) is not None:
            tensors[f"prune.{name}"] = getattr(loop, name)
    tensors["rng.torch"] = torch.get_rng_state()
    if loop.device.type == "cuda":  # dropout on a GPU draws from the device's generator, not the CPU's
        tensors["rng.cuda"] = torch.cuda.get_rng_state(loop.device)
    tensors["rng.shuffle"] = loop.shuffle.get_state()
    tensors["rng.augment"] = loop.augment.get_state()
    if position.perm is not None:
        tensors["epoch.perm"] = position.perm
    header = {
        "format": FORMAT, "version": VERSION, "identity": identity, "step": loop.step, "epoch": position.epoch,
        "done": position.done, "running": list(position.running), "history": position.history,
        "seconds": position.seconds, "epoch_seconds": position.epoch_seconds, "opt_groups": opt["param_groups"], "opt_scalars": opt_scalars,
        "numpy": _numpy_state(), "python": _python_state(),
    }
    tensors = {k: v.detach().to("cpu", memory_format=torch.contiguous_format).clone() for k, v in tensors.items()}
    path = Path(path)
    data = save(tensors, metadata={"fmnist": json.dumps(header)})  # bytes, so a full disk is fileio's WriteError
    with atomic_write(path) as f:
        f.write(data)
    return path


OLD_PRECISION_NAMES = {"float32": "fp32", "bfloat16": "bf16"}  # a checkpoint's precision as torch names it


def load_checkpoint(path: str | os.PathLike, loop: Any, identity: dict[str, Any]) -> Position:
    """Restore the loop's state from `path` and return where it stopped; DataError if it belongs to another run."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            header = json.loads((f.metadata() or {}).get("fmnist", "{}"))
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise DataError(f"checkpoint {path} cannot be read ({e}); it is damaged: start the run again with --overwrite") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT or header.get("version") != VERSION:
        raise DataError(f"{path} is not a checkpoint this fmnist writes; start the run again with --overwrite")
    stored = header.get("identity")
    for key in ("data", "precision"):  # written before checkpoints named their data, or their precision
        if isinstance(stored, dict) and key not in stored:
            identity = {k: v for k, v in identity.items() if k != key}
    wanted = json.loads(json.dumps(identity))
    if isinstance(stored, dict) and stored.get("precision") in OLD_PRECISION_NAMES:  # as written for a while
        stored = {**stored, "precision": OLD_PRECISION_NAMES[stored["precision"]]}
    if stored != wanted:
        stored = stored if isinstance(stored, dict) else {}
        if [k for k in wanted if stored.get(k) != wanted[k]] == ["precision"]:
            raise DataError(f"checkpoint {path} was trained in {stored.get('precision')} and would go on in "
                            f"{wanted['precision']} here; resume it on the kind of device it started on (or with the "
                            "same --precision)")
        raise DataError(f"checkpoint {path} was written for another run (another recipe, seed, precision or training "
                        "data: the data changed since it stopped?); start the run again with --overwrite")
    try:
        model = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
        loop.model.load_state_dict(model, strict=True)
        state: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            if key.startswith("opt."):
                _, index, name = key.split(".", 2)
                state.setdefault(int(index), {})[name] = value
        for index, scalars in header["opt_scalars"].items():
            state.setdefault(int(index), {}).update(scalars)
        loop.optimizer.load_state_dict({"state": state, "param_groups": header["opt_groups"]})
        _match_layouts(loop.optimizer)
        for kind, average in (("ema", loop.ema), ("lookahead", loop.lookahead)):
            if average is not None:
                for i, t in enumerate(average.shadow):
                    t.copy_(tensors[f"{kind}.{i}"])
        if loop.scores is not None:
            loop.scores.copy_(tensors["prune.scores"])
            weights = tensors.get("prune.weights")
            loop.weights = weights.to(loop.device) if weights is not None else None
        torch.set_rng_state(tensors["rng.torch"])
        if loop.device.type == "cuda" and "rng.cuda" in tensors:
            torch.cuda.set_rng_state(tensors["rng.cuda"], loop.device)
        loop.shuffle.set_state(tensors["rng.shuffle"])
        loop.augment.set_state(tensors["rng.augment"])
        np.random.set_state(tuple(header["numpy"][:1]) + (np.asarray(header["numpy"][1], np.uint32),) + tuple(header["numpy"][2:]))
        random.setstate((header["python"][0], tuple(header["python"][1]), header["python"][2]))
        loop.step = int(header["step"])
        perm = tensors.get("epoch.perm")
        epoch, epochs = int(header["epoch"]), int(identity["recipe"]["epochs"])
        if not 1 <= epoch <= epochs + 1 or int(header["done"]) < 0:
            raise ValueError(f"it stopped in epoch {epoch} of a {epochs}-epoch run")
        history = [EpochStats(**row).as_dict() for row in header["history"]]  # each row checked here
        return Position(epoch, int(header["done"]), perm.to(loop.device) if perm is not None else None,
                        tuple(header["running"]), history, float(header["seconds"]),
                        float(header.get("epoch_seconds", 0.0)))  # absent from checkpoints of older versions
    except (KeyError, ValueError, TypeError, IndexError, RuntimeError) as e:
        raise DataError(f"checkpoint {path} does not fit this run ({str(e).splitlines()[0]}); "
                        "start the run again with --overwrite") from None


def _match_layouts(optimizer: torch.optim.Optimizer) -> None:
    """Give each per-parameter buffer its parameter's memory layout. The file stores them contiguous; a fused
    update walks a channels-last weight and a contiguous moment through memory in different orders, which pairs
    the wrong elements (measured: the resumed run drifted from the uninterrupted one at the first step)."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            for key, value in optimizer.state.get(p, {}).items():
                if isinstance(value, torch.Tensor) and value.shape == p.shape and value.stride() != p.stride():
                    optimizer.state[p][key] = torch.empty_like(p, dtype=value.dtype).copy_(value)


def _numpy_state() -> list[Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def _python_state() -> list[Any]:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]
