"""The model file: one self-describing safetensors file (weights + everything needed to use them).

Layout: the tensors are the model's state_dict; the safetensors header's string metadata holds
    format          "fmnist-model"          marker: this is an fmnist model, not any safetensors file
    format_version  "1"
    digest          "sha256:<hex>"          over the metadata below and every tensor (name, dtype, shape, bytes)
    <field>         JSON                    one key per ModelMeta field (model, model_args, classes, mean, ...)

Loading reads JSON and raw tensors only: no pickle, no torch.load, nothing from the file is executed. The
architecture is rebuilt from the registry by name (`build_model(meta.model, **meta.model_args)`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from fmnist import __version__
from fmnist.config import Recipe
from fmnist.errors import DataError, UsageError
from fmnist.fileio import atomic_path
from fmnist.models import build_model, list_models
from fmnist.runtime import resolve_device

FORMAT = "fmnist-model"
FORMAT_VERSION = 1
_HEADER_KEYS = ("format", "format_version", "digest")  # the header's own keys, outside the digest
MODEL_FILENAME = "model.safetensors"  # the model file inside a run directory

# First bytes of files people mistake for a model file, to say what was given instead.
_MAGIC = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"BM": "a BMP image",
    b"PK\x03\x04": "a zip archive (a PyTorch .pt/.pth checkpoint is one; fmnist never loads pickles)",
    b"\x89HDF": "an HDF5 file (a Keras .h5 model?)",
    b"\x1f\x8b": "a gzip file",
}


@dataclass(frozen=True)
class ModelMeta:
    """Everything a model file says about its weights: how to rebuild, feed and judge the model."""

    model: str  # registered architecture name (fmnist.models)
    model_args: dict[str, Any]  # build_model keyword arguments, including in_channels and num_classes
    classes: list[str]  # class names, index = label
    mean: float = 0.0  # input normalization: x = (pixel / 255 - mean) / std
    std: float = 1.0
    # Average the logits of the image and its left-right mirror. None (files written before this field): read
    # from the recipe, as those files did.
    tta_flip: bool | None = None
    # The top probability below which a prediction is flagged "not confident" (chosen on held-out data at
    # training; None: fmnist.inference.DEFAULT_CONFIDENCE).
    confidence_threshold: float | None = None
    input_size: tuple[int, int] = (28, 28)  # (height, width) in pixels
    in_channels: int = 1
    recipe: dict[str, Any] | None = None  # Recipe.to_dict() of the training run
    metrics: dict[str, Any] = field(default_factory=dict)  # e.g. {"test_accuracy": 0.9121}
    dataset: str = ""
    dataset_checksum: str = ""
    version: str = __version__  # fmnist version that wrote the file
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def __post_init__(self) -> None:
        # Store the JSON form of every container so a loaded meta equals the saved one (tuples become
        # lists in JSON, e.g. the recipe's Adam betas) and unserializable values fail here, not at save.
        for name in ("model_args", "classes", "recipe", "metrics"):
            object.__setattr__(self, name, _json_roundtrip(getattr(self, name), name))
        object.__setattr__(self, "input_size", tuple(self.input_size))
        object.__setattr__(self, "mean", float(self.mean))
        object.__setattr__(self, "std", float(self.std))
        if self.tta_flip is None:
            object.__setattr__(self, "tta_flip", bool((self.recipe or {}).get("tta_flip", False)) if isinstance(self.recipe, dict) else False)

    @classmethod
    def for_recipe(cls, recipe: Recipe, classes: list[str], **fields: Any) -> "ModelMeta":
        """Meta for a model trained with `recipe` on a dataset with `classes`; `fields` sets the rest (metrics, ...)."""
        model_args = {"in_channels": 1, "num_classes": len(classes), **recipe.model_args}
        return cls(model=recipe.model, model_args=model_args, classes=list(classes), mean=recipe.mean,
                   std=recipe.std, tta_flip=recipe.tta_flip, recipe=recipe.to_dict(), **fields)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        d = dataclasses.asdict(self)
        d["input_size"] = list(self.input_size)
        return d


def save_model(path: str | os.PathLike, model: nn.Module, meta: ModelMeta) -> Path:
    """Write `model`'s weights and `meta` to one safetensors file at `path`, atomically; returns the path."""
    path = Path(path)
    _check_meta(meta, str(path), error=ValueError)
    model = getattr(model, "_orig_mod", model)  # torch.compile wraps the module; save the original's keys
    # safetensors wants contiguous CPU tensors that share no storage: one fresh contiguous copy each
    # (this also turns channels_last conv weights back into the default layout).
    tensors = {
        name: t.detach().to(device="cpu", memory_format=torch.contiguous_format, copy=True)
        for name, t in model.state_dict().items()
    }
    fields = _meta_fields(meta)
    metadata = {"format": FORMAT, "format_version": str(FORMAT_VERSION), **fields, "digest": _digest(fields, tensors)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, ModelMeta]:
    """Rebuild the model saved at `path` (file or run directory), verify it, and return it in eval mode with its meta."""
    path = resolve_model_path(path)
    metadata, tensors = _read(path, with_tensors=True)
    meta = _parse_meta(path, metadata)
    # The digest covers the metadata fields as the file stores them, so a file written before a field was added
    # (which lacks it) still verifies.
    stored = {k: v for k, v in metadata.items() if k not in _HEADER_KEYS}
    if metadata.get("digest") != _digest(stored, tensors):
        raise DataError(
            f"model file {path} has been modified since it was saved: its checksum does not match its weights "
            "and metadata (tampered or corrupted); use an untouched copy or retrain it"
        )
    if meta.model not in list_models():
        raise DataError(f"model file {path} needs architecture {meta.model!r}, which this fmnist does not have "
                        f"(known: {', '.join(list_models())}); upgrade fmnist or use a model trained with this version")
    try:
        model = build_model(meta.model, **meta.model_args)
    except (UsageError, TypeError, ValueError) as e:
        raise DataError(f"model file {path}: cannot build {meta.model!r} with arguments {meta.model_args} ({e}); "
                        "the file was written by an incompatible fmnist version") from None
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise DataError(f"model file {path}: its weights do not fit architecture {meta.model!r} "
                        f"{meta.model_args}: {e}; the file was written by an incompatible fmnist version") from None
    return model.to(resolve_device(device)).eval(), meta


