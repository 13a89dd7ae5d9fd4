"""The hostile-input matrix: broken datasets, odd or unreadable images, bad command lines, through the real CLI.

Every case runs twice, plain and with --json, and holds the CLI to one contract:

  * the exit code is 2 for input the user must fix (or 0 where the input is odd but usable: the case says why);
  * a failure is ONE `error:` paragraph on stderr (one sentence naming the problem, with its fix), never a traceback;
  * with --json, stdout is exactly one JSON document; for a failure {"error": {"message": ..., "exit_code": ...}},
    holding the same message as stderr, which keeps it.

`fmnist predict` is the one exception to the error object: it predicts what it can and lists each unreadable file in
its JSON list as {"path": ..., "error": ...} (exit code 2 when any failed), so a batch is never lost to one bad file.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fmnist.checkpoint import save_model
from fmnist.data import FILES, read_idx, write_dataset, write_idx
from fmnist.models import build_model
from tests.helpers import make_split, png_bytes, png_header_only, tiny_meta, tiny_model

ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
needs_non_root = pytest.mark.skipif(ROOT, reason="root reads and writes whatever the permission bits say")

TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS = FILES


def flat(text: str) -> str:
    """`text` with Rich's line wrapping undone."""
    return " ".join(text.split())


def expect(cli, args: list, code: int, needles: tuple[str, ...] = (), predict: bool = False,
           json_args: list | None = None):
    """Run `fmnist ARGS` plain and `fmnist JSON_ARGS --json` (JSON_ARGS defaults to ARGS) and check the contract
    above; return (plain result, JSON document)."""
    args = [str(a) for a in args]
    json_args = args if json_args is None else [str(a) for a in json_args]
    plain = cli(*args)
    both = plain.stdout + plain.stderr
    assert "Traceback" not in both, both
    assert plain.exit_code == code, (args, plain.exit_code, plain.stdout, plain.stderr)
    message = None
    if code:
        message = plain.stderr.strip()
        prefix = "skipped:" if predict else "error:"
        assert message.startswith(prefix), message
        assert message.count(prefix) == 1 and "\n\n" not in message, message  # one paragraph, one failure
        for needle in needles:
            assert needle in flat(message), (needle, message)

    as_json = cli(*json_args, "--json")
    both = as_json.stdout + as_json.stderr
    assert "Traceback" not in both, both
    assert as_json.exit_code == code, (args, as_json.exit_code, as_json.stdout, as_json.stderr)
    doc = json.loads(as_json.stdout)  # exactly one document: json.loads refuses anything after it
    if code and not predict:
        assert set(doc) == {"error"} and set(doc["error"]) == {"message", "exit_code"}, doc
        assert doc["error"]["exit_code"] == code
        assert f"error: {flat(doc['error']['message'])}" == flat(as_json.stderr) == flat(message)
    return plain, doc


# ---------------------------------------------------------------------------------------------------------------
# 1. Data: a dataset directory broken in each way a download, an export script or a file system can break it.


def _rewrite(d: Path, fname: str, array: np.ndarray) -> None:
    write_idx(d / f"{fname}.gz", array, compress=True)


