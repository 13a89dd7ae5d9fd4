"""Predictor and evaluate: probabilities, flip TTA, image files, and exact reproduction from a saved model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from fmnist.checkpoint import save_model
from fmnist.errors import DataError
from fmnist.data.transforms import normalize
from fmnist.inference import Predictor, evaluate
from tests.helpers import CLASSES, tiny_meta, tiny_model


def images(n: int, seed: int = 0) -> np.ndarray:
    """n random uint8 images [n, 28, 28]: asymmetric, so a mirror changes them."""
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)


@pytest.fixture
def predictor() -> Predictor:
    return Predictor(tiny_model(), tiny_meta())


def test_probabilities_are_distributions(predictor):
    p = predictor.predict_proba(images(10))
    assert p.shape == (10, len(CLASSES)) and p.dtype == np.float32
    assert np.allclose(p.sum(axis=1), 1.0, atol=1e-6) and (p >= 0).all()


def test_normalization_comes_from_meta(predictor):
    x = images(4)
    expected = predictor.model(normalize(torch.from_numpy(x), 0.2860, 0.3530)).detach()
    assert torch.allclose(torch.from_numpy(predictor.predict_logits(x)), expected)
    white = normalize(torch.full((1, 2, 2), 255, dtype=torch.uint8), mean=0.5, std=0.25)
    assert white.shape == (1, 1, 2, 2) and (white == 2.0).all()  # (1 - 0.5) / 0.25


def test_batch_size_does_not_change_the_answer(predictor):
    x = images(10)
    assert np.allclose(predictor.predict_proba(x, batch_size=3), predictor.predict_proba(x), atol=1e-6)


def test_empty_batch(predictor):
    assert predictor.predict_proba(np.zeros((0, 28, 28), np.uint8)).shape == (0, len(CLASSES))


def test_flip_tta_averages_image_and_mirror():
    model = tiny_model()
    plain = Predictor(model, tiny_meta())
    tta = Predictor(model, tiny_meta(recipe={"name": "tiny", "tta_flip": True}))
    assert tta.tta_flip and not plain.tta_flip
    x = images(6)
    mirrored = x[:, :, ::-1].copy()
    assert not np.allclose(tta.predict_proba(x), plain.predict_proba(x))
    expected = (plain.predict_logits(x) + plain.predict_logits(mirrored)) / 2
    assert np.allclose(tta.predict_logits(x), expected, atol=1e-5)
    # With TTA an image and its mirror are the same input.
    assert np.allclose(tta.predict_proba(x), tta.predict_proba(mirrored), atol=1e-5)


def test_training_mode_is_restored(predictor):
    predictor.model.train()
    predictor.predict_proba(images(2))
    assert predictor.model.training


def test_wrong_image_shape_or_dtype(predictor):
    with pytest.raises(DataError, match=r"uint8 \[N, 28, 28\]"):
        predictor.predict_proba(np.zeros((2, 32, 32), np.uint8))
    with pytest.raises(DataError, match="float32"):
        predictor.predict_proba(np.zeros((2, 28, 28), np.float32))


def test_predict_files(tmp_path, predictor):
    x = images(3)
    paths = []
    for i, img in enumerate(x):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(img).save(paths[-1])
    preds, failed = predictor.predict_files(paths)
    probs = predictor.predict_proba(x)  # 28x28 PNGs load pixel for pixel (auto: dataset mode)
    assert failed == [] and {p.preprocess for p in preds} == {"dataset"}
    assert [p.path for p in preds] == [str(p) for p in paths]
    for pred, p in zip(preds, probs):
        assert len(pred.top) == 3
        assert [t[2] for t in pred.top] == sorted((t[2] for t in pred.top), reverse=True)
        assert (pred.index, pred.name, pred.probability) == pred.top[0]
        assert pred.index == int(p.argmax()) and pred.name == CLASSES[pred.index]
        assert pred.probability == pytest.approx(float(p.max()))
    d = preds[0].to_dict()
    assert d["top"][0] == {"index": preds[0].index, "name": preds[0].name, "probability": preds[0].probability}


def test_predict_files_bad_file_names_it_and_the_others_are_predicted(tmp_path, predictor):
    (tmp_path / "notes.png").write_text("not a picture")
    Image.fromarray(images(1)[0]).save(tmp_path / "good.png")
    preds, failed = predictor.predict_files([tmp_path / "notes.png", tmp_path / "good.png"])
    assert [p.path for p in preds] == [str(tmp_path / "good.png")]
    assert len(failed) == 1 and failed[0][0] == str(tmp_path / "notes.png") and "notes.png" in failed[0][1]


def test_evaluate(predictor):
    x, y = images(20), np.arange(20) % len(CLASSES)
    result = evaluate(predictor, x, y)
    logits = torch.from_numpy(predictor.predict_logits(x))
    assert np.array_equal(result["y_pred"], logits.argmax(1).numpy())
    assert result["accuracy"] == pytest.approx(float((result["y_pred"] == y).mean()))
    assert result["loss"] == pytest.approx(float(F.cross_entropy(logits, torch.from_numpy(y))))
    assert result["y_prob"].shape == (20, len(CLASSES))


def test_saved_model_reproduces_evaluation_exactly(tmp_path, predictor):
    x, y = images(50, seed=1), np.arange(50) % len(CLASSES)
    before = evaluate(predictor, x, y)
    save_model(tmp_path / "run" / "model.safetensors", predictor.model, predictor.meta)
    after = evaluate(Predictor.from_file(tmp_path / "run"), x, y)
    assert after["accuracy"] == before["accuracy"] and after["loss"] == before["loss"]
    assert np.array_equal(after["y_prob"], before["y_prob"])


def test_evaluate_rejects_mismatched_labels(predictor):
    with pytest.raises(DataError, match="labels"):
        evaluate(predictor, images(4), np.zeros(3, np.int64))
    with pytest.raises(DataError, match="3 classes"):
        evaluate(predictor, images(4), np.array([0, 1, 2, 7]))