def read_meta(path: str | os.PathLike) -> ModelMeta:
    """The meta of the model file at `path` (file or run directory), reading only its header (weights unchecked)."""
    path = resolve_model_path(path)
    metadata, _ = _read(path, with_tensors=False)
    return _parse_meta(path, metadata)


def resolve_model_path(path: str | os.PathLike) -> Path:
    """`path` itself if it is a file; `path`/model.safetensors if it is a run directory; else DataError."""
    path = Path(path)
    if path.is_dir():
        inner = path / MODEL_FILENAME
        if not inner.is_file():
            raise DataError(f"directory {path} holds no {MODEL_FILENAME}; pass a model file or a run directory "
                            "that `fmnist train` wrote")
        return inner
    if not path.exists():
        raise DataError(f"model file {path} does not exist; check the path or train one with `fmnist train`")
    if not path.is_file():
        raise DataError(f"model file {path} is not a regular file; pass a .safetensors model file")
    return path


def _read(path: Path, with_tensors: bool) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """The header metadata (and the tensors, on CPU) of a safetensors file, or a DataError saying what is wrong."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()} if with_tensors else {}
    except (SafetensorError, OSError, ValueError) as e:
        problem, fix = _diagnose(path)
        raise DataError(f"model file {path} {problem} (safetensors: {e}); {fix}") from None
    if metadata.get("format") != FORMAT:
        raise DataError(f"{path} is a safetensors file but not an fmnist model (no format={FORMAT!r} marker in "
                        "its metadata); pass a model file saved by `fmnist train`")
    return metadata, tensors


def _diagnose(path: Path) -> tuple[str, str]:
    """Why a file failed to open as safetensors, and the fix: truncated/damaged, or some other kind of file."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return "cannot be read", "check that it exists and that you may read it"
    other = "pass a .safetensors model file saved by `fmnist train`"
    if not head:
        return "is empty", other
    # A safetensors file starts with an 8-byte header length, then the JSON header.
    if len(head) == 9 and head[8:9] == b"{":
        return "is truncated or damaged", "copy it again from where it was saved, or retrain it"
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            return f"is not a safetensors file: it looks like {kind}", other
    return "is not a safetensors file", other


