"""The service's endpoints through FastAPI's test client: predictions, the model's facts, health, metrics, the
page, and every kind of bad input answered with a JSON 4xx."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install 'fmnist[serve]')")
from fastapi.testclient import TestClient
from PIL import Image

from fmnist.inference import Predictor
from fmnist.serve import ServeSettings, build_card, create_app
from fmnist.serve.batcher import QueueFull
from tests.helpers import (
    CLASSES,
    make_split,
    png_bytes,
    png_header_only,
    tiny_meta,
    tiny_model,
)


def make_client(settings: ServeSettings | None = None, with_test_set: bool = True) -> TestClient:
    predictor = Predictor(tiny_model(), tiny_meta(), "cpu")
    test = make_split(30, seed=3, num_classes=len(CLASSES))
    test = type(test)(test.images, test.labels, tuple(CLASSES))
    card = build_card(predictor, "tiny.safetensors", test=test if with_test_set else None)
    return TestClient(create_app(predictor, settings or ServeSettings(), card, "tiny.safetensors"))


@pytest.fixture
def client():
    with make_client() as c:
        yield c


def image(seed: int = 0, size: int = 28) -> bytes:
    rng = np.random.default_rng(seed)
    return png_bytes(rng.integers(0, 255, (size, size), dtype=np.uint8))


def assert_error(response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert "Traceback" not in body["error"]["message"]
    return body["error"]["message"]


def test_predicts_one_image_with_probabilities_and_the_confidence_flag(client):
    r = client.post("/v1/predict", files={"image": ("shirt.png", image(), "image/png")})
    assert r.status_code == 200
    body = r.json()
    assert body["classes"] == CLASSES and body["backend"] == "torch"
    (p,) = body["predictions"]
    assert p["filename"] == "shirt.png" and p["preprocess"] == "dataset"
    assert p["name"] == CLASSES[p["index"]]
    assert len(p["probabilities"]) == len(CLASSES) and abs(sum(p["probabilities"]) - 1) < 1e-5
    assert p["probability"] == max(p["probabilities"])
    assert [t["index"] for t in p["top"]][0] == p["index"] and len(p["top"]) == 3
    assert isinstance(p["confident"], bool) and "input_png" not in p


def test_matches_the_predictor_and_keeps_the_order_of_many_images(client):
    files = [("image", (f"img{i}.png", image(i), "image/png")) for i in range(5)]
    body = client.post("/v1/predict?top_k=2", files=files).json()
    assert [p["filename"] for p in body["predictions"]] == [f"img{i}.png" for i in range(5)]
    predictor = Predictor(tiny_model(), tiny_meta(), "cpu")
    expected = predictor.predict_proba(np.stack([np.asarray(Image.open(io.BytesIO(image(i)))) for i in range(5)]))
    got = np.array([p["probabilities"] for p in body["predictions"]])
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert all(len(p["top"]) == 2 for p in body["predictions"])


def test_a_raw_image_body_and_return_input(client):
    photo = np.full((120, 90, 3), 235, np.uint8)  # a dark article on a light background
    photo[20:100, 25:65] = (90, 40, 30)
    r = client.post("/v1/predict?return_input=true&preprocess=photo", content=png_bytes(photo, "JPEG"),
                    headers={"content-type": "image/jpeg"})
    (p,) = r.json()["predictions"]
    assert p["preprocess"] == "photo"
    seen = Image.open(io.BytesIO(base64.b64decode(p["input_png"])))
    assert seen.size == (28, 28) and seen.mode == "L"


def test_top_k_larger_than_the_classes_is_clipped(client):
    (p,) = client.post("/v1/predict?top_k=50", files={"image": ("a.png", image(), "image/png")}).json()["predictions"]
    assert len(p["top"]) == len(CLASSES)


@pytest.mark.parametrize("body, status, code", [
    (None, 400, "bad_request"),  # no body at all
    (b"", 422, "bad_image"),  # an empty file part: an image that cannot be used, like a broken one
    (b"this is not an image", 422, "bad_image"),
    (image()[:60], 422, "bad_image"),  # a truncated PNG
    (png_header_only(20000, 20000), 413, "image_too_large"),  # 400M pixels, a few hundred bytes
])
def test_bad_images_get_a_json_4xx(client, body, status, code):
    if body is None:
        r = client.post("/v1/predict", content=b"", headers={"content-type": "application/octet-stream"})
    else:
        r = client.post("/v1/predict", files={"image": ("x.png", body, "image/png")})
    assert_error(r, status, code)


def test_truncated_jpeg_and_multipart_without_files(client):
    jpeg = png_bytes(np.zeros((40, 40, 3), np.uint8), "JPEG")
    assert_error(client.post("/v1/predict", files={"image": ("x.jpg", jpeg[: len(jpeg) // 2], "image/jpeg")}), 422, "bad_image")
    assert_error(client.post("/v1/predict", data={"note": "hello"}, files={"x": (None, b"text")}), 400, "bad_request")


def test_too_many_images_and_too_many_bytes():
    settings = ServeSettings(max_images=3, max_request_bytes=4096)
    with make_client(settings) as c:
        files = [("image", (f"{i}.png", image(i, 8), "image/png")) for i in range(4)]
        assert "at most 3" in assert_error(c.post("/v1/predict", files=files), 413, "too_many_images")
        big = np.random.default_rng(0).integers(0, 255, (100, 100), dtype=np.uint8)
        assert_error(c.post("/v1/predict", files={"image": ("big.png", png_bytes(big), "image/png")}), 413,
                     "request_too_large")
        # A body with no Content-Length (chunked) is cut off once it passes the limit.
        chunks = iter([b"\x89PNG" + b"\0" * 3000, b"\0" * 3000, b"\0" * 3000])
        assert_error(c.post("/v1/predict", content=chunks, headers={"content-type": "image/png"}), 413,
                     "request_too_large")
        assert c.get("/healthz").status_code == 200  # still up


@pytest.mark.parametrize("query, fragment", [
    ("preprocess=sharpen", "unknown preprocessing mode"),
    ("top_k=0", "top_k"),
    ("top_k=abc", "top_k"),
    ("return_input=maybe", "return_input"),
    ("top_k=%C2%B2", "top_k"),  # a superscript two: a digit to str.isdigit, not to int()
    ("x=1", "unknown query parameter"),
])
def test_bad_query_parameters(client, query, fragment):
    r = client.post(f"/v1/predict?{query}", files={"image": ("a.png", image(), "image/png")})
    assert fragment in assert_error(r, 400, "bad_request")


def test_other_content_types_methods_and_paths(client):
    assert_error(client.post("/v1/predict", content=b"{}", headers={"content-type": "application/json"}), 415,
                 "unsupported_media_type")
    assert_error(client.post("/v1/predict", content=b"--x\r\n", headers={"content-type": "multipart/form-data"}),
                 400, "bad_request")
    assert_error(client.get("/v1/predict"), 405, "method_not_allowed")
    assert_error(client.get("/etc/passwd"), 404, "not_found")
    assert_error(client.post("/v1/predict", content=b"1", headers={"content-type": "image/png",
                                                                   "content-length": "abc"}), 400, "bad_request")
    # A trailing slash is another path: a JSON 404, not a redirect a client may not follow.
    assert_error(client.post("/v1/predict/", content=image(), headers={"content-type": "image/png"},
                             follow_redirects=False), 404, "not_found")


def test_head_is_answered_as_get_without_a_body(client):
    for path in ("/", "/healthz", "/v1/model", "/static/app.js", "/metrics"):
        get, head = client.get(path), client.head(path)
        assert head.status_code == 200 and head.content == b"", path
        assert head.headers["content-type"] == get.headers["content-type"]
    assert client.head("/v1/predict").status_code == 405  # POST only


def test_made_up_paths_do_not_grow_the_metrics(client):
    for i in range(5):
        client.get(f"/static/made-up-{i}")
        client.get(f"/nowhere/{i}")
    text = client.get("/metrics").text
    assert "made-up" not in text and "nowhere" not in text
    assert re.search(r'fmnist_requests_total\{endpoint="other",status="404"\} 10\.0', text)
    client.get("/static/app.js")
    assert 'endpoint="/static/app.js"' in client.get("/metrics").text


def test_a_full_queue_answers_503_with_retry_after(client, monkeypatch):
    async def full(images):
        raise QueueFull()

    monkeypatch.setattr(client.app.state.service.batcher, "submit", full)
    r = client.post("/v1/predict", files={"image": ("a.png", image(), "image/png")})
    assert_error(r, 503, "overloaded")
    assert r.headers["retry-after"] == "1"


def test_model_card_gallery_health_and_readiness(client):
    info = client.get("/v1/model").json()
    assert info["classes"] == CLASSES and info["test_accuracy"] == pytest.approx(0.9121)
    assert info["dataset"] == "fashion-mnist" and info["backend"] == "torch" and info["recipe"] == "tiny"
    assert info["limits"]["max_images"] == ServeSettings().max_images and info["version"]
    assert info["changes"] == [] and info["train_images"] is None  # not a catalogue recipe, not a run directory
    card = client.get("/v1/card").json()
    assert np.asarray(card["confusion_matrix"]).shape == (3, 3) and np.sum(card["confusion_matrix"]) == 30
    assert "measured at start-up" in card["source"]
    items = client.get("/v1/gallery").json()["items"]
    assert len(items) == 2 * len(CLASSES) and {i["name"] for i in items} == set(CLASSES)
    assert Image.open(io.BytesIO(base64.b64decode(items[0]["png"]))).size == (28, 28)
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


def test_without_a_test_set_the_card_says_so_and_the_gallery_is_empty():
    with make_client(with_test_set=False) as c:
        assert c.get("/v1/card").json()["confusion_matrix"] is None
        assert c.get("/v1/gallery").json() == {"items": []}


def test_metrics_count_requests_latency_batches_and_queue(client):
    client.post("/v1/predict", files={"image": ("a.png", image(), "image/png")})
    client.post("/v1/predict", content=b"nope", headers={"content-type": "image/png"})
    text = client.get("/metrics").text
    assert re.search(r'fmnist_requests_total\{endpoint="/v1/predict",status="200"\} 1\.0', text)
    assert re.search(r'fmnist_requests_total\{endpoint="/v1/predict",status="422"\} 1\.0', text)
    assert "fmnist_request_latency_seconds_bucket" in text and "fmnist_batch_size_images_bucket" in text
    assert re.search(r"^fmnist_queue_depth 0\.0$", text, re.MULTILINE)
    assert re.search(r"^fmnist_images_total [1-9]", text, re.MULTILINE)  # the warm-up's and the request's images


def test_docs_openapi_and_the_page_load_nothing_from_outside(client):
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert "multipart/form-data" in json.dumps(schema["paths"]["/v1/predict"]["post"])
    for path in ("/", "/static/app.js", "/static/style.css"):
        r = client.get(path)
        assert r.status_code == 200 and "default-src 'self'" in r.headers["content-security-policy"]
        assert not re.search(r"(src|href)=[\"']?(https?:)?//", r.text), f"{path} refers to another site"
        assert "fetch(\"http" not in r.text and "fetch('http" not in r.text
    page = client.get("/").text
    assert 'capture="environment"' in page and 'type="file"' in page and "multiple" in page


def test_an_image_that_fails_among_several_gets_its_own_error_and_the_rest_are_answered(client):
    files = [("image", ("a.png", image(1), "image/png")), ("image", ("broken.png", b"not an image", "image/png")),
             ("image", ("empty.png", b"", "image/png")), ("image", ("b.png", image(2), "image/png"))]
    r = client.post("/v1/predict", files=files)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [p["filename"] for p in body["predictions"]] == ["a.png", "broken.png", "empty.png", "b.png"]
    assert body["failed"] == 2
    a, broken, empty, b = body["predictions"]
    assert broken["error"]["code"] == "bad_image" and broken["error"]["status"] == 422
    assert "image 2" in broken["error"]["message"]
    assert empty["error"]["code"] == "bad_image" and "empty" in empty["error"]["message"]
    alone = [client.post("/v1/predict", files={"image": (n, d, "image/png")}).json()["predictions"][0]
             for n, d in (("a.png", image(1)), ("b.png", image(2)))]
    np.testing.assert_allclose([a["probabilities"], b["probabilities"]], [x["probabilities"] for x in alone], atol=1e-6)
    # When none of them can be used, the request fails with the first one's error.
    r = client.post("/v1/predict", files=files[1:3])
    assert_error(r, 422, "bad_image")


def test_an_image_sent_as_a_plain_field_named_image_is_taken(client):
    # `curl -F 'image=<shirt.png'` sends the bytes as a field without a file name.
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\n".encode() + image(4)
            + f"\r\n--{boundary}--\r\n".encode())
    r = client.post("/v1/predict", content=body, headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 200, r.text
    (p,) = r.json()["predictions"]
    assert p["filename"] == "image" and len(p["probabilities"]) == len(CLASSES)


def test_a_multipart_body_cut_short_is_a_400_not_a_bad_image(client):
    boundary = "b0undary"
    whole = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n"
             "Content-Type: image/png\r\n\r\n").encode() + image(5) + f"\r\n--{boundary}--\r\n".encode()
    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    assert client.post("/v1/predict", content=whole, headers=headers).status_code == 200
    message = assert_error(client.post("/v1/predict", content=whole[:-40], headers=headers), 400, "bad_request")
    assert "incomplete" in message and "closing boundary" in message


def test_decoding_past_the_deadline_answers_503_and_stops_before_the_next_image(monkeypatch):
    import fmnist.serve.app as app_module

    prepared = []
    real = app_module._prepare

    def slow(upload, *args):
        prepared.append(upload.filename)
        import time

        time.sleep(0.3)
        return real(upload, *args)

    monkeypatch.setattr(app_module, "_prepare", slow)
    with make_client(ServeSettings(request_timeout_s=0.5)) as c:
        # Large enough (bytes) to be decoded in the worker pool rather than on the event loop.
        big = np.random.default_rng(0).integers(0, 255, (200, 200), dtype=np.uint8)
        files = [("image", (f"{i}.png", png_bytes(big), "image/png")) for i in range(8)]
        message = assert_error(c.post("/v1/predict", files=files), 503, "overloaded")
        assert "not decoded within 0.5 s" in message
        import time

        time.sleep(1.0)  # the worker, past the deadline, takes no further image (without the check: 5 by now)
        assert 1 <= len(prepared) <= 2, prepared
        assert c.get("/healthz").status_code == 200


def test_eps_and_other_formats_outside_the_list_are_not_decoded(client):
    # EPS would be handed to Ghostscript: Pillow never tries that plugin here.
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\nshowpage\n"
    message = assert_error(client.post("/v1/predict", content=eps, headers={"content-type": "image/eps"}), 422,
                           "bad_image")
    assert "Ghostscript" not in message and "format read here" in message


def test_max_pixels_above_pillows_limit_is_refused_at_start():
    from fmnist.errors import UsageError

    with pytest.raises(UsageError, match="--max-pixels must be between 1 and"):
        ServeSettings(max_pixels=Image.MAX_IMAGE_PIXELS + 1)
    assert ServeSettings(max_pixels=Image.MAX_IMAGE_PIXELS).max_pixels == Image.MAX_IMAGE_PIXELS
