"""The dispatch explorer in a real JupyterLab, clicked in Debian's Chromium through Playwright.

The test starts its own JupyterLab on 127.0.0.1 (free port, no token) with a temporary root
folder and temporary Jupyter config, data and runtime folders, writes a small notebook there,
runs it in the browser, clicks Dispatch and Next, and checks that the graph image and the
step table changed. A screenshot is saved in the test's temporary folder. The server is always
stopped by its process group.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import needs
import pytest

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
INSTALL = (
    "apt-get install -y --no-install-recommends chromium fonts-liberation && pip install playwright"
)
# Flags known to work here: root needs --no-sandbox, and without the background-networking
# flags Chromium keeps trying hosts this machine cannot reach.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NOTEBOOK_CELLS = [
    "from eda_lesson import EventBus\n"
    "from eda_lesson.shop.events import OrderCancelled, OrderPaid\n"
    "from eda_lesson.shop.services import Shop\n"
    "from eda_lesson.views.dispatch import DispatchExplorer\n"
    "bus, shop = EventBus(), Shop()\n"
    "shop.register(bus)",
    "explorer = DispatchExplorer(\n"
    "    bus, {'paid': OrderPaid('o-1', 42.0), 'cancelled': OrderCancelled('o-1')}\n"
    ")\n"
    "explorer",
]
KERNEL_IDLE = """() => {
    const app = window.jupyterapp;
    const panel = app && app.shell.currentWidget;
    const session = panel && panel.sessionContext && panel.sessionContext.session;
    const kernel = session && session.kernel;
    return !!kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
}"""
ALL_CELLS_RAN = """(count) => {
    const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
    return prompts.filter((p) => /\\[\\d+\\]:/.test(p.textContent)).length >= count;
}"""
IMAGE_DIGEST = """async (img) => {
    const bytes = await (await fetch(img.src)).arrayBuffer();
    const digest = await crypto.subtle.digest('SHA-256', bytes);
    return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}"""


@pytest.fixture
def sync_playwright() -> Any:
    """Playwright's sync API, or a skip (a failure under CI) saying how to install it."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(str(CHROMIUM))
    if importlib.util.find_spec("playwright") is None:
        missing.append("the playwright package")
    if missing:
        needs.missing(f"it needs {' and '.join(missing)}: {INSTALL}", "run the browser test")
    from playwright.sync_api import sync_playwright

    return sync_playwright


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def jupyter_environment(home: Path) -> dict[str, str]:
    """Temporary Jupyter folders: nothing read from or written to the user's own settings.

    Lab extensions (the ipywidgets one among them) are still found, in sys.prefix.
    """
    env = dict(os.environ)
    for name, folder in [
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_DATA_DIR", "data"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("IPYTHONDIR", "ipython"),
    ]:
        (home / folder).mkdir(parents=True)
        env[name] = str(home / folder)
    env.pop("JUPYTER_PATH", None)
    return env


def write_notebook(path: Path) -> int:
    """The explorer notebook, without outputs; returns its number of code cells."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in NOTEBOOK_CELLS]
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nbformat.write(notebook, path)
    return len(NOTEBOOK_CELLS)


@pytest.fixture
def jupyterlab(sync_playwright: Any, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A JupyterLab serving a temporary root folder; yields its URL and that folder."""
    started = time.monotonic()
    root, home = tmp_path / "root", tmp_path / "jupyter"
    root.mkdir()
    env = jupyter_environment(home)
    subprocess.run(
        [sys.executable, "-m", "jupyter", "labextension", "disable", "--level=user",
         "@jupyterlab/apputils-extension:announcements"],
        env=env, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    port = free_port()
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser",
        "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
        "--IdentityProvider.token=", "--ServerApp.password=",
        "--ServerApp.disable_check_xsrf=True", "--LabApp.expose_app_in_browser=True",
        f"--ServerApp.root_dir={root}",
    ]  # fmt: skip
    if os.geteuid() == 0:
        command.append("--ServerApp.allow_root=True")
    log_path = tmp_path / "jupyterlab.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            command, env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_server(url, server, log_path)
        yield url, root
    finally:
        stop(server)
        print(f"browser test took {time.monotonic() - started:.1f} s, server start to stop")


def wait_for_server(url: str, server: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"JupyterLab exited with {server.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/api/status", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"JupyterLab did not answer on {url} within 90 s:\n{log_path.read_text()}")


def stop(server: subprocess.Popen[bytes]) -> None:
    """Stop the server's whole process group: SIGTERM (it shuts its kernels down), then KILL."""
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)


def test_dispatch_explorer_steps_through_a_cascade_in_jupyterlab(
    sync_playwright: Any, jupyterlab: tuple[str, Path], tmp_path: Path
) -> None:
    url, root = jupyterlab
    cells = write_notebook(root / "explorer.ipynb")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(f"{url}/lab/tree/explorer.ipynb")
            # The toolbar says idle before any kernel exists; ask the kernel itself.
            page.wait_for_function(KERNEL_IDLE, timeout=90_000)
            # Not awaited in the page: a command that never settles would hang evaluate().
            page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
            page.wait_for_function(ALL_CELLS_RAN, arg=cells, timeout=90_000)
            page.wait_for_function(KERNEL_IDLE)

            dispatch = page.locator("button.widget-button", has_text="Dispatch")
            dispatch.wait_for(state="visible")
            picture = page.locator("img.widget-image")
            before_src = picture.get_attribute("src")
            before_digest = picture.evaluate(IMAGE_DIGEST)

            dispatch.click()
            steps = page.locator("table.eda-step-table")
            steps.wait_for(state="visible")
            page.wait_for_function(KERNEL_IDLE)
            assert "Shop.mark_paid" in steps.inner_text()
            page.get_by_text("step 0 of 5: OrderPaid dispatched").wait_for()
            after_dispatch = picture.evaluate(IMAGE_DIGEST)
            assert picture.get_attribute("src") != before_src
            assert after_dispatch != before_digest
            table_at_zero = steps.inner_text()

            page.locator("button.widget-button", has_text="Next").click()
            page.get_by_text("step 1 of 5: Shop.mark_paid handles #0 OrderPaid").wait_for()
            page.wait_for_function(KERNEL_IDLE)
            assert picture.evaluate(IMAGE_DIGEST) != after_dispatch
            table_at_one = steps.inner_text()
            assert table_at_one != table_at_zero
            assert "▶ 1" in table_at_one and "▶" not in table_at_zero

            page.screenshot(path=str(tmp_path / "explorer.png"), full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "explorer.png").stat().st_size > 10_000