def _parse_meta(path: Path, metadata: dict[str, str]) -> ModelMeta:
    """ModelMeta from the header's string metadata, validated; DataError naming the bad field."""
    version = metadata.get("format_version", "")
    if not version.isdigit():
        raise DataError(f"model file {path} has an invalid format_version {version!r}; the file is damaged")
    if int(version) > FORMAT_VERSION:
        raise DataError(f"model file {path} has format version {version}, newer than this fmnist reads "
                        f"({FORMAT_VERSION}); upgrade fmnist")
    values: dict[str, Any] = {}
    for f in dataclasses.fields(ModelMeta):
        if f.name not in metadata:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise DataError(f"model file {path} lacks the metadata field {f.name!r}; the file is damaged")
            continue
        try:
            values[f.name] = json.loads(metadata[f.name])
        except json.JSONDecodeError:
            raise DataError(f"model file {path}: metadata field {f.name!r} is not valid JSON; the file is damaged") from None
    try:
        meta = ModelMeta(**values)
    except (TypeError, ValueError) as e:
        raise DataError(f"model file {path} has invalid metadata ({e}); the file is damaged") from None
    _check_meta(meta, str(path), error=DataError)
    return meta


def _check_meta(meta: ModelMeta, where: str, error: type[Exception]) -> None:
    """Raise `error` if `meta`'s fields are of the wrong type or contradict each other."""
    problems = []
    if not isinstance(meta.model, str) or not meta.model:
        problems.append("model must be a non-empty architecture name")
    args = meta.model_args if isinstance(meta.model_args, dict) else {}
    if not isinstance(meta.model_args, dict):
        problems.append("model_args must be a dict")
    if not isinstance(meta.classes, list) or not meta.classes or not all(isinstance(c, str) for c in meta.classes):
        problems.append("classes must be a non-empty list of names")
    elif args.get("num_classes", len(meta.classes)) != len(meta.classes):
        problems.append(f"model_args num_classes={args['num_classes']} but {len(meta.classes)} class names")
    if meta.input_size != (28, 28) or meta.in_channels != 1:
        problems.append(f"input must be 1 channel of 28x28 pixels, got {meta.in_channels} of {meta.input_size}")
    elif args.get("in_channels", meta.in_channels) != meta.in_channels:
        problems.append(f"model_args in_channels={args['in_channels']} but the input has {meta.in_channels}")
    if not isinstance(meta.tta_flip, bool):
        problems.append("tta_flip must be true or false")
    if meta.confidence_threshold is not None and not (isinstance(meta.confidence_threshold, (int, float))
                                                      and 0 <= meta.confidence_threshold <= 1):
        problems.append("confidence_threshold must be a probability or null")
    if not meta.std > 0:
        problems.append(f"std must be positive, got {meta.std}")
    if meta.recipe is not None and not isinstance(meta.recipe, dict):
        problems.append("recipe must be a dict or null")
    if not isinstance(meta.metrics, dict):
        problems.append("metrics must be a dict")
    if problems:
        message = f"model file {where}: invalid metadata: {'; '.join(problems)}"
        raise error(message + ("; the file is damaged" if error is DataError else ""))


def _meta_fields(meta: ModelMeta) -> dict[str, str]:
    """One JSON string per ModelMeta field: safetensors metadata must be str -> str."""
    return {k: json.dumps(v, sort_keys=True) for k, v in meta.to_dict().items()}


def _digest(fields: dict[str, str], tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the metadata fields and every tensor's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for key in sorted(fields):
        h.update(f"{key}={fields[key]}\n".encode())
    for name in sorted(tensors):
        t = tensors[name]
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        # Raw bytes via a uint8 view: works for every dtype (numpy has no bfloat16).
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return "sha256:" + h.hexdigest()


def _json_roundtrip(value: Any, name: str) -> Any:
    try:
        return json.loads(json.dumps(value, default=_json_default))
    except (TypeError, ValueError) as e:
        raise ValueError(f"ModelMeta.{name} is not JSON-serializable: {e}") from None


def _json_default(obj: Any) -> Any:
    # numpy scalars and arrays (e.g. metrics computed with numpy) become plain numbers and lists.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON-serializable")

