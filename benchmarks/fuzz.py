"""Fuzz the readers of untrusted input (IDX files, model files, images) with mutated and random inputs.

    python -m benchmarks.fuzz                          # 100,000 inputs per target (the image target takes longest)
    python -m benchmarks.fuzz --quick                  # 1,000 per target: a smoke run, well under a minute
    python -m benchmarks.fuzz --target model --inputs 20000 --seed 7

Targets: `idx` (read_idx on a file: a uint8 array or IdxError), `model` (load_model: a model or DataError), `image`
(open_image(bytes), then prepare(img, mode) for every mode: uint8 [28, 28] or DataError), `http` (whole requests
to the service's POST /v1/predict: 200 with predictions, or a 4xx/503 JSON error; benchmarks.fuzz_http). Anything else, a wrong
result or an input running past --slow seconds is a crash. Inputs: valid seeds (IDX raw and gzipped; a tiny `mlp`
model file; PNG, JPEG, GIF, BMP, WebP, TIFF in several modes) with bit flips, boundary or random bytes, truncations,
insertions, duplicated chunks and header-field edits (IDX magic and dimensions; safetensors tensor entries, and
metadata fields re-signed with a valid digest so that the checks behind the checksum run; PNG IHDR fields with the
CRC fixed; JPEG frame sizes), and random bytes. Per target: inputs tried, accepted, refused, crashes and their kinds,
and the peak RSS after it (and its growth during it). The first crashes of each kind (repr, traceback, input) go
under runs/bench/fuzz/ (runs/bench/quick/fuzz with --quick) beside fuzz.json; the exit code is 1 on any crash.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import resource
import signal
import struct
import sys
import tempfile
import traceback
import warnings
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load as load_safetensors

from benchmarks import kit
from fmnist import checkpoint
from fmnist.checkpoint import ModelMeta, load_model, save_model
from fmnist.data.idx import read_idx
from fmnist.errors import DataError
from fmnist.fileio import write_json
from fmnist.imaging import MODES, open_image, prepare
from fmnist.models import build_model, list_models

FULL_INPUTS, QUICK_INPUTS = 100_000, 1_000
KEEP = 3  # crashes saved per distinct kind (exception type and the line that raised it)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BOUNDARY = [0, 1, 2, 7, 8, 27, 28, 29, 255, 256, 4096, 9000, 65535, 2**31 - 1, 2**31, 2**32 - 1]
WILD = [-1, 0, 1, 3, 28, 1024, 1025, 10**6, 2**31, 2**63, 10**400, 0.5, -0.0, 1e308, float("nan"), float("inf"), True,
        None, "", "x" * 1000, [], [10**6] * 3, [1] * 100, {}, {"a": 1}]  # JSON values for metadata fields
NOT_SIGNED = ("format", "format_version", "digest")  # the metadata keys outside the digest
KEYS = ("tried", "accepted", "refused", "crashes")  # what Result.counts counts


@dataclass
class Target:
    """One reader under test: its seed inputs, a header-field editor for them, and how to run one input."""

    name: str
    seeds: list[bytes]
    edit: Callable[[random.Random, bytes], bytes]
    run: Callable[[bytes], bool]  # True: accepted; False: refused with a DataError; raises: a crash
    edit_share: float = 0.4  # the share of inputs that start with a header edit


@dataclass
class Result:
    """What fuzzing one target found: counts of inputs, crashes by kind, memory."""

    target: str
    counts: Counter = field(default_factory=Counter)  # inputs, by KEYS
    kinds: Counter = field(default_factory=Counter)  # crashes by kind
    peak_rss_mb: float = 0.0
    rss_growth_mb: float = 0.0


def byte_mutation(rng: random.Random, data: bytes) -> bytes:
    """One of: 1-8 bit flips, 1-4 bytes set to boundary or random values (these two, which keep the length, 3 times in
    4: a length change is caught early by any format's length fields), a truncation, an insertion of random bytes, a
    duplicated chunk."""
    b, kind = bytearray(data), rng.choice("ffffffsstid")
    if kind in "fs" and b:
        for _ in range(rng.randint(1, 8 if kind == "f" else 4)):
            at = rng.randrange(len(b))
            b[at] = b[at] ^ (1 << rng.randrange(8)) if kind == "f" else rng.choice([0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)])
    elif kind == "t":
        del b[rng.randrange(len(b) + 1) :]
    elif kind == "i":
        at = rng.randrange(len(b) + 1)
        b[at:at] = rng.randbytes(rng.choice([1, 2, 4, 8, 64, 1024]))
    elif b:
        i, k = rng.randrange(len(b)), rng.randrange(len(b) + 1)
        b[k:k] = b[i : i + rng.randint(1, 256)]
    return bytes(b)


def mutate(rng: random.Random, target: Target) -> bytes:
    """A new input for `target`: random bytes (5%), or a seed with a header edit and/or 1-3 byte mutations."""
    if rng.random() < 0.05:
        return rng.randbytes(rng.choice([0, 1, 4, 8, 9, 16, 64, 512, 4096]))
    data = rng.choice(target.seeds)
    if rng.random() < target.edit_share:
        data = target.edit(rng, data)
        if rng.random() < 0.6:
            return data
    for _ in range(rng.randint(1, 3)):
        data = byte_mutation(rng, data)
    return fix_png_crcs(data) if data[:8] == PNG_MAGIC and rng.random() < 0.5 else data


def fix_png_crcs(data: bytes) -> bytes:
    """`data` with the CRC of every whole PNG chunk recomputed, so that a mutation reaches the decoder behind it."""
    b, at = bytearray(data), 8
    while at + 12 <= len(b) and at + 12 + (n := int.from_bytes(b[at : at + 4], "big")) <= len(b):
        b[at + 8 + n : at + 12 + n] = zlib.crc32(bytes(b[at + 4 : at + 8 + n])).to_bytes(4, "big")
        at += 12 + n
    return bytes(b)


def expect(ok: bool, what: str) -> None:
    """A wrong result is a crash too (not `assert`, which python -O drops)."""
    if not ok:
        raise AssertionError(what)


# IDX files.


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX file of a 1-D or 3-D uint8 array."""
    magic = {1: 0x801, 3: 0x803}[array.ndim].to_bytes(4, "big")
    return magic + b"".join(int(d).to_bytes(4, "big") for d in array.shape) + array.tobytes()


def idx_edit(rng: random.Random, data: bytes) -> bytes:
    """Raw or gzipped IDX bytes with a header field changed: element type, number of dimensions or one dimension."""
    gz = data[:2] == b"\x1f\x8b"
    raw = bytearray(gzip.decompress(data) if gz else data)
    where = rng.randrange(3)
    if where < 2 and len(raw) > 3:
        raw[2 + where] = rng.choice([0x08, 0x09, 0x0D, 0, 1, 3, 4, 255, rng.randrange(256)])
    elif len(raw) >= 8:
        at = 4 + 4 * rng.randrange(max(1, (min(len(raw), 16) - 4) // 4))
        raw[at : at + 4] = rng.choice([*BOUNDARY, rng.getrandbits(32)]).to_bytes(4, "big")
    return gzip.compress(bytes(raw), mtime=0) if gz and rng.random() < 0.8 else bytes(raw)


def idx_target(scratch: Path) -> Target:
    """read_idx on labels and images, raw and gzipped (an empty label file among them)."""
    gen = np.random.default_rng(0)
    seeds = [idx_bytes(a) for a in (gen.integers(0, 10, 12, dtype=np.uint8), gen.integers(0, 256, (3, 28, 28), dtype=np.uint8),
                                    gen.integers(0, 256, (2, 5, 7), dtype=np.uint8), np.zeros(0, np.uint8))]
    path = scratch / "input-idx"

    def run(data: bytes) -> bool:
        path.write_bytes(data)
        try:
            array = read_idx(path)
        except DataError:
            return False
        expect(array.dtype == np.uint8 and array.ndim in (1, 3), f"read_idx gave {array!r:.200}")
        return True

    return Target("idx", seeds + [gzip.compress(s, mtime=0) for s in seeds], idx_edit, run)


# Model files.


def wild_json(rng: random.Random, text: str) -> str:
    """A JSON value like the one in `text` but changed: a key set, added or removed, or the whole value replaced."""
    value = json.loads(text)
    if isinstance(value, dict) and value and rng.random() < 0.7:
        key = rng.choice([*value, "widths", "blocks", "stem", "filters", "hidden", "padding", "image_size", "evil"])
        if rng.random() < 0.15:
            value.pop(key, None)
        else:
            value[key] = rng.choice(WILD)
    elif isinstance(value, list) and value and rng.random() < 0.5:
        value = value * rng.choice([0, 2, 1000]) if rng.random() < 0.5 else [rng.choice(WILD)] + value[1:]
    elif rng.random() < 0.1:
        return "[" * 5000 + "]" * 5000  # valid JSON nested deeper than Python's recursion limit
    else:
        value = rng.choice(WILD)
    return json.dumps(value)


def model_target(scratch: Path) -> Target:
    """load_model on a tiny `mlp` file (3 classes, 4 hidden units: 13 kB) and its mutations."""
    torch.manual_seed(0)
    args = {"in_channels": 1, "num_classes": 3, "hidden": 4}
    meta = ModelMeta(model="mlp", model_args=args, classes=["a", "b", "c"], mean=0.28, std=0.35,
                     created="2026-01-01T00:00:00+00:00")  # fixed, so that a --seed always makes the same inputs
    seed = save_model(scratch / "seed.safetensors", build_model("mlp", **args), meta).read_bytes()
    tensors, path = load_safetensors(seed), scratch / "input.safetensors"

    def edit(rng: random.Random, data: bytes) -> bytes:
        """The seed with its header edited: a metadata field (re-signed with a valid digest), or a tensor entry."""
        n = struct.unpack("<Q", seed[:8])[0]
        header, body = json.loads(seed[8 : 8 + n]), seed[8 + n :]
        metadata, kind = header["__metadata__"], rng.randrange(5)
        if kind <= 2:  # a ModelMeta field, then the digest recomputed over it, as save_model would
            key = rng.choice([k for k in metadata if k not in NOT_SIGNED])
            if kind == 0:
                metadata[key] = wild_json(rng, metadata[key])
            elif kind == 1:  # another real architecture (its meta build meets mlp's tensors) or other arguments
                metadata["model" if rng.random() < 0.5 else "model_args"] = rng.choice(
                    [json.dumps(rng.choice(list_models())), wild_json(rng, metadata["model_args"])])
            else:  # the field's JSON text itself mutated
                metadata[key] = byte_mutation(rng, metadata[key].encode()).decode("utf-8", "replace")
            metadata["digest"] = checkpoint._digest({k: v for k, v in metadata.items() if k not in NOT_SIGNED}, tensors)
        elif kind == 3:
            metadata[rng.choice(NOT_SIGNED)] = rng.choice(["", "0", "2", "1.0", "²", "-1", "fmnist-model", "sha256:0"])
        else:  # a tensor entry: dtype, shape or offsets changed, or the entry removed or duplicated
            name = rng.choice([k for k in header if k != "__metadata__"])
            entry, change = header[name], rng.choice(["dtype", "shape", "data_offsets", "remove", "copy"])
            if change in entry:
                entry[change] = rng.choice({"dtype": ["F64", "F16", "BF16", "I64", "U8", "BOOL", "F8_E4M3", "C64"],
                                            "shape": [[], [0], entry["shape"][::-1], [*entry["shape"], 1], [2**32] * 2],
                                            "data_offsets": [[rng.choice(BOUNDARY), rng.choice(BOUNDARY)]]}[change])
            elif change == "remove":
                del header[name]
            else:
                header[name + rng.choice(["_", ".0"])] = dict(entry)
        raw = json.dumps(header).encode()
        return struct.pack("<Q", len(raw)) + raw + body

    def run(data: bytes) -> bool:
        path.write_bytes(data)
        try:
            model, _ = load_model(path)
        except DataError:
            return False
        expect(isinstance(model, torch.nn.Module) and not model.training, f"load_model gave {model!r:.200}")
        return True

    return Target("model", [seed], edit, run, edit_share=0.7)


# Images.


def image_edit(rng: random.Random, data: bytes) -> bytes:
    """A PNG with an IHDR field changed and its CRC fixed, a JPEG with a frame field changed, else a byte mutation."""
    b = bytearray(data)
    sof = max(data.find(b"\xff\xc0"), data.find(b"\xff\xc2"))  # JPEG frame: FF Cn, length, precision, H, W, components
    if data[:8] == PNG_MAGIC and data[12:16] == b"IHDR":  # IHDR: width 16, height 20, then 5 one-byte fields, CRC 29
        if rng.random() < 0.5:
            b[(at := rng.choice([16, 20])) : at + 4] = rng.choice([*BOUNDARY, rng.getrandbits(32)]).to_bytes(4, "big")
        else:  # bit depth, colour type, compression, filter, interlace
            b[rng.randrange(24, 29)] = rng.choice([0, 1, 2, 3, 4, 6, 8, 16, 255])
        b[29:33] = zlib.crc32(bytes(b[12:29])).to_bytes(4, "big")
    elif data[:2] == b"\xff\xd8" and sof > 0 and len(b) > sof + 10:
        if rng.random() < 0.8:
            b[(at := rng.choice([sof + 5, sof + 7])) : at + 2] = rng.choice(BOUNDARY[:13]).to_bytes(2, "big")
        else:
            b[sof + 9] = rng.choice([0, 1, 2, 3, 4, 5, 255])
    else:
        return byte_mutation(rng, data)
    return bytes(b)


def image_seeds() -> list[bytes]:
    """Small images in every format Pillow writes here, in the modes photos come in."""
    gen = np.random.default_rng(0)
    ramp = np.tile(np.linspace(0, 255, 30, dtype=np.float32), (20, 1))
    article = np.full((40, 30), 255, np.uint8)
    article[8:32, 6:24] = 55
    rgb = Image.fromarray(gen.integers(0, 256, (17, 23, 3), dtype=np.uint8))
    images = {"L": Image.fromarray(ramp.astype(np.uint8)), "article": Image.fromarray(article), "RGB": rgb,
              "RGBA": Image.fromarray(gen.integers(0, 256, (12, 9, 4), dtype=np.uint8)), "P": rgb.convert("P"),
              "LA": rgb.convert("LA"), "1": rgb.convert("1"), "I;16": Image.fromarray((ramp * 4).astype(np.uint16))}
    formats = [("article", "PNG"), ("L", "PNG"), ("RGB", "PNG"), ("RGBA", "PNG"), ("I;16", "PNG"), ("P", "PNG"),
               ("LA", "PNG"), ("1", "PNG"), ("L", "JPEG"), ("RGB", "JPEG"), ("article", "JPEG"), ("RGB", "GIF"),
               ("RGB", "BMP"), ("RGBA", "WEBP"), ("I;16", "TIFF")]
    seeds = []
    for name, fmt in formats:
        images[name].save(buf := io.BytesIO(), format=fmt)
        seeds.append(buf.getvalue())
    return seeds


def check_image(img: Image.Image) -> bool:
    """prepare(img, mode) for every mode: each must give uint8 [28, 28] or refuse; True if any mode gave one."""
    ok = False
    for mode in MODES:
        try:
            out = prepare(img, mode).image
        except DataError:
            continue
        expect(out.dtype == np.uint8 and out.shape == (28, 28), f"prepare(img, {mode!r}) gave {out.dtype} {out.shape}")
        ok = True
    return ok


def image_target(scratch: Path) -> Target:
    """open_image, then prepare for every mode, on image bytes."""
    def run(data: bytes) -> bool:
        try:
            img = open_image(data, name="<fuzz input>")
        except DataError:
            return False
        return check_image(img)

    return Target("image", image_seeds(), image_edit, run)


def http_target(scratch: Path) -> Target:
    """Whole requests to the web service's predict endpoint (benchmarks.fuzz_http)."""
    from benchmarks.fuzz_http import http_target as make

    return make(scratch, Target, image_seeds, expect)


TARGETS = {"idx": idx_target, "model": model_target, "image": image_target, "http": http_target}


def peak_rss_mb() -> float:
    """The process's peak resident set size so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def _too_slow(signum: int, frame: object) -> None:
    raise TimeoutError("the input ran past the --slow limit")  # an Exception: counted as a crash


def fuzz(target: Target, inputs: int, rng: random.Random, slow: float, out: Path) -> Result:
    """Run `inputs` generated inputs through `target`; count outcomes, save the first crashes of each kind."""
    result, before = Result(target.name), peak_rss_mb()
    signal.signal(signal.SIGALRM, _too_slow)
    warnings.simplefilter("ignore")  # Pillow's on corrupt metadata and numpy's on NaN arithmetic: expected here
    for i in range(inputs):
        data = mutate(rng, target)
        signal.setitimer(signal.ITIMER_REAL, slow)  # SIGALRM -> _too_slow, if the input takes longer
        try:
            result.counts["accepted" if target.run(data) else "refused"] += 1
        except Exception as e:  # every unexpected exception is a finding
            save_crash(result, e, data, out)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        result.counts["tried"] += 1
        if inputs >= 10_000 and (i + 1) % (inputs // 10) == 0:
            print(f"  {target.name}: {i + 1:,} inputs, {result.counts['crashes']} crashes, peak RSS {peak_rss_mb():.0f} MB",
                  flush=True)
    result.peak_rss_mb, result.rss_growth_mb = peak_rss_mb(), peak_rss_mb() - before
    return result


def save_crash(result: Result, error: Exception, data: bytes, out: Path) -> None:
    """Count the crash by kind (type and innermost frame); keep the first KEEP of each kind on disk."""
    frames = traceback.extract_tb(error.__traceback__)
    kind = type(error).__name__ + (f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "")
    result.counts["crashes"] += 1
    result.kinds[kind] += 1
    if result.kinds[kind] <= KEEP:
        out.mkdir(parents=True, exist_ok=True)
        stem = f"{result.target}-crash-{len(result.kinds)}-{result.kinds[kind]}"
        (out / f"{stem}.bin").write_bytes(data)
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        with open(out / "crashes.txt", "a", encoding="utf-8") as f:
            f.write(f"== {stem}: {kind}\n{repr(error)[:2000]}\n{text[-4000:]}\n")


def main(argv: list[str] | None = None) -> None:
    """Fuzz each target; print and save what was found; exit 1 on any crash."""
    parser = kit.parser(__doc__, out_help="folder for crash reports and fuzz.json (default runs/bench/fuzz)")
    parser.add_argument("--target", action="append", choices=sorted(TARGETS), help="a target (default: all)")
    parser.add_argument("--inputs", type=kit.positive, default=None,
                        help=f"inputs per target (default {FULL_INPUTS:,}; {QUICK_INPUTS:,} with --quick)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--slow", type=float, default=10.0, help="seconds after which one input counts as a crash")
    args = parser.parse_args(argv)
    kit.begin(args)
    inputs = args.inputs or (QUICK_INPUTS if args.quick else FULL_INPUTS)
    out = kit.clear_quick(args.out or kit.bench_dir(args.quick) / "fuzz")
    for old in [*out.glob("*-crash-*.bin"), out / "crashes.txt"]:  # the last run's findings only, as in fuzz.json
        old.unlink(missing_ok=True)
    names, results = args.target or list(TARGETS), []
    with tempfile.TemporaryDirectory(prefix="fmnist-fuzz-") as scratch:
        for name in names:
            r = fuzz(TARGETS[name](Path(scratch)), inputs, random.Random(f"{args.seed}-{name}"), args.slow, out)
            results.append(r)
            print(f"{name}: " + ", ".join(f"{r.counts[k]:,} {k}" for k in KEYS) +
                  f"; peak RSS {r.peak_rss_mb:.0f} MB (+{r.rss_growth_mb:.0f} MB)", flush=True)
    print(kit.markdown(["target", "inputs", "accepted", "refused", "crashes", "kinds", "peak RSS MB", "growth MB"],
                       [[r.target, *(f"{r.counts[k]:,}" for k in KEYS), len(r.kinds), f"{r.peak_rss_mb:.0f}",
                         f"{r.rss_growth_mb:.0f}"] for r in results], "lrrrrrrr"))
    for r in results:
        for kind, count in r.kinds.most_common():
            print(f"crash in {r.target}: {kind} ({count}x)")
    crashed = any(r.counts["crashes"] for r in results)
    write_json(out / "fuzz.json", {"inputs_per_target": inputs, "seed": args.seed, "machine": kit.machine(), "date": kit.now(),
                                   "results": [{**r.__dict__, "counts": {k: r.counts[k] for k in KEYS}} for r in results]})
    print(f"summary in {out / 'fuzz.json'}" + (f"; crashes in {out / 'crashes.txt'}" if crashed else ""))
    if crashed:
        sys.exit(1)


if __name__ == "__main__":
    kit.run(main)
