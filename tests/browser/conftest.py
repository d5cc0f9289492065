"""A real JupyterLab on a free localhost port, and headless Debian Chromium driven by Playwright.

The server gets temporary config, runtime, settings and workspace folders and is always
stopped by its process id (its process group: the kernels it started go with it).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
    "--disable-default-apps", "--disable-extensions",
]


def missing(what: str, how: str) -> None:
    message = f"{what} is not available: {how}"
    if IN_CI:
        pytest.fail(message + " (CI=true: browser tests may not skip)")
    pytest.skip(message)


def find_chromium() -> str:
    for candidate in (os.environ.get("CHROMIUM"), shutil.which("chromium"),
                      shutil.which("chromium-browser"), "/usr/bin/chromium"):
        if candidate and os.path.exists(candidate):
            return candidate
    missing("Chromium", "install Debian's package with `sudo apt-get install chromium` "
            "(or set CHROMIUM=/path/to/chromium)")
    raise AssertionError("unreachable")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A Jupyter server process (JupyterLab or Voila) on a free localhost port, with temporary
    config/runtime/settings folders, stopped by its process group id."""

    def __init__(self, workdir: Path, state: Path, command: list[str]) -> None:
        self.port = free_port()
        self.token = os.urandom(16).hex()
        self.workdir = workdir
        env = dict(os.environ)
        for name in ("config", "runtime", "settings", "workspaces", "data"):
            (state / name).mkdir(parents=True, exist_ok=True)
        env.update(
            JUPYTER_CONFIG_DIR=str(state / "config"),
            JUPYTER_RUNTIME_DIR=str(state / "runtime"),
            JUPYTERLAB_SETTINGS_DIR=str(state / "settings"),
            JUPYTERLAB_WORKSPACES_DIR=str(state / "workspaces"),
        )
        # No news or update checks (no network here), no pop-ups over the notebook.
        notify = state / "settings" / "@jupyterlab" / "apputils-extension"
        notify.mkdir(parents=True, exist_ok=True)
        (notify / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        self.log = open(state / "jupyter.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", *command(self.port, self.token)],
            cwd=workdir, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.state = state

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 120, path: str = "/api/status") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = (self.state / "jupyter.log").read_text()
                raise RuntimeError(f"the server exited early:\n{log}")
            try:
                with urllib.request.urlopen(f"{self.url}{path}?token={self.token}",
                                            timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"the server did not answer on {self.url} within {timeout} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)  # the server's own process group
                self.proc.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()


ROOT_FLAG = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []


def lab_command(port: int, token: str) -> list[str]:
    return ["jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}", "--ServerApp.root_dir=.",
            "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly", *ROOT_FLAG]


def voila_command(notebook: str):
    def command(port: int, token: str) -> list[str]:
        return ["voila", notebook, "--no-browser", "--Voila.ip=127.0.0.1", f"--port={port}",
                "--Voila.port_retries=0", f"--token={token}", "--show_tracebacks=True"]
    return command


def copy_notebooks(workdir: Path) -> None:
    for nb in (ROOT / "notebooks").glob("*.ipynb"):
        shutil.copy(nb, workdir / nb.name)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    return find_chromium()


@pytest.fixture(scope="session")
def lab(tmp_path_factory, chromium_path):
    workdir = tmp_path_factory.mktemp("lab-root")
    copy_notebooks(workdir)
    server = Server(workdir, tmp_path_factory.mktemp("lab-state"), lab_command)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def voila(tmp_path_factory, chromium_path):
    """`voila studio_app.ipynb`: the Studio as a standalone app, as the README says."""
    workdir = tmp_path_factory.mktemp("voila-root")
    copy_notebooks(workdir)
    server = Server(workdir, tmp_path_factory.mktemp("voila-state"),
                    voila_command("studio_app.ipynb"))
    try:
        server.wait_ready(path="/")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser(chromium_path):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("Playwright", "run `make test`, which installs the test extras")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, headless=True,
                                    args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


ARTIFACTS = ROOT / "test-artifacts"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


FAILED = pytest.StashKey[bool]()


@pytest.fixture
def page(request, browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1700})
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    try:
        yield page
    finally:
        if request.node.stash.get(FAILED, False):  # keep what is needed to see why
            ARTIFACTS.mkdir(exist_ok=True)
            name = request.node.name
            with contextlib.suppress(Exception):
                page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
            (ARTIFACTS / f"{name}.console.txt").write_text("\n".join(console))
            for server in ("lab", "voila"):  # the logs of the servers the test used
                if server in request.fixturenames:
                    log = request.getfixturevalue(server).state / "jupyter.log"
                    shutil.copy(log, ARTIFACTS / f"{name}.{server}.log")
        context.close()
