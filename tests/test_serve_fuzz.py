"""Property test of the service's predict endpoint: whatever the query, content type and body, the answer is a
200 with predictions or a JSON error with a 4xx (or 503) status; never a 5xx. benchmarks/fuzz.py (target http)
runs the same with 100,000 inputs."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install 'fmnist[serve]')")
from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
import numpy as np  # noqa: E402

from fmnist.inference import Predictor  # noqa: E402
from fmnist.serve import ServeSettings, build_card, create_app  # noqa: E402
from tests.helpers import png_bytes, png_header_only, tiny_meta, tiny_model  # noqa: E402

FUZZ = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SEEDS = [png_bytes(np.full((28, 28), 90, np.uint8)), png_bytes(np.zeros((40, 30, 3), np.uint8), "JPEG"),
         png_header_only(5000, 5000), b"GIF89a", b""]


@pytest.fixture(scope="module")
def client():
    from fmnist.models import MODELS
    from tests.helpers import TinyNet

    MODELS.setdefault("test-tiny", TinyNet)  # module-scoped: the per-test registration fixture is not active yet
    predictor = Predictor(tiny_model(), tiny_meta(), "cpu")
    app = create_app(predictor, ServeSettings(max_request_bytes=64 * 1024, max_images=4, max_pixels=1_000_000),
                     build_card(predictor, "tiny"), "tiny")
    with TestClient(app) as c:
        yield c


@st.composite
def bodies(draw):
    """A seed image, cut or with bytes flipped, or random bytes; wrapped in a form with 1-5 parts, or sent raw."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    if data and draw(st.booleans()):
        for _ in range(draw(st.integers(1, 4))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    if draw(st.integers(0, 9)) == 0:
        data = bytearray(draw(st.binary(max_size=300)))
    return bytes(data)


@FUZZ
@given(body=bodies(), parts=st.integers(0, 5), raw=st.booleans(),
       query=st.sampled_from(["", "top_k=2", "top_k=0", "top_k=x", "preprocess=photo", "preprocess=%ff",
                              "return_input=true", "return_input=2", "unknown=1"]),
       content_type=st.sampled_from([None, "image/png", "text/plain", "multipart/form-data",
                                     "multipart/form-data; boundary=" + "b" * 300]))
def test_predict_answers_every_request_with_a_result_or_a_json_4xx(client, body, parts, raw, query, content_type):
    if raw or content_type is not None:
        headers = {"content-type": content_type} if content_type else {}
        r = client.post(f"/v1/predict?{query}", content=body, headers=headers)
    else:
        r = client.post(f"/v1/predict?{query}", files=[("image", (f"{i}.png", body, "image/png")) for i in range(parts)]
                        or {"note": (None, b"x")})
    assert r.status_code < 500 or r.status_code == 503, r.text
    payload = r.json()
    if r.status_code == 200:
        assert all(abs(sum(p["probabilities"]) - 1) < 1e-4 for p in payload["predictions"])
    else:
        assert set(payload) == {"error"} and payload["error"]["message"]
