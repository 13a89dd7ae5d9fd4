"""ONNX export and the ONNX Runtime backend: BatchNorm folding, parity with PyTorch, metadata, and the CLI."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from fmnist.checkpoint import ModelMeta, save_model
from fmnist.inference import model_confidence
from fmnist.errors import DataError, UsageError
from fmnist.export import (
    OnnxPredictor,
    count_batchnorm,
    export_onnx,
    export_onnx_bytes,
    fold_batchnorm,
    load_predictor,
    verify,
)
from fmnist.inference import Predictor
from fmnist.models import MODELS, build_model
from tests.helpers import TinyNet, make_split, tiny_meta, tiny_model

onnx = pytest.importorskip("onnx")  # the `onnx` extra: pip install 'fmnist[onnx]'
pytest.importorskip("onnxruntime")

TTA = {"recipe": {"name": "tiny", "tta_flip": True}}


def images(n: int, seed: int = 0) -> np.ndarray:
    """n random uint8 images [n, 28, 28]: asymmetric, so a mirror changes them."""
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """`model` in eval mode with random positive BN scales, random shifts and random running statistics."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) - 0.5)
                m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
    return model.eval()


def with_props(data: bytes, **props: str) -> bytes:
    """The ONNX model `data` with metadata entries set (an empty string removes one)."""
    proto = onnx.load_from_string(data)
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key not in props]
    del proto.metadata_props[:]
    for key, value in kept + [(k, v) for k, v in props.items() if v]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()


@pytest.fixture(scope="module")
def exported():
    """{(input_type, tta_flip): (torch Predictor, ONNX bytes)} for the tiny model, exported once for the module."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(MODELS, "test-tiny", TinyNet)
        model = tiny_model()
    out = {}
    for tta in (False, True):
        meta = tiny_meta(**TTA) if tta else tiny_meta()
        for input_type in ("uint8", "float"):
            out[input_type, tta] = (Predictor(model, meta), export_onnx_bytes(model, meta, input_type))
    return out


def idx_model(path, seed: int = 0):
    """A tiny model for the tiny IDX dataset's ten classes, saved at `path`; returns (path, model, meta)."""
    torch.manual_seed(seed)
    model = build_model("test-tiny", in_channels=1, num_classes=10, width=4).eval()
    meta = tiny_meta(model_args={"in_channels": 1, "num_classes": 10, "width": 4},
                     classes=[str(c) for c in range(10)], dataset="idx", **TTA)
    save_model(path, model, meta)
    return path, model, meta


# --- BatchNorm folding ---------------------------------------------------------------------------------------

def test_folding_keeps_every_registered_architecture_s_output():
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    for name in sorted(MODELS):
        model = randomize_batchnorm(build_model(name, in_channels=1, num_classes=10))
        folded, count, remaining = fold_batchnorm(model)
        assert count + remaining == count_batchnorm(model), name
        with torch.no_grad():
            expected, got = model(x), folded(x)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5, msg=name)
        assert model.training is False and count_batchnorm(model) == count + remaining  # the original is untouched


def test_resnet_folds_every_batchnorm_across_the_stage_pool():
    model = randomize_batchnorm(build_model("resnet", in_channels=1, num_classes=10, stem=8, widths=[8, 16],
                                            blocks=[1, 0]))
    folded, count, remaining = fold_batchnorm(model)
    assert remaining == 0 and count == count_batchnorm(model) == 5  # stem, 2 stages, 1 block (2)
    assert folded.stem[0].bias is not None  # a conv without bias gets one


def test_a_pool_batchnorm_with_a_negative_scale_is_left_alone():
    model = randomize_batchnorm(nn.Sequential(nn.Conv2d(1, 3, 3), nn.MaxPool2d(2), nn.BatchNorm2d(3),
                                              nn.Flatten(), nn.Linear(3 * 13 * 13, 5), nn.BatchNorm1d(5)))
    with torch.no_grad():
        model[2].weight[1] = -0.7  # max does not commute with a decreasing map
    folded, count, remaining = fold_batchnorm(model)
    assert (count, remaining) == (1, 1) and isinstance(folded[2], nn.BatchNorm2d) and isinstance(folded[5], nn.Identity)
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), atol=1e-5, rtol=1e-5)


