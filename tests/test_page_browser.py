"""The analyst page in a real browser: Debian's chromium driven by Playwright against a live server."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
from PIL import Image

from .conftest import make_checkpoint, random_rgb
from .videos import make_video

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TOKEN = "page-test-token-0123456789"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"]

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).is_file(),
    reason="chromium is not installed (Debian: apt-get install -y chromium); .ci/run installs it when missing",
)


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[str]:
    """The service on 127.0.0.1 (a free port) with a token and an UNTRAINED 64 px checkpoint, in a thread."""
    uvicorn = pytest.importorskip("uvicorn")
    from deepfake_attention.service import ServiceSettings, create_app

    model = make_checkpoint(tmp_path / "model", size=64, trained=False)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings = ServiceSettings(device="cpu", token=TOKEN)
    config = uvicorn.Config(create_app(model, settings), log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the server did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_upload_shows_verdict_overlays_and_slider(live_server: str, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    image = tmp_path / "portrait.png"
    Image.fromarray(random_rgb(120, 160, seed=4)).save(image)
    (tmp_path / "notes.png").write_text("this is text, not an image")
    shot = tmp_path / "page.png"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 1000})
            page.goto(live_server + "/")
            sync_api.expect(page.locator("#token-section")).to_be_visible()  # the server wants a token
            page.get_by_label("Token", exact=True).fill(TOKEN)
            page.get_by_role("button", name="Use this token").click()
            sync_api.expect(page.locator("#token-section")).to_be_hidden()
            sync_api.expect(page.locator("#untrained-banner")).to_be_visible()  # untrained model: banner
            sync_api.expect(page.locator("#model-info")).to_contain_text("UNTRAINED")

            page.set_input_files("#file-input", str(image))
            verdict = page.locator("#verdict")
            sync_api.expect(verdict).to_contain_text("P(fake) = ", timeout=20_000)
            sync_api.expect(verdict).to_contain_text("UNTRAINED")
            attention = page.locator("#stage .layer.attention")
            gradcam = page.locator("#stage .layer.gradcampp")
            sync_api.expect(attention).to_be_visible()
            sync_api.expect(gradcam).to_be_hidden()
            assert attention.evaluate("img => img.complete && img.naturalWidth") == 64
            photo_box, layer_box = page.locator("#photo").bounding_box(), attention.bounding_box()
            assert abs(photo_box["width"] - layer_box["width"]) < 2 and abs(photo_box["height"] - layer_box["height"]) < 2

            page.get_by_label("Grad-CAM++: what drove the fake score").check()  # switch the map
            sync_api.expect(gradcam).to_be_visible()
            sync_api.expect(attention).to_be_hidden()
            assert gradcam.evaluate("img => getComputedStyle(img).opacity") == "1"

            slider = page.get_by_label("Map opacity")
            slider.focus()
            for _ in range(14):  # keyboard only: 100% -> 30% in steps of 5
                page.keyboard.press("ArrowLeft")
            sync_api.expect(page.locator("#opacity-value")).to_have_text("30%")
            assert float(gradcam.evaluate("img => getComputedStyle(img).opacity")) == pytest.approx(0.3)
            faces = page.locator("#faces li")
            sync_api.expect(faces).to_have_count(1)
            sync_api.expect(faces.first).to_contain_text("Face 1")
            assert float(faces.first.locator(".layer.gradcampp").evaluate("img => getComputedStyle(img).opacity")) == pytest.approx(0.3)
            page.screenshot(path=str(shot), full_page=True)

            page.set_input_files("#file-input", str(tmp_path / "notes.png"))  # errors in plain words
            error = page.locator("#error")
            sync_api.expect(error).to_be_visible()
            sync_api.expect(error).to_contain_text("This kind of file cannot be analysed here")

            page.set_input_files("#file-input", str(make_video(tmp_path / "clip.mp4", count=8)))  # a video: a background job
            page.wait_for_function("() => document.getElementById('status').textContent.includes('clip.mp4 finished')"
                                   " || document.getElementById('error').textContent.includes('video')", timeout=30_000)
            if "not available in this version" not in page.locator("#error").text_content():
                sync_api.expect(page.locator("#faces li").first).to_contain_text("Face track 1")
                assert page.locator("#photo").get_attribute("src").startswith("data:image/png;base64,")
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    with Image.open(shot) as screenshot:
        assert screenshot.width == 1100
