"""`ddt-export demo`: the Gradio page on a build's compiled graphs, served by the real command in a subprocess on 127.0.0.1.

A real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright with no browser download) types a class name,
presses Generate and finds images of the model's size, then sees a bad value come back as a message in the page; Gradio's
own Python client makes the same request and gets the same pixels the Python API gives; bad input through the API (a huge
batch, NaN, an unknown class) gets one clear error each and the server serves the next request. The browser may reach
nothing but the server: every other request is refused and recorded.

Set DDT_DEMO_SCREENSHOT=docs/demo.png to also keep the browser's screenshot there (the README's picture).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ddt_export.errors import DDTError

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
STEPS = 6


def need(module: str):
    """CI installs .[dev] (gradio, playwright): there a missing one fails; elsewhere the test is skipped."""
    try:
        return __import__(module)
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail(f"{module} is missing; CI installs it with pip install -e '.[dev]'")
        pytest.skip(f"{module} is not installed (pip install -e '.[demo]')")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(bundled_build, tmp_path_factory):
    """`ddt-export demo BUILD --port P` running on a copy of the digits build; yields its URL."""
    need("gradio")
    build = tmp_path_factory.mktemp("demo") / "digits"
    shutil.copytree(bundled_build, build)
    port = free_port()
    log = open(build.parent / "demo.log", "w")
    proc = subprocess.Popen([sys.executable, "-c", "from ddt_export.cli import main; main()", "demo", str(build), "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "GRADIO_TEMP_DIR": str(build.parent / "gradio")})
    url = f"http://127.0.0.1:{port}/"
    import httpx

    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the demo did not start: {(build.parent / 'demo.log').read_text()[-2000:]}")
        time.sleep(0.5)
    yield url, build
    proc.terminate()  # SIGTERM: the CLI ends like Ctrl-C
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def expected(build: Path, names, n: int, seed: int = 0) -> np.ndarray:
    """The same request through the Python API, on the same build: what the page must show."""
    from ddt_export import Pipeline

    return Pipeline.load(build, "onnxruntime")(names * n, seed=seed, num_steps=STEPS, output_type="np").images


def request(cls="seven", images=2, seed=0, steps=STEPS, guidance=2.0, lo=0.0, hi=1.0, ratio=0.0, schedule="uniform",
            backend="onnxruntime", precision="fp32") -> list:
    return [cls, images, seed, steps, guidance, lo, hi, ratio, schedule, backend, precision]


def test_the_page_in_a_real_browser(server, tmp_path):
    """Type a class name, generate, see images of the model's size; a bad seed is a message in the page, not a crash."""
    url, build = server
    need("playwright")
    if not Path(CHROMIUM).is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing; .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    outside: list[str] = []

    def only_the_server(route):
        u = route.request.url
        if u.startswith((url, "data:", "blob:")):
            route.continue_()
        else:
            outside.append(u)
            route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.route("**/*", only_the_server)
            page.goto(url, wait_until="networkidle", timeout=60_000)
            picker = page.locator("#class input")
            picker.click()
            picker.fill("")
            picker.press_sequentially("Seven", delay=20)  # a name, any case: the picker filters to it
            options = page.locator("ul[role=listbox] li")
            options.first.wait_for()
            assert options.all_inner_texts() == ["7: seven"]
            options.first.click()
            assert picker.input_value() == "7: seven"
            steps = page.locator("#steps input[type=number]")
            steps.fill(str(STEPS))
            steps.press("Enter")
            page.locator("#generate").click()
            page.get_by_text("of class 7 (seven)").wait_for(timeout=60_000)
            imgs = page.locator("#gallery img")
            assert imgs.count() == 4  # the page's default number of images
            sizes = imgs.evaluate_all("els => els.map(e => [e.naturalWidth, e.naturalHeight])")
            assert sizes == [[16, 16]] * 4  # the digits model's 16 x 16 samples, unscaled
            status = page.locator("#status").inner_text()
            assert "s per image" in status and f"encoder ran {STEPS} of {STEPS} steps" in status
            page.screenshot(path=str(tmp_path / "demo.png"), full_page=True)
            if os.environ.get("DDT_DEMO_SCREENSHOT"):
                shutil.copy(tmp_path / "demo.png", os.environ["DDT_DEMO_SCREENSHOT"])

            page.locator("#seed input").fill("-1")
            page.locator("#generate").click()
            page.get_by_text("seed must be a whole number from 0 to 2^64 - 1").first.wait_for(timeout=30_000)
        finally:
            browser.close()
    assert outside == []  # the page asked nothing of any other host


def test_the_same_request_through_gradios_client_gives_the_python_apis_pixels(server):
    url, build = server
    from gradio_client import Client

    client = Client(url, verbose=False)
    gallery, status = client.predict(*request(cls="seven", images=2, seed=5), api_name="/generate")
    got = np.stack([np.asarray(Image.open(item["image"]).convert("RGB")) for item in gallery])
    assert np.array_equal(got, expected(build, ["seven"], 2, seed=5))
    assert "2 images of class 7 (seven)" in status