# --- parity, batch axis, metadata ----------------------------------------------------------------------------

@pytest.mark.parametrize("tta", [False, True])
@pytest.mark.parametrize("input_type", ["uint8", "float"])
def test_onnx_runtime_matches_pytorch(exported, input_type, tta):
    torch_predictor, data = exported[input_type, tta]
    ort = OnnxPredictor(data)
    assert ort.input_type == input_type and ort.tta_flip is tta and ort.backend == "onnx"
    assert ort.session.get_inputs()[0].type == ("tensor(uint8)" if input_type == "uint8" else "tensor(float)")
    x = images(64)
    diff, agreement, n = verify(ort, torch_predictor, x)
    assert diff < 1e-5 and agreement == 1.0 and n == 64
    np.testing.assert_allclose(ort.predict_logits(x), torch_predictor.predict_logits(x), atol=1e-4)


def test_flip_tta_in_the_graph_changes_the_answer(exported):
    x = images(16)
    plain, tta = OnnxPredictor(exported["uint8", False][1]), OnnxPredictor(exported["uint8", True][1])
    assert not np.allclose(plain.predict_proba(x), tta.predict_proba(x), atol=1e-4)


def test_the_batch_axis_is_dynamic(exported):
    torch_predictor, data = exported["uint8", True]
    ort = OnnxPredictor(data)
    for n in (1, 3, 17):
        x = images(n, seed=n)
        p = ort.predict_proba(x)
        assert p.shape == (n, 3) and np.abs(p - torch_predictor.predict_proba(x)).max() < 1e-5
    assert ort.predict_proba(images(17), batch_size=5).shape == (17, 3)
    assert ort.predict_proba(np.zeros((0, 28, 28), np.uint8)).shape == (0, 3)
    with pytest.raises(DataError, match="uint8"):
        ort.predict_proba(np.zeros((2, 32, 32), np.uint8))


def test_the_meta_travels_in_the_file(exported):
    torch_predictor, data = exported["float", True]
    meta, ort = torch_predictor.meta, OnnxPredictor(data)
    assert ort.meta == meta and isinstance(ort.meta, ModelMeta) and ort.meta.tta_flip
    props = {p.key: p.value for p in onnx.load_from_string(data).metadata_props}
    assert json.loads(props["classes"]) == meta.classes and props["input_type"] == "float"
    assert float(props["mean"]) == meta.mean and float(props["std"]) == meta.std
    assert props["producer"].startswith("fmnist ") and "verified" not in props
    # Whoever deploys the file without fmnist is told not to normalize again, and what "not confident" means here.
    assert props["normalization"] == "in_graph" and "Feed raw pixels" in props["input"]
    assert "float32 pixels 0..1" in props["input"] and "[N, 28, 28]" in props["input"]
    model = onnx.load_from_string(data)
    assert model.doc_string == props["input"]
    expected = model_confidence(meta)
    assert float(props["confidence_threshold"]) == expected


def test_export_onnx_writes_verifies_and_refuses_to_overwrite(tmp_path):
    model, meta = tiny_model(), tiny_meta()
    path = tmp_path / "tiny.onnx"
    report = export_onnx(model, meta, path, verify_images=images(50), verify_source="random")
    assert path.stat().st_size == report.size_bytes and (report.folded_bn, report.remaining_bn) == (0, 1)
    assert report.verification.n == 50 and report.verification.agree == 50
    ort = OnnxPredictor(path)
    assert ort.verified["agree"] == 50 and ort.verified["max_abs_prob_diff"] < 1e-5 and ort.path == path
    with pytest.raises(UsageError, match="--overwrite"):
        export_onnx(model, meta, path)
    export_onnx(model, meta, path, overwrite=True)
    assert OnnxPredictor(path).verified is None
    with pytest.raises(UsageError, match=r"\.onnx"):
        export_onnx(model, meta, tmp_path / "model.safetensors")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_files_fmnist_did_not_export_are_refused_with_a_sentence(exported, tmp_path):
    data = exported["uint8", False][1]
    with pytest.raises(DataError, match="not a valid ONNX model"):
        OnnxPredictor(b"\x89PNG\r\n\x1a\n not a model")
    with pytest.raises(DataError, match="no 'fmnist_meta'"):
        OnnxPredictor(with_props(data, fmnist_meta=""))
    with pytest.raises(DataError, match="not a JSON object"):
        OnnxPredictor(with_props(data, fmnist_meta="{not json"))
    fields = tiny_meta().to_dict()
    del fields["classes"]
    with pytest.raises(DataError, match="classes"):
        OnnxPredictor(with_props(data, fmnist_meta=json.dumps(fields)))
    with pytest.raises(DataError, match="input_type"):
        OnnxPredictor(with_props(data, input_type="int16"))
    with pytest.raises(DataError, match="does not exist"):
        OnnxPredictor(tmp_path / "missing.onnx")