def truncate_images(d: Path) -> None:
    blob = (d / f"{TRAIN_IMAGES}.gz").read_bytes()
    (d / f"{TRAIN_IMAGES}.gz").write_bytes(blob[: len(blob) // 2])  # an interrupted download


def truncate_test_images(d: Path) -> None:
    blob = (d / f"{TEST_IMAGES}.gz").read_bytes()
    (d / f"{TEST_IMAGES}.gz").write_bytes(blob[: len(blob) // 2])


def wrong_magic(d: Path) -> None:
    raw = gzip.decompress((d / f"{TRAIN_IMAGES}.gz").read_bytes())
    (d / f"{TRAIN_IMAGES}.gz").write_bytes(gzip.compress(b"\x12\x34\x56\x78" + raw[4:]))


def labels_3d(d: Path) -> None:
    labels = read_idx(d / f"{TRAIN_LABELS}.gz")
    _rewrite(d, TRAIN_LABELS, labels.reshape(-1, 1, 1))


def images_32x32(d: Path) -> None:
    images = read_idx(d / f"{TRAIN_IMAGES}.gz")
    _rewrite(d, TRAIN_IMAGES, np.pad(images, ((0, 0), (2, 2), (2, 2))))


def count_mismatch(d: Path) -> None:
    labels = read_idx(d / f"{TRAIN_LABELS}.gz")
    _rewrite(d, TRAIN_LABELS, labels[:-1])


def label_12(d: Path) -> None:
    labels = read_idx(d / f"{TRAIN_LABELS}.gz")
    labels[0] = 12
    _rewrite(d, TRAIN_LABELS, labels)


def three_class_names(d: Path) -> None:
    (d / "classes.txt").write_text("shirt\ntrouser\nbag\n")


def twelve_class_names(d: Path) -> None:
    (d / "classes.txt").write_text("".join(f"class {i}\n" for i in range(12)))


def directory_for_file(d: Path) -> None:
    (d / f"{TRAIN_IMAGES}.gz").unlink()
    (d / f"{TRAIN_IMAGES}.gz").mkdir()


def unreadable(d: Path) -> None:
    (d / f"{TRAIN_IMAGES}.gz").chmod(0)


def remove_directory(d: Path) -> None:
    for p in d.iterdir():
        p.unlink()
    d.rmdir()


def empty_directory(d: Path) -> None:
    for p in d.iterdir():
        p.unlink()


def file_for_directory(d: Path) -> None:
    remove_directory(d)
    d.write_text("not a directory\n")


@dataclass(frozen=True)
class DataCase:
    id: str
    breaker: Callable[[Path], None]
    command: str  # info, train or evaluate
    code: int
    needles: tuple[str, ...] = ()
    marks: tuple = ()


FIX = "Fix:"
DATA_CASES = [
    DataCase("missing-dir", remove_directory, "info", 2, ("does not exist", "--data-dir DIR")),
    DataCase("missing-dir", remove_directory, "train", 2, ("does not exist", "--data-dir DIR")),
    DataCase("missing-dir", remove_directory, "evaluate", 2, ("does not exist", "--data-dir DIR")),
    DataCase("data-dir-is-a-file", file_for_directory, "info", 2, ("is a file, not a directory", "--data-dir DIR")),
    DataCase("empty-dir", empty_directory, "info", 2, ("lacks", TRAIN_IMAGES, FIX)),
    DataCase("truncated-images", truncate_images, "info", 2, (TRAIN_IMAGES, "truncated", FIX)),
    DataCase("truncated-images", truncate_images, "train", 2, (TRAIN_IMAGES, "truncated", FIX)),
    DataCase("truncated-test-images", truncate_test_images, "evaluate", 2, (TEST_IMAGES, "truncated", FIX)),
    DataCase("wrong-magic", wrong_magic, "info", 2, (TRAIN_IMAGES, "wrong magic number 0x12345678", FIX)),
    # Wrong dimensions are refused, not guessed at: a 3-D labels file is not labels, and 32x32 images would need a
    # resize the dataset's maker must choose (the fix says how: resize them, or load image files with --dataset folder).
    DataCase("labels-3d", labels_3d, "info", 2, (TRAIN_LABELS, "3 dimensions", "labels files are 0x00000801", FIX)),
    DataCase("images-32x32", images_32x32, "info", 2, (TRAIN_IMAGES, "32x32", "28x28", "--dataset folder")),
    DataCase("images-32x32", images_32x32, "train", 2, (TRAIN_IMAGES, "32x32", "28x28", "--dataset folder")),
    DataCase("count-mismatch", count_mismatch, "info", 2, ("60 images", "59 labels", FIX)),
    DataCase("count-mismatch", count_mismatch, "train", 2, ("60 images", "59 labels", FIX)),
    DataCase("label-12-of-10", label_12, "info", 2, (TRAIN_LABELS, "label 12 out of range", "10 classes", FIX)),
    DataCase("label-12-of-10", label_12, "train", 2, (TRAIN_LABELS, "label 12 out of range", "10 classes", FIX)),
    DataCase("classes-txt-3-names", three_class_names, "info", 2, ("label 9 out of range", "3 classes", "classes.txt")),
    DataCase("classes-txt-3-names", three_class_names, "train", 2, ("label 9 out of range", "3 classes", "classes.txt")),
    # More names than labels is a sensible dataset: the extra classes simply have no images (checked below).
    DataCase("classes-txt-12-names", twelve_class_names, "info", 0),
    DataCase("directory-for-file", directory_for_file, "info", 2, (f"{TRAIN_IMAGES}.gz is a directory", FIX)),
    DataCase("unreadable-file", unreadable, "info", 2, (TRAIN_IMAGES, "cannot be read", "make it readable"),
             (needs_non_root,)),
]


def _data_args(case: DataCase, d: Path, tmp_path: Path) -> list:
    if case.command == "info":
        return ["data", "info", "--dataset", "idx", "--data-dir", d]
    if case.command == "train":
        return ["train", "mlp", "--epochs", "1", "--limit", "50", "--dataset", "idx", "--data-dir", d,
                "--out", tmp_path / "run"]
    model = tmp_path / "model.safetensors"
    classes = [str(i) for i in range(10)]
    net = build_model("test-tiny", in_channels=1, num_classes=10, width=4).eval()
    save_model(model, net, tiny_meta(classes=classes, dataset="idx",
                                     model_args={"in_channels": 1, "num_classes": 10, "width": 4}))
    return ["evaluate", model, "--data-dir", d, "--device", "cpu"]


@pytest.mark.parametrize("case", [pytest.param(c, id=f"{c.id}-{c.command}", marks=c.marks) for c in DATA_CASES])
def test_broken_dataset(cli, tmp_path, case):
    d = tmp_path / "data"
    write_dataset(d, make_split(60, seed=1), make_split(30, seed=2))
    case.breaker(d)
    _, doc = expect(cli, _data_args(case, d, tmp_path), case.code, case.needles)
    assert not (tmp_path / "run").exists()  # a refused dataset trains nothing and leaves no run behind
    if case.id == "classes-txt-12-names":
        assert doc["classes"] == [f"class {i}" for i in range(12)]
        assert doc["splits"]["train"]["per_class"][10:] == [0, 0]


# ---------------------------------------------------------------------------------------------------------------
# 2. Images: `fmnist predict MODEL IMAGE` (auto preprocessing) on unreadable files and on odd but valid formats.


def _noise(h: int, w: int, channels: int | None = None, seed: int = 0) -> np.ndarray:
    shape = (h, w) if channels is None else (h, w, channels)
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def _article(h: int = 64, w: int = 48) -> np.ndarray:
    """A dark rectangle on white: a photo-like image the photo pipeline finds an article in."""
    a = np.full((h, w), 250, np.uint8)
    a[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = 40
    return a


def _save(img: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **options)
    return buf.getvalue()


def _gif() -> bytes:
    first = Image.fromarray(_article())
    second = Image.fromarray(255 - _article())
    return _save(first, "GIF", save_all=True, append_images=[second], duration=100, loop=0)


def _cmyk_jpeg() -> bytes:
    return _save(Image.fromarray(np.dstack([_article()] * 3)).convert("CMYK"), "JPEG")


def _png16() -> bytes:
    img = Image.fromarray(_article().astype(np.uint16) * 16)  # 12-bit values in a 16-bit PNG
    assert img.mode == "I;16"
    data = _save(img, "PNG")
    with Image.open(io.BytesIO(data)) as back:
        assert back.mode == "I;16"
    return data


def _palette_transparent() -> bytes:
    img = Image.fromarray(_article()).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    return _save(img, "PNG", transparency=0)


SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28"><rect width="9" height="9"/></svg>\n'


@dataclass(frozen=True)
class ImageCase:
    id: str
    name: str
    make: Callable[[], bytes]
    code: int
    needles: tuple[str, ...] = ()


IMAGE_CASES = [
    ImageCase("empty", "empty.png", lambda: b"", 2, ("empty.png is empty", "pass a PNG")),
    ImageCase("text", "notes.txt", lambda: b"shopping list: socks, a coat\n", 2, ("notes.txt", "not an image", "pass a PNG")),
    ImageCase("truncated-png", "cut.png", lambda: png_bytes(_noise(28, 28))[:200], 2,
              ("cut.png is corrupt or truncated", "re-export")),
    ImageCase("truncated-jpeg", "cut.jpg", lambda: png_bytes(_noise(64, 64, 3), "JPEG")[:800], 2,
              ("cut.jpg is corrupt or truncated", "re-export")),
    # 30000x30000 declared in 100 bytes: refused from the header, before any pixel is decoded.
    ImageCase("30000x30000-png", "huge.png", lambda: png_header_only(30000, 30000), 2,
              ("huge.png is too large", "downscale it")),
    ImageCase("svg", "drawing.svg", lambda: SVG, 2, ("drawing.svg", "SVG", "convert it to PNG")),
    # Readable odd formats are predicted (exit 0). An animated GIF: its first frame is used.
    ImageCase("animated-gif", "anim.gif", _gif, 0),
    ImageCase("cmyk-jpeg", "cmyk.jpg", _cmyk_jpeg, 0),
    ImageCase("16-bit-png", "deep.png", _png16, 0),  # mode I;16, stretched from its actual range to 0..255
    ImageCase("palette-transparency", "pal.png", _palette_transparent, 0),
    ImageCase("tiff", "scan.tiff", lambda: _save(Image.fromarray(_article()), "TIFF"), 0),
    # A 1x1 image is small, grey-scale and dark at its border: dataset style, so it is simply resized to 28x28.
    ImageCase("1x1", "dot.png", lambda: png_bytes(np.full((1, 1), 30, np.uint8)), 0),
    # 10000x1: a one-pixel line, too thin for the photo pipeline to tell an article from its background, so auto
    # mode stretches it to 28x28 as the dataset mode does (`--preprocess photo` refuses it, saying so).
    ImageCase("10000x1", "line.png", lambda: png_bytes(np.where(np.arange(10000) % 5000 < 2500, 250, 20)
                                                       .astype(np.uint8)[None, :]), 0),
]


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "model.safetensors"
    save_model(path, tiny_model(), tiny_meta())
    return path


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in IMAGE_CASES])
def test_hostile_image(cli, tmp_path, model_file, case):
    image = tmp_path / case.name
    image.write_bytes(case.make())
    _, doc = expect(cli, ["predict", model_file, image, "--device", "cpu"], case.code, case.needles, predict=True)
    assert isinstance(doc, list) and len(doc) == 1 and doc[0]["path"] == str(image)
    if case.code:  # the unreadable file is listed with its reason, naming it
        assert str(image) in doc[0]["error"] and all(n in doc[0]["error"] for n in case.needles)
    else:
        assert "error" not in doc[0] and 0 <= doc[0]["index"] < 3 and doc[0]["preprocess"] in ("dataset", "photo")


def test_animated_gif_uses_its_first_frame(tmp_path):
    from fmnist.imaging import prepare_file

    path = tmp_path / "anim.gif"
    path.write_bytes(_gif())
    first = tmp_path / "first.png"
    first.write_bytes(png_bytes(_article()))
    assert np.array_equal(prepare_file(path, "auto").image, prepare_file(first, "auto").image)


# ---------------------------------------------------------------------------------------------------------------
# 3. Command-line arguments of `fmnist train` and `fmnist cv`.


@dataclass(frozen=True)
class ArgCase:
    id: str
    args: tuple[str, ...]  # after `train mlp --epochs 1` (or the whole cv command); OUT is the output path
    code: int
    needles: tuple[str, ...] = ()
    marks: tuple = ()


HELP = "--help"
ARG_CASES = [
    ArgCase("unknown-recipe", ("train", "resnet-9000", "--epochs", "1"), 2, ("unknown recipe 'resnet-9000'", "known recipes: ")),
    ArgCase("epochs-0", ("train", "mlp", "--epochs", "0"), 2, ("'--epochs'", HELP)),
    ArgCase("epochs-minus-1", ("train", "mlp", "--epochs", "-1"), 2, ("'--epochs'", HELP)),
    ArgCase("batch-size-0", ("train", "mlp", "--epochs", "1", "--batch-size", "0"), 2, ("'--batch-size'", HELP)),
    ArgCase("lr-minus-1", ("train", "mlp", "--epochs", "1", "--lr", "-1"), 2, ("'--lr'", HELP)),
    ArgCase("lr-nan", ("train", "mlp", "--epochs", "1", "--lr", "nan"), 2, ("'--lr'", "greater than or equal to 0", HELP)),
    ArgCase("lr-inf", ("train", "mlp", "--epochs", "1", "--lr", "inf"), 2, ("lr must be a finite number >= 0 (--lr), got inf",)),
    ArgCase("limit-0", ("train", "mlp", "--epochs", "1", "--limit", "0"), 2, ("'--limit'", HELP)),
    # --limit 5 trains on 5 images (a smoke run); a limit over the data's 200 images uses all of them.
    ArgCase("limit-5", ("train", "mlp", "--epochs", "1", "--limit", "5"), 0),
    ArgCase("limit-over-data", ("train", "mlp", "--epochs", "1", "--limit", "100000"), 0),
    ArgCase("cv-folds-1", ("cv", "mlp", "--epochs", "1", "--folds", "1"), 2, ("'--folds'", HELP)),
    ArgCase("cv-folds-over-images", ("cv", "mlp", "--epochs", "1", "--folds", "300"), 2,
            ("--folds 300 is more than the 200 training images", "use fewer folds")),
    ArgCase("out-is-a-file", ("train", "mlp", "--epochs", "1"), 2, ("is a file", "name a directory")),
    ArgCase("out-read-only", ("train", "mlp", "--epochs", "1"), 2, ("locked/run", "permission"), (needs_non_root,)),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in ARG_CASES])
def test_bad_arguments(cli, tmp_path, tiny_data_dir, case):
    out = tmp_path / "out"
    if case.id == "out-is-a-file":
        out.write_text("not a run\n")
    elif case.id == "out-read-only":
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        out = locked / "run"
    args = ["--dataset", "idx", "--data-dir", tiny_data_dir, *case.args, "--out"]
    # A successful run's --json twin gets a run directory of its own (the first one holds a run by then).
    json_out = tmp_path / "out-json" if case.code == 0 else out
    _, doc = expect(cli, [*args, out], case.code, case.needles, json_args=[*args, json_out])
    if case.code:
        assert not (tmp_path / "out-json").exists()
        if case.id != "out-is-a-file":
            assert not out.exists()  # refused before anything was written
    else:
        assert doc["epochs"] == 1 and 0 <= doc["test_accuracy"] <= 1
        config = json.loads((Path(doc["run_dir"]) / "config.json").read_text())
        assert config["options"]["train_images"] == (5 if case.id == "limit-5" else 200)


def test_photo_mode_refuses_an_image_too_thin_for_it(cli, tmp_path, model_file):
    line = tmp_path / "line.png"
    line.write_bytes(png_bytes(np.where(np.arange(10000) % 5000 < 2500, 250, 20).astype(np.uint8)[None, :]))
    _, doc = expect(cli, ["predict", model_file, line, "--preprocess", "photo", "--device", "cpu"], 2,
                    ("line.png", "10000x1 image is too thin", "--preprocess dataset"), predict=True)
    assert doc[0]["path"] == str(line) and "too thin" in doc[0]["error"]


def test_the_installed_entry_point_reads_its_own_command_line(tmp_path):
    """main() with no argv (the `fmnist` script, `python -m fmnist`) detects --json in sys.argv too."""
    import subprocess
    import sys

    env = {**os.environ, "COLUMNS": "200"}
    r = subprocess.run([sys.executable, "-m", "fmnist", "train", "mlp", "--epochs", "0", "--out", str(tmp_path / "run"),
                        "--json"], capture_output=True, text=True, timeout=120, env=env, check=False)
    assert r.returncode == 2 and "Traceback" not in r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["error"]["exit_code"] == 2 and "'--epochs'" in doc["error"]["message"]
    assert flat(r.stderr) == f"error: {flat(doc['error']['message'])}" and not (tmp_path / "run").exists()
