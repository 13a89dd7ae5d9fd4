"""What an exported ONNX file says about itself, in its `metadata_props` (string -> string).

    fmnist_meta     the ModelMeta as JSON (ModelMeta.to_dict()), read back with fmnist.checkpoint's validation
    format_version  the fmnist model-file format version of fmnist_meta
    classes         JSON list of the class names
    mean, std       the input normalization the graph applies itself (normalization: "in_graph")
    normalization   "in_graph": feed raw pixels; normalizing them again beforehand gives wrong answers
    input_type      "uint8" (pixels 0..255) or "float" (float32 0..1): what the `images` input takes
    input           in words: the input's shape, type and look, and the outputs
    confidence_threshold  the top probability under which fmnist calls a prediction "not confident"
    producer        "fmnist <version>"
    verified        JSON: the agreement with PyTorch measured at export (absent when not verified)

Everything but fmnist_meta, format_version and input_type is for other tools and people reading the file;
fmnist reads the meta from fmnist_meta alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fmnist import __version__
from fmnist.checkpoint import FORMAT_VERSION, ModelMeta, _parse_meta
from fmnist.errors import DataError
from fmnist.inference import model_confidence

META_KEY = "fmnist_meta"
VERIFIED_KEY = "verified"
INPUT_TYPES = ("uint8", "float")
EXPORT_HINT = "export the model with `fmnist export MODEL --out FILE.onnx`"


def metadata_props(meta: ModelMeta, input_type: str, verified: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The metadata_props of an exported model of `meta` taking `input_type` input."""
    props = {
        META_KEY: json.dumps(meta.to_dict(), sort_keys=True),
        "format_version": str(FORMAT_VERSION),
        "classes": json.dumps(list(meta.classes)),
        "mean": repr(meta.mean),
        "std": repr(meta.std),
        "normalization": "in_graph",
        "input_type": input_type,
        "input": describe_input(meta, input_type),
        "confidence_threshold": repr(model_confidence(meta)),
        "producer": f"fmnist {__version__}",
    }
    if verified is not None:
        props.update(verified_props(verified))
    return props


def describe_input(meta: ModelMeta, input_type: str) -> str:
    """The graph's input and outputs in words, for whoever deploys the file without fmnist (also its doc_string)."""
    h, w = meta.input_size
    pixels = "uint8 pixels 0..255" if input_type == "uint8" else "float32 pixels 0..1 (the 0..255 values divided by 255)"
    return (f"input 'images': [N, {h}, {w}] grayscale, {pixels}, a light article on a black background as in "
            f"Fashion-MNIST (invert dark-on-light photos, crop to the article, resize to {h}x{w}). Feed raw pixels: the "
            f"graph subtracts mean {meta.mean!r} and divides by std {meta.std!r} itself. Outputs 'probabilities' and "
            f"'logits': [N, {len(meta.classes)}], in the order of the 'classes' entry.")


def verified_props(verified: Mapping[str, Any]) -> dict[str, str]:
    """The `verified` entry recording the agreement with PyTorch measured at export."""
    return {VERIFIED_KEY: json.dumps(dict(verified), sort_keys=True)}


def read_metadata(props: Mapping[str, str], where: str) -> tuple[ModelMeta, str]:
    """(ModelMeta, input_type) from an exported file's metadata_props, or a DataError saying what is wrong."""
    text = props.get(META_KEY)
    if text is None:
        raise DataError(f"{where} is an ONNX model but not one fmnist exported (it has no {META_KEY!r} metadata); "
                        f"{EXPORT_HINT}")
    try:
        fields = json.loads(text)
    except (ValueError, RecursionError):
        fields = None
    if not isinstance(fields, dict):
        raise DataError(f"{where}: its {META_KEY!r} metadata is not a JSON object; the file is damaged, {EXPORT_HINT} again")
    # The safetensors header's form (one JSON text per field), so the meta passes the same validation as a model file's.
    header = {"format_version": props.get("format_version", str(FORMAT_VERSION)),
              **{k: json.dumps(v) for k, v in fields.items()}}
    meta = _parse_meta(where, header)  # `where` only names the file in messages
    input_type = props.get("input_type", "uint8")
    if input_type not in INPUT_TYPES:
        raise DataError(f"{where} has input_type {input_type[:40]!r} in its metadata, not one of {', '.join(INPUT_TYPES)}; "
                        f"the file is damaged, {EXPORT_HINT} again")
    return meta, input_type


def read_verified(props: Mapping[str, str]) -> dict[str, Any] | None:
    """The verification figures recorded at export, or None."""
    try:
        value = json.loads(props[VERIFIED_KEY])
    except (KeyError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None