def test_load_predictor_picks_the_backend(exported, tmp_path):
    path, _, meta = idx_model(tmp_path / "model.safetensors")
    (tmp_path / "model.onnx").write_bytes(exported["uint8", False][1])
    assert isinstance(load_predictor(path), Predictor)
    ort = load_predictor(path, backend="onnx")
    assert isinstance(ort, OnnxPredictor) and ort.meta == meta
    assert isinstance(load_predictor(tmp_path / "model.onnx", backend="onnx"), OnnxPredictor)
    with pytest.raises(UsageError, match="--backend onnx"):
        load_predictor(tmp_path / "model.onnx")
    with pytest.raises(UsageError, match="unknown backend"):
        load_predictor(path, backend="tensorrt")


# --- the command line ----------------------------------------------------------------------------------------

def png_files(directory, n: int = 6) -> list:
    """n test images of the tiny dataset saved as 28x28 PNG files."""
    directory.mkdir()
    test = make_split(n, seed=3)
    paths = [directory / f"img{i}.png" for i in range(n)]
    for image, p in zip(test.images, paths):
        Image.fromarray(image).save(p)
    return paths


def test_export_command_writes_a_verified_file_and_refuses_to_overwrite(cli, tiny_data_dir, tmp_path):
    model, _, _ = idx_model(tmp_path / "model.safetensors")
    out = tmp_path / "model.onnx"
    r = cli("export", model, "--out", out, "--data-dir", tiny_data_dir, "--verify-images", "40")
    assert r.exit_code == 0, r.stderr
    assert "40/40 agree" in r.stdout and "idx test" in r.stdout and "folded" in r.stdout and out.is_file()
    assert OnnxPredictor(out).verified["images"] == "idx test"
    again = cli("export", model, "--out", out)
    assert again.exit_code == 2 and "--overwrite" in again.stderr and "Traceback" not in again.stderr
    r = cli("export", model, "--out", out, "--overwrite", "--input", "float", "--verify-images", "20", "--json")
    assert r.exit_code == 0, r.stderr
    result = json.loads(r.stdout)  # one JSON document, nothing else on stdout
    assert result["input_type"] == "float" and result["verification"]["images"] == "random"
    assert result["verification"]["agree"] == 20 and result["size_bytes"] == out.stat().st_size
    assert OnnxPredictor(out).input_type == "float"
    assert cli("export", model, "--out", tmp_path / "x.onnx", "--format", "tflite").exit_code == 2
    assert cli("export", model, "--out", tmp_path / "x.onnx", "--input", "int8").exit_code == 2
    # A damaged model is named first, not the --out file in the way (which only hid what was wrong).
    (tmp_path / "text.safetensors").write_text("abc")
    damaged = cli("export", tmp_path / "text.safetensors", "--out", out)
    assert damaged.exit_code == 2 and "not a safetensors file" in damaged.stderr, damaged.stderr


def test_export_command_says_when_it_verified_on_random_images(cli, tmp_path):
    model, _, _ = idx_model(tmp_path / "model.safetensors")
    r = cli("export", model, "--verify-images", "10")
    assert r.exit_code == 0, r.stderr
    assert "random images" in r.stdout and "not at hand" in r.stdout and (tmp_path / "model.onnx").is_file()


