"""The page in a real browser: headless Chromium (Debian's, driven by Playwright) uploads an image and sees the
predicted class, the model's 28x28 view and the probability bars; a gallery image predicts too, on a phone-sized
screen. Skips when Playwright or Chromium is absent (CI installs both)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install 'fmnist[serve]')")
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")

from fmnist.inference import Predictor
from fmnist.serve import ServeSettings, build_card, create_app
from fmnist.serve.server import running
from tests.helpers import CLASSES, make_split, png_bytes, tiny_meta, tiny_model

CHROMIUM = os.environ.get("FMNIST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
WAIT = 30_000  # ms: generous, since on 2 busy cores the first prediction can take seconds
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")


@pytest.fixture
def served():
    predictor = Predictor(tiny_model(), tiny_meta(), "cpu")
    split = make_split(12, seed=4, num_classes=len(CLASSES))
    test = type(split)(split.images, split.labels, tuple(CLASSES))
    app = create_app(predictor, ServeSettings(), build_card(predictor, "tiny.safetensors", test=test), "tiny")
    with running(app) as url:
        yield url, predictor


def test_upload_shows_the_prediction_and_bars_then_a_gallery_image(served, tmp_path):
    url, predictor = served
    rng = np.random.default_rng(5)
    upload = rng.integers(0, 255, (28, 28), dtype=np.uint8)
    (tmp_path / "upload.png").write_bytes(png_bytes(upload))
    expected = CLASSES[int(predictor.predict_proba(upload[None]).argmax())]
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=60_000)
        try:
            for name, viewport in (("desktop", {"width": 1100, "height": 900}), ("phone", {"width": 380, "height": 800})):
                page = browser.new_page(viewport=viewport)
                page.set_default_timeout(WAIT)
                errors: list[str] = []
                page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
                page.on("requestfailed", lambda r, errors=errors: errors.append(f"request failed: {r.url}"))
                page.goto(url + "/")
                page.wait_for_selector("#card dd")  # the model card loaded
                page.set_input_files("#files", str(tmp_path / "upload.png"))
                # expect() retries until the page shows it (or the timeout passes), so no step races the page.
                sync_api.expect(page.locator(".result .name")).to_have_text(expected, timeout=WAIT)
                sync_api.expect(page.locator(".result .bar")).to_have_count(len(CLASSES), timeout=WAIT)
                assert page.locator(".result img.seen").get_attribute("src").startswith("data:image/png;base64,")
                page.locator(".gallery button").first.focus()
                page.keyboard.press("Enter")  # by keyboard
                sync_api.expect(page.locator(".result")).to_have_count(2, timeout=WAIT)
                sync_api.expect(page.locator("#confusion table tr")).to_have_count(len(CLASSES) + 1, timeout=WAIT)
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= viewport["width"], f"the page is wider ({width}px) than the {name} screen"
                shot = tmp_path / f"page-{name}.png"
                page.screenshot(path=str(shot), full_page=True)
                print(f"screenshot: {shot}")
                assert not errors, errors
                page.close()
        finally:
            browser.close()


def test_several_files_read_in_the_order_chosen_and_one_that_fails_says_why(served, tmp_path):
    url, _ = served
    rng = np.random.default_rng(6)
    for name in ("first.png", "third.png"):
        (tmp_path / name).write_bytes(png_bytes(rng.integers(0, 255, (28, 28), dtype=np.uint8)))
    (tmp_path / "second.png").write_bytes(b"not an image")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=60_000)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.set_default_timeout(WAIT)
            page.goto(url + "/")
            page.wait_for_selector("#card dd")
            page.set_input_files("#files", [str(tmp_path / n) for n in ("first.png", "second.png", "third.png")])
            sync_api.expect(page.locator(".result")).to_have_count(3, timeout=WAIT)
            alts = [page.locator(".result").nth(i).locator("img").first.get_attribute("alt") for i in range(3)]
            assert alts == ["your image first.png", "your image second.png", "your image third.png"]
            assert "second.png" in page.locator(".result").nth(1).locator(".error").inner_text()
            assert "1 could not be used" in page.locator("#status").inner_text()
        finally:
            browser.close()
