"""A simulated Binder: what a learner's session runs on, rebuilt on this machine.

A fresh virtual environment gets only ``binder/requirements.txt`` and ``binder/postBuild``
(as repo2docker does), its kernel is started through ``binder/start``, and each notebook is
executed there while the resident memory of the kernel (and of everything it starts: the
fine-tuning worker, LiteRT benchmark processes) is sampled. Binder gives 1-2 GB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
KERNEL = "cw-binder"
PAGE = os.sysconf("SC_PAGE_SIZE")


def _run(args: list[str], **kwargs) -> None:
    done = subprocess.run(args, capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} failed ({done.returncode}):\n"
                           f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


class BinderEnv:
    """The venv, the demo cache postBuild filled, and a kernelspec that starts via binder/start."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.venv = root / "venv"
        self.cache = root / "cache"
        self.jupyter = root / "jupyter"
        self.build_seconds = 0.0

    def build(self) -> BinderEnv:
        start = time.monotonic()
        # the base interpreter of this one (a venv made from a venv is based on the base)
        _run([sys.executable, "-m", "venv", str(self.venv)])
        bin_dir = self.venv / "bin"
        # --no-compile: the same files are installed; Python compiles only what gets imported,
        # on first import, instead of pip compiling every module of TensorFlow (~30 s here)
        _run([str(bin_dir / "pip"), "install", "-q", "--no-compile", "-r",
              str(ROOT / "binder" / "requirements.txt")], cwd=ROOT)
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
               "XDG_CACHE_HOME": str(self.cache), "VIRTUAL_ENV": str(self.venv)}
        env.pop("TF_USE_LEGACY_KERAS", None)  # postBuild must set what it needs itself
        _run(["bash", str(ROOT / "binder" / "postBuild")], cwd=ROOT, env=env)
        self.kernelspec()
        self.build_seconds = time.monotonic() - start
        BUILDS.append(self.build_seconds)
        return self

    def kernelspec(self) -> None:
        """A kernel started the way Binder starts everything: through binder/start."""
        bin_dir = self.venv / "bin"
        spec = self.jupyter / "kernels" / KERNEL
        spec.mkdir(parents=True, exist_ok=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": ["bash", str(ROOT / "binder" / "start"), str(bin_dir / "python"), "-m",
                     "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Binder (simulated)", "language": "python",
            "env": {"XDG_CACHE_HOME": str(self.cache), "TF_USE_LEGACY_KERAS": ""},
        }))


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _pss(pid: int) -> int:
    """The process's proportional set size: each page shared by n processes counts 1/n.

    Summed over a process tree this counts every page once, as a container's memory limit
    does. Summing RSS would not: a child between fork and exec shares all of the kernel's
    pages, and its RSS doubles the tree for a moment. (A notebook's tree once read 1,692 MB
    with an 859 MB kernel: about twice the kernel, what a just-forked child adds.)
    """
    return _kib_field(f"/proc/{pid}/smaps_rollup", "Pss:") or _rss(pid)


def _kib_field(path: str, field: str) -> int:
    """Bytes of a ``field:  N kB`` line of a /proc file; 0 when it is not there."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _hwm(pid: int) -> int:
    return _kib_field(f"/proc/{pid}/status", "VmHWM:")


class PeakMemory(threading.Thread):
    """Samples a process and its descendants: the kernel's own peak (VmHWM) and the peak of
    their proportional sum (what a container limit sees: shared pages once), every 50 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.kernel_peak = 0
        self.tree_peak = 0
        self.finished = threading.Event()

    def run(self) -> None:
        while not self.finished.is_set():
            tree, total, todo = _children(), 0, [self.pid]
            while todo:
                pid = todo.pop()
                total += _pss(pid)
                todo.extend(tree.get(pid, []))
            self.tree_peak = max(self.tree_peak, total)
            self.kernel_peak = max(self.kernel_peak, _hwm(self.pid))
            self.finished.wait(0.05)

    def stop(self) -> None:
        self.kernel_peak = max(self.kernel_peak, _hwm(self.pid))
        self.finished.set()
        self.join(5)


#: Seconds each Binder environment of this session took to build.
BUILDS: list[float] = []
#: Every notebook run of this session, by notebook: printed at the end (tests/conftest.py).
RUNS: dict[str, Run] = {}


@dataclass
class Run:
    notebook: nbformat.NotebookNode
    seconds: float
    kernel_peak_mb: float
    tree_peak_mb: float


def execute(env: BinderEnv, path: Path, workdir: Path) -> Run:
    """Execute ``path`` in the Binder kernel, in ``workdir``, measuring time and memory."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name=KERNEL,
                            resources={"metadata": {"path": str(workdir)}})
    watch: list[PeakMemory] = []

    def started(**_: object) -> None:
        sampler = PeakMemory(client.km.provisioner.process.pid)
        sampler.start()
        watch.append(sampler)

    def cell_done(**_: object) -> None:  # VmHWM only grows: read it after every cell
        for sampler in watch:
            sampler.kernel_peak = max(sampler.kernel_peak, _hwm(sampler.pid))

    client.on_notebook_start = started
    client.on_cell_complete = cell_done
    previous = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = str(env.jupyter)
    start = time.monotonic()
    try:
        client.execute()
    finally:
        seconds = time.monotonic() - start
        if previous is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = previous
        for sampler in watch:
            sampler.stop()
    sampler = watch[0]
    return Run(nb, seconds, sampler.kernel_peak / 2**20, sampler.tree_peak / 2**20)


def summary() -> str:
    """The table of this session's notebook runs (wall time, peak memory), as Markdown."""
    lines = ["| notebook | wall time | kernel peak RSS | kernel + its processes (PSS) |",
             "|---|---|---|---|"]
    for stem, run in sorted(RUNS.items()):
        lines.append(f"| `{stem}` | {run.seconds:.0f} s | {run.kernel_peak_mb:,.0f} MB | "
                     f"{run.tree_peak_mb:,.0f} MB |")
    if BUILDS:
        lines.append(f"\nThe Binder environment was built in {BUILDS[0]:.0f} s.")
    return "\n".join(lines)