def test_predict_gives_the_same_classes_on_both_backends(cli, tmp_path):
    model, _, _ = idx_model(tmp_path / "model.safetensors")
    assert cli("export", model, "--verify-images", "0").exit_code == 0
    files = png_files(tmp_path / "images")
    runs = {}
    for backend, path in (("torch", model), ("onnx", tmp_path / "model.onnx"), ("onnx-memory", model)):
        r = cli("predict", path, *files, "--backend", backend.split("-")[0], "--json")
        assert r.exit_code == 0, r.stderr
        runs[backend] = [p["index"] for p in json.loads(r.stdout)]
    assert runs["onnx"] == runs["torch"] == runs["onnx-memory"] and len(runs["torch"]) == len(files)
    # Without --backend an .onnx file runs on ONNX Runtime (it was refused, asking for --backend onnx); the torch
    # backend asked for by name still refuses it with that advice.
    r = cli("predict", tmp_path / "model.onnx", *files, "--json")
    assert r.exit_code == 0, r.stderr
    assert [p["index"] for p in json.loads(r.stdout)] == runs["onnx"]
    r = cli("predict", tmp_path / "model.onnx", *files, "--backend", "torch")
    assert r.exit_code == 2 and "--backend onnx" in r.stderr


def test_evaluate_runs_on_the_onnx_backend(cli, tiny_data_dir, tmp_path):
    model, _, _ = idx_model(tmp_path / "model.safetensors")
    assert cli("export", model, "--verify-images", "0").exit_code == 0
    results = {}
    for backend, path in (("torch", model), ("onnx", tmp_path / "model.onnx")):
        r = cli("--dataset", "idx", "--data-dir", tiny_data_dir, "evaluate", path, "--backend", backend, "--json")
        assert r.exit_code == 0, r.stderr
        results[backend] = json.loads(r.stdout)
    assert results["onnx"]["backend"] == "onnx" and results["torch"]["backend"] == "torch"
    assert results["onnx"]["test_accuracy"] == results["torch"]["test_accuracy"]
    assert abs(results["onnx"]["test_loss"] - results["torch"]["test_loss"]) < 1e-5


def test_a_file_that_is_not_onnx_exits_2_with_a_sentence(cli, tmp_path):
    bad = tmp_path / "photo.onnx"
    Image.new("RGB", (8, 8)).save(bad, format="PNG")
    files = png_files(tmp_path / "images", n=1)
    r = cli("predict", bad, *files, "--backend", "onnx")
    assert r.exit_code == 2 and "not a valid ONNX model" in r.stderr and "Traceback" not in r.stderr
    assert cli("evaluate", bad, "--backend", "onnx").exit_code == 2


def test_a_missing_onnxruntime_says_how_to_install_it(cli, monkeypatch, tmp_path):
    model, _, _ = idx_model(tmp_path / "model.safetensors")
    files = png_files(tmp_path / "images", n=1)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    r = cli("predict", model, *files, "--backend", "onnx")
    message = " ".join(r.stderr.split())
    assert r.exit_code == 2 and "pip install 'fmnist[onnx]'" in message and "Traceback" not in r.stderr
    assert cli("predict", model, *files).exit_code == 0  # the torch backend needs none of it


def test_the_serving_torch_predictor_folds_batchnorm_and_agrees(tmp_path):
    from fmnist.checkpoint import save_model
    from fmnist.export import load_predictor
    from fmnist.export.fold import count_batchnorm

    path = save_model(tmp_path / "m.safetensors", tiny_model(), tiny_meta())
    plain, served = load_predictor(path), load_predictor(path, serving=True)
    images = np.random.default_rng(0).integers(0, 255, (16, 28, 28), dtype=np.uint8)
    np.testing.assert_allclose(served.predict_proba(images), plain.predict_proba(images), atol=1e-5)
    assert count_batchnorm(plain.model) >= 1
    args = {"in_channels": 1, "num_classes": 3, "stem": 8, "widths": [8, 16], "blocks": [1, 1]}
    torch.manual_seed(0)
    resnet = build_model("resnet", **args).eval()
    path = save_model(tmp_path / "r.safetensors", resnet, tiny_meta(model="resnet", model_args=args))
    plain, served = load_predictor(path), load_predictor(path, serving=True)
    assert count_batchnorm(plain.model) > 0 and count_batchnorm(served.model) == 0
    np.testing.assert_allclose(served.predict_proba(images), plain.predict_proba(images), atol=1e-5)
