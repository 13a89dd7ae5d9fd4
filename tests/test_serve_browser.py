"""The page in a real browser: headless Chromium (Debian's, driven by Playwright) uploads an image and sees the
predicted class, the model's 28x28 view and the probability bars; a gallery image predicts too, on a phone-sized
screen. Skips when Playwright or Chromium is absent (CI installs both)."""

from __future__ import annotations

import contextlib
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
DESKTOP = {"width": 1100, "height": 900}


@contextlib.contextmanager
def chromium():
    """Headless Chromium (Debian's, driven by Playwright) for the block."""
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=60_000)
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser, url: str, viewport: dict = DESKTOP):
    """The service's page, loaded with its model card, and the list its script errors and failed requests go to."""
    page = browser.new_page(viewport=viewport)
    page.set_default_timeout(WAIT)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    page.goto(url + "/")
    page.wait_for_selector("#card dd")  # the model card loaded
    return page, errors


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
    with chromium() as browser:
        for name, viewport in (("desktop", DESKTOP), ("phone", {"width": 380, "height": 800})):
            page, errors = open_page(browser, url, viewport)
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


def test_several_files_read_in_the_order_chosen_and_one_that_fails_says_why(served, tmp_path):
    url, _ = served
    rng = np.random.default_rng(6)
    for name in ("first.png", "third.png"):
        (tmp_path / name).write_bytes(png_bytes(rng.integers(0, 255, (28, 28), dtype=np.uint8)))
    (tmp_path / "second.png").write_bytes(b"not an image")
    with chromium() as browser:
        page, _ = open_page(browser, url)
        page.set_input_files("#files", [str(tmp_path / n) for n in ("first.png", "second.png", "third.png")])
        sync_api.expect(page.locator(".result")).to_have_count(3, timeout=WAIT)
        sync_api.expect(page.locator(".result .unshown")).to_have_count(1, timeout=WAIT)  # not an image to show
        yours = page.locator(".result .yours")
        labels = [yours.nth(i).get_attribute("alt") or yours.nth(i).get_attribute("aria-label") for i in range(3)]
        assert labels == ["your image first.png", "your image second.png (cannot be shown)", "your image third.png"]
        assert "second.png" in page.locator(".result").nth(1).locator(".error").inner_text()
        assert "1 could not be used" in page.locator("#status").inner_text()


@pytest.fixture
def served_small():
    """The service with small limits: 2 images and 300 kB a request."""
    predictor = Predictor(tiny_model(), tiny_meta(), "cpu")
    split = make_split(4, seed=4, num_classes=len(CLASSES))
    test = type(split)(split.images, split.labels, tuple(CLASSES))
    settings = ServeSettings(max_request_bytes=300_000, max_images=2)
    with running(create_app(predictor, settings, build_card(predictor, "tiny.safetensors", test=test), "tiny")) as url:
        yield url


def test_files_go_in_requests_within_the_limits_and_the_page_survives_misuse(served_small, tmp_path):
    # Two phone photos over the request limit failed together; a second click sent a second request; a drop beside
    # the drop zone left the page; pasting did nothing; a proxy's HTML error showed a JSON parse error.
    rng = np.random.default_rng(7)
    files = []
    for i in range(3):
        files.append(tmp_path / f"small{i}.png")
        files[-1].write_bytes(png_bytes(rng.integers(0, 255, (28, 28), dtype=np.uint8)))
    files.append(tmp_path / "phone.jpg")  # over the 300 kB a request may hold: scaled down in the page
    files[-1].write_bytes(png_bytes(rng.integers(0, 255, (1200, 1200, 3), dtype=np.uint8), "JPEG"))
    assert files[-1].stat().st_size > 300_000
    files.insert(1, tmp_path / "broken.png")  # too large to send and not an image the page can scale down
    files[1].write_bytes(rng.integers(0, 255, 400_000, dtype=np.uint8).tobytes())
    (tmp_path / "notes.pdf").write_bytes(b"%PDF-1.4 not an image")
    with chromium() as browser:
        page, errors = open_page(browser, served_small)
        posts: list[str] = []
        page.on("request", lambda r: posts.append(r.url) if "/v1/predict" in r.url else None)
        page.keyboard.press("Tab")
        page.keyboard.press("Tab")  # past the drop zone to the file input, whose button shows the focus
        assert page.evaluate("document.activeElement.id") == "files"
        assert page.evaluate("getComputedStyle(document.querySelector('label[for=files]')).outlineStyle") == "solid"
        page.select_option("#mode", "dataset")

        page.set_input_files("#files", [str(f) for f in files])
        sync_api.expect(page.locator("#status")).to_contain_text("Predicted 4 images", timeout=WAIT)
        status = page.locator("#status").inner_text()
        assert "1 could not be used" in status and "1 large image scaled down" in status, status
        assert len(posts) >= 3 and page.locator(".result").count() == 5
        yours = page.locator(".result .yours")
        shown = [(yours.nth(i).get_attribute("alt") or yours.nth(i).get_attribute("aria-label")).split()[2]
                 for i in range(5)]
        assert shown == [f.name for f in files], shown  # in the order chosen, across the requests

        page.evaluate(DROP_ON_FOOTER)  # a PNG and a PDF, dropped beside the drop zone
        sync_api.expect(page.locator("#status")).to_contain_text("Skipped 1 file", timeout=WAIT)
        assert "dropped.png" in page.locator(".result img.yours").first.get_attribute("alt")
        page.evaluate(PASTE)
        sync_api.expect(page.locator(".result")).to_have_count(7, timeout=WAIT)

        page.set_input_files("#files", str(tmp_path / "notes.pdf"))
        sync_api.expect(page.locator(".result .unshown")).to_have_count(2, timeout=WAIT)  # with broken.png
        assert "notes.pdf (cannot be shown)" in page.locator(".unshown").first.get_attribute("aria-label")

        before = len(posts)
        page.locator(".gallery button").first.dblclick()
        sync_api.expect(page.locator(".result")).to_have_count(9, timeout=WAIT)
        page.wait_for_timeout(500)
        assert len(posts) == before + 1, "a double click sent two requests"

        assert not errors, errors
        page.route("**/v1/predict**", lambda route: route.fulfill(status=502, body="<html>Bad Gateway</html>",
                                                                 content_type="text/html"))
        page.locator(".gallery button").nth(1).click()
        sync_api.expect(page.locator("#status")).to_contain_text("answered 502", timeout=WAIT)
        page.unroute("**/v1/predict**")
        page.route("**/v1/predict**", lambda route: route.abort())
        page.locator(".gallery button").nth(2).click()
        sync_api.expect(page.locator("#status")).to_contain_text("cannot be reached", timeout=WAIT)
        assert not [e for e in errors if not e.startswith("request failed")], errors  # only the aborted one


# Files made in the page, as a user's drag and drop or paste hands them over.
DROP_ON_FOOTER = """() => new Promise((done) => {
  const canvas = document.createElement('canvas'); canvas.width = canvas.height = 28;
  canvas.toBlob((blob) => {
    const dt = new DataTransfer();
    dt.items.add(new File([blob], 'dropped.png', { type: 'image/png' }));
    dt.items.add(new File(['%PDF'], 'doc.pdf', { type: 'application/pdf' }));
    document.querySelector('footer').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    done();
  });
})"""
PASTE = """() => new Promise((done) => {
  const canvas = document.createElement('canvas'); canvas.width = canvas.height = 28;
  canvas.toBlob((blob) => {
    const dt = new DataTransfer();
    dt.items.add(new File([blob], 'pasted.png', { type: 'image/png' }));
    document.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true }));
    done();
  });
})"""