def test_two_users_at_once_are_queued_and_both_get_their_own_images(server):
    url, build = server
    from gradio_client import Client

    client = Client(url, verbose=False)
    with ThreadPoolExecutor(2) as pool:
        jobs = [pool.submit(client.predict, *request(cls=c, images=1, seed=1), api_name="/generate") for c in ("one", "nine")]
        results = [j.result(timeout=120) for j in jobs]
    for (gallery, _), name in zip(results, ("one", "nine")):
        got = np.asarray(Image.open(gallery[0]["image"]).convert("RGB"))[None]
        assert np.array_equal(got, expected(build, [name], 1, seed=1))


def test_the_page_runs_one_request_at_a_time_and_bounds_its_queue(bundled_build):
    import gradio as gr

    from ddt_export.demo import MAX_QUEUE, Builds, Server, app

    page = app(Server(Builds.read([bundled_build])), gr)
    assert [(f.api_name, f.concurrency_limit) for f in page.fns.values()] == [("generate", 1)]
    assert page._queue.max_size == MAX_QUEUE and page._queue.default_concurrency_limit == 1


def raw_call(url: str, data: list) -> tuple[str, str]:
    """POST to the page's API with JSON the client would not send (NaN), and read the one event that answers it."""
    import httpx

    r = httpx.post(url + "gradio_api/call/generate", content=json.dumps({"data": data}), timeout=30,
                   headers={"content-type": "application/json"})
    r.raise_for_status()
    text = httpx.get(url + f"gradio_api/call/generate/{r.json()['event_id']}", timeout=120).text
    event = next(line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("event: "))
    payload = json.loads(next(line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("data: ")))
    return event, payload["error"] if event == "error" else payload


@pytest.mark.parametrize("data,words", [
    (request(images=100_000), "greater than maximum value 16"),
    (request(guidance=float("nan")), "guidance must be a number from 0 to 20 (got nan)"),
    (request(ratio=float("inf")), "Value inf is greater than maximum value 0.95"),
    (request(cls="sevn"), 'class: no class is named "sevn"; closest: seven (7), zero (0), five (5)'),
    (request(cls=99), "class must be an id from 0 to 9"),
    (request(lo=0.9, hi=0.3), "guidance interval 0.9,0.3 is reversed"),
    (request(steps=0), "less than minimum value 1"),
    (request(schedule="best"), "not in the list of choices"),
])
def test_bad_input_through_the_api_is_one_clear_error_and_the_server_serves_the_next_request(server, data, words):
    url, _ = server
    event, error = raw_call(url, data)
    assert event == "error" and words in error, error
    event, answer = raw_call(url, request(images=1))
    assert event == "complete" and "1 image of class 7 (seven)" in answer[1]


def test_without_gradio_the_command_says_how_to_install_it(bundled_build, monkeypatch, cli):
    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` raises ImportError
    r = cli("demo", bundled_build)
    assert r.code == 2 and r.err == 'error: the demo needs Gradio, which is not installed; install it with `pip install -e ".[demo]"`\n'


# ----------------------------------------------------------------------------- without a server


def test_the_builds_served_together_are_one_model_one_per_precision(bundled_build, built, tmp_path):
    from ddt_export.demo import Builds

    assert list(Builds.read([bundled_build]).dirs) == ["fp32"]
    with pytest.raises(DDTError, match="are both fp32 builds; give one build per precision"):
        Builds.read([bundled_build, bundled_build])
    with pytest.raises(DDTError, match="is another model than"):
        Builds.read([bundled_build, built])
    with pytest.raises(DDTError, match="no VAE decoder"):  # a latent build without its VAE would show no pictures
        Builds.read([built])


@pytest.mark.parametrize("value,want", [(7, 7), (7.0, 7), ("7", 7), ("seven", 7), (" SEVEN ", 7), ("7: seven", 7)])
def test_the_class_picker_takes_ids_names_and_its_own_entries(bundled_build, value, want):
    from ddt_export.demo import Builds, Server

    assert Server(Builds.read([bundled_build])).class_id(value) == want


@pytest.mark.parametrize("value,words", [(None, "pick a class"), ("", "pick a class"), (7.5, "class ids"), (-1, "from 0 to 9"),
                                         (10, "from 0 to 9"), ("seven;one", "is not one class name")])
def test_the_class_picker_refuses_what_is_not_one_class(bundled_build, value, words):
    from ddt_export.demo import Builds, Server

    with pytest.raises(DDTError, match=words):
        Server(Builds.read([bundled_build])).class_id(value)


@pytest.mark.parametrize("port", ["0", "65536", "http"])
def test_a_bad_port_is_refused_before_anything_starts(bundled_build, cli, port):
    r = cli("demo", bundled_build, "--port", port)
    assert r.code == 2 and r.err.startswith("error: ") and "--port" in r.err and r.err.count("\n") == 1
