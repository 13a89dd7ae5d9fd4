"""The model file: one self-describing safetensors file (weights + everything needed to use them).

Layout: the tensors are the model's state_dict; the safetensors header's string metadata holds
    format          "fmnist-model"          marker: this is an fmnist model, not any safetensors file
    format_version  "1"
    digest          "sha256:<hex>"          over the metadata below and every tensor (name, dtype, shape, bytes)
    <field>         JSON                    one key per ModelMeta field (model, model_args, classes, mean, ...)

Loading reads JSON and raw tensors only: no pickle, no torch.load, nothing from the file is executed. The
architecture is rebuilt from the registry by name (`build_model(meta.model, **meta.model_args)`), after its
arguments pass MODEL_ARG_BOUNDS and a build on the meta device (no memory) has the names, shapes and dtypes of the
file's tensors: a file cannot make fmnist allocate much more than its own size.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import os
import re
import reprlib
import shlex
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as serialize
from torch import nn

from fmnist import __version__
from fmnist.config import Recipe
from fmnist.errors import DataError, UsageError
from fmnist.fileio import atomic_write
from fmnist.models import build_model, list_models
from fmnist.models.bounds import MAX_CLASSES, arg_problems
from fmnist.paths import cv_dir_note
from fmnist.runtime import resolve_device

FORMAT = "fmnist-model"
FORMAT_VERSION = 1
_HEADER_KEYS = ("format", "format_version", "digest")  # the header's own keys, outside the digest
MODEL_FILENAME = "model.safetensors"  # the model file inside a run directory
# An unfinished run's training state (fmnist.train.resume writes it, marked with CHECKPOINT_FORMAT): not a model,
# but `train --resume` finishes it.
CHECKPOINT_FILENAME = "checkpoint.safetensors"
CHECKPOINT_FORMAT = "fmnist-checkpoint"
# A model file's header is a few kB to a few hundred (one entry per tensor); safetensors would parse 100 MB of JSON.
MAX_HEADER_BYTES = 16 * 2**20

_DTYPE_NAMES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64", torch.bool: "BOOL",
                torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8"}

# First bytes of files people mistake for a model file, to say what was given instead.
_MAGIC = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"BM": "a BMP image",
    b"PK\x03\x04": "a zip archive (a PyTorch .pt/.pth checkpoint is one; fmnist never loads pickles)",
    b"\x89HDF": "an HDF5 file (a Keras .h5 model?)",
    b"\x1f\x8b": "a gzip file",
    **{bytes([0x80, protocol]): "a Python pickle (fmnist never loads pickles)" for protocol in range(2, 6)},
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
    # Also average over the image moved by this many pixels (fmnist.inference.logits); None: from the recipe.
    tta_shift: int | None = None
    # The top probability below which a prediction is flagged "not confident" (chosen on held-out data at
    # training; None: fmnist.inference.default_confidence).
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
        if self.tta_shift is None:
            shift = self.recipe.get("tta_shift", 0) if isinstance(self.recipe, dict) else 0
            object.__setattr__(self, "tta_shift", shift)

    @classmethod
    def for_recipe(cls, recipe: Recipe, classes: list[str], **fields: Any) -> "ModelMeta":
        """Meta for a model trained with `recipe` on a dataset with `classes`; `fields` sets the rest (metrics, ...)."""
        model_args = {"in_channels": 1, "num_classes": len(classes), **recipe.model_args}
        return cls(model=recipe.model, model_args=model_args, classes=list(classes), mean=recipe.mean,
                   std=recipe.std, tta_flip=recipe.tta_flip, tta_shift=recipe.tta_shift, recipe=recipe.to_dict(),
                   **fields)

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
    data = serialize(tensors, metadata=metadata)  # bytes, written by Python: a full disk is a WriteError, not a Rust one
    with atomic_write(path) as f:
        f.write(data)
    return path


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, ModelMeta]:
    """Rebuild the model saved at `path` (file or run directory), verify it, and return it in eval mode with its meta."""
    path = resolve_model_path(path)
    f, metadata = _open(path)
    with f:
        meta = _parse_meta(path, metadata)
        if meta.model not in list_models():
            raise DataError(f"model file {path} needs architecture {reprlib.repr(meta.model)}, which this fmnist does not "
                            f"have (known: {', '.join(list_models())}); upgrade fmnist or use a model trained with this version")
        _check_tensors(path, meta, f)  # before any weight is read or any real layer allocated
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    # The digest covers the metadata fields as the file stores them, so a file written before a field was added
    # (which lacks it) still verifies.
    stored = {k: v for k, v in metadata.items() if k not in _HEADER_KEYS}
    if metadata.get("digest") != _digest(stored, tensors):
        raise DataError(
            f"model file {path} has been modified since it was saved: its checksum does not match its weights "
            "and metadata (tampered or corrupted); use an untouched copy or retrain it"
        )
    model = _build(path, meta)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise DataError(f"model file {path}: its weights do not fit architecture {meta.model!r} "
                        f"{meta.model_args}: {e}; the file was written by an incompatible fmnist version") from None
    return model.to(resolve_device(device)).eval(), meta


def read_meta(path: str | os.PathLike) -> ModelMeta:
    """The meta of the model file at `path` (file or run directory), reading only its header (weights unchecked)."""
    path = resolve_model_path(path)
    f, metadata = _open(path)
    with f:
        return _parse_meta(path, metadata)


def resolve_model_path(path: str | os.PathLike) -> Path:
    """`path` itself if it is a file; `path`/model.safetensors if it is a run directory; else DataError."""
    path = Path(path)
    if path.is_dir():
        inner = path / MODEL_FILENAME
        if not inner.is_file():
            if (path / CHECKPOINT_FILENAME).is_file():
                raise DataError(f"directory {path} holds no {MODEL_FILENAME}: its training stopped before the end; "
                                f"finish it with `fmnist train --resume {shlex.quote(str(path))}`")
            raise DataError(cv_dir_note(path) or f"directory {path} holds no {MODEL_FILENAME}; pass a model file or "
                            "a run directory that `fmnist train` wrote")
        return inner
    if not path.exists():
        raise DataError(f"model file {path} does not exist; check the path or train one with `fmnist train`")
    if not path.is_file():
        raise DataError(f"model file {path} is not a regular file; pass a .safetensors model file")
    return path


def _open(path: Path) -> tuple[Any, dict[str, str]]:
    """The open safetensors file at `path` (a context manager) and its string metadata, if it is an fmnist model file;
    else a DataError saying what is wrong with it."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        head = b""  # safe_open fails too, and _diagnose says why
    if head[8:9] == b"{" and int.from_bytes(head[:8], "little") > MAX_HEADER_BYTES:
        raise DataError(f"model file {path} has a header of {int.from_bytes(head[:8], 'little'):,} bytes, more than a model "
                        f"file's {MAX_HEADER_BYTES:,}; pass a .safetensors model file saved by `fmnist train`")
    try:
        f = safe_open(str(path), framework="pt", device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        problem, fix = _diagnose(path, e)
        raise DataError(f"model file {path} {problem}; {fix}") from None
    metadata = f.metadata() or {}
    if metadata.get("format") != FORMAT:
        if _is_checkpoint(metadata):
            if path.name == CHECKPOINT_FILENAME:
                raise DataError(f"{path} is a training checkpoint, not a model file: its run stopped before the end; "
                                f"finish it with `fmnist train --resume {shlex.quote(str(path.parent))}`")
            raise DataError(f"{path} is a training checkpoint, not a model file (a cross-validation fold's, by its "
                            "name): run the same `fmnist cv` command again to finish the cross-validation")
        raise DataError(f"{path} is a safetensors file but not an fmnist model (no format={FORMAT!r} marker in "
                        "its metadata); pass a model file saved by `fmnist train`")
    return f, metadata


def _is_checkpoint(metadata: dict[str, str]) -> bool:
    """Whether a safetensors file's metadata is a training checkpoint's (fmnist.train.resume's header)."""
    try:
        header = json.loads(metadata.get("fmnist", ""))
    except (ValueError, RecursionError):
        return False
    return isinstance(header, dict) and header.get("format") == CHECKPOINT_FORMAT


def _diagnose(path: Path, error: Exception) -> tuple[str, str]:
    """Why a file failed to open as safetensors, and the fix: which part is damaged, or what kind of file it is."""
    other = "pass a .safetensors model file saved by `fmnist train`"
    damaged = "copy it again from where it was saved, or retrain it"
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            # A safetensors file starts with an 8-byte little-endian header length, then the JSON header.
            head = f.read(9)
            n = int.from_bytes(head[:8], "little")
            header = head[8:] + f.read(n - 1) if len(head) == 9 and 1 <= n <= min(size - 8, MAX_HEADER_BYTES) else b""
    except OSError:
        return "cannot be read", "check that it exists and that you may read it"
    if not head:
        return "is empty", other
    if head[8:9] == b"{" and n > size - 8:
        return f"is truncated: its header should be {n:,} bytes but only {size - 8:,} follow its length", damaged
    try:
        entries = json.loads(header) if header else None
    except (ValueError, RecursionError):
        entries = None
        if head[8:9] == b"{":
            return "is damaged: its header is not valid JSON", damaged
    if entries is not None and not isinstance(entries, dict):
        return "is damaged: its header is not a JSON object", damaged
    if entries is not None or head[8:9] == b"{":
        return f"is truncated or damaged (safetensors: {error})", damaged
    kinds = [kind for magic, kind in _MAGIC.items() if head.startswith(magic)]
    return (f"is not a safetensors file: it looks like {kinds[0]}" if kinds else "is not a safetensors file"), other


def _check_tensors(path: Path, meta: ModelMeta, f: Any) -> None:
    """DataError naming the first difference between the file's tensors (names, shapes, dtypes, from the header)
    and the state_dict of meta's architecture, which is built on the meta device: shapes without memory."""
    with torch.device("meta"):
        wanted = {k: (_DTYPE_NAMES.get(t.dtype, str(t.dtype)), list(t.shape)) for k, t in _build(path, meta).state_dict().items()}
    stored = {k: (s.get_dtype(), s.get_shape()) for k in f.keys() for s in [f.get_slice(k)]}
    problem = next(itertools.chain(
        (f"tensor {k!r} is missing" for k in wanted if k not in stored),
        (f"it has an extra tensor {reprlib.repr(k)}" for k in stored if k not in wanted),
        (f"tensor {k!r} is {stored[k][0]} {stored[k][1]} where the architecture has {v[0]} {v[1]}"
         for k, v in wanted.items() if stored[k] != v)), None)
    if problem:
        raise DataError(f"model file {path}: its weights do not fit architecture {meta.model!r} {meta.model_args}: "
                        f"{problem}; the file was written by an incompatible fmnist version, or damaged")


def _build(path: Path, meta: ModelMeta) -> nn.Module:
    """build_model(meta.model, **meta.model_args) (on the current default device), or a DataError."""
    try:
        return build_model(meta.model, **meta.model_args)
    except (UsageError, TypeError, ValueError, RuntimeError, NotImplementedError) as e:
        raise DataError(f"model file {path}: cannot build {meta.model!r} with arguments {meta.model_args} ({e}); "
                        "the file was written by an incompatible fmnist version") from None


def _parse_meta(path: Path, metadata: dict[str, str]) -> ModelMeta:
    """ModelMeta from the header's string metadata, validated; DataError naming the bad field."""
    version = metadata.get("format_version", "")
    if not re.fullmatch(r"[1-9][0-9]{0,8}", version):  # not str.isdigit: "²" is a digit that int() refuses
        raise DataError(f"model file {path} has an invalid format_version {reprlib.repr(version)}; the file is damaged")
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
        except (ValueError, RecursionError):  # RecursionError: nested thousands deep
            raise DataError(f"model file {path}: metadata field {f.name!r} is not valid JSON (or nested too deeply); the "
                            "file is damaged") from None
    try:
        meta = ModelMeta(**values)
    except (TypeError, ValueError, OverflowError, RecursionError) as e:
        raise DataError(f"model file {path} has invalid metadata ({str(e)[:200]}); the file is damaged") from None
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
    elif isinstance(meta.model, str):
        problems += arg_problems(meta.model, args)
    if not (isinstance(meta.classes, list) and 0 < len(meta.classes) <= MAX_CLASSES and all(isinstance(c, str) for c in meta.classes)):
        problems.append(f"classes must be a list of 1 to {MAX_CLASSES} names")
    elif args.get("num_classes", len(meta.classes)) != len(meta.classes):
        problems.append(f"model_args num_classes={reprlib.repr(args['num_classes'])} but {len(meta.classes)} class names")
    if meta.input_size != (28, 28) or meta.in_channels != 1:
        problems.append(f"input must be 1 channel of 28x28 pixels, got {reprlib.repr((meta.in_channels, meta.input_size))}")
    elif args.get("in_channels", meta.in_channels) != meta.in_channels:
        problems.append(f"model_args in_channels={reprlib.repr(args['in_channels'])} but the input has 1 channel")
    if not isinstance(meta.tta_flip, bool):
        problems.append("tta_flip must be true or false")
    if not (isinstance(meta.tta_shift, int) and not isinstance(meta.tta_shift, bool) and 0 <= meta.tta_shift <= 4):
        problems.append(f"tta_shift must be a whole number of pixels in 0..4, got {reprlib.repr(meta.tta_shift)}")
    if meta.confidence_threshold is not None and not (isinstance(meta.confidence_threshold, (int, float))
                                                      and 0 <= meta.confidence_threshold <= 1):
        problems.append("confidence_threshold must be a probability or null")
    if not (math.isfinite(meta.mean) and 0 < meta.std < math.inf):
        problems.append(f"mean must be finite and std positive, got {meta.mean} and {meta.std}")
    if not all(isinstance(getattr(meta, k), str) for k in ("dataset", "dataset_checksum", "version", "created")):
        problems.append("dataset, dataset_checksum, version and created must be strings")
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

