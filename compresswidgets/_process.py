"""The worker transport: one recycled Python subprocess, length-prefixed pickles over pipes.

This module knows how to start, feed, stop and replace the process; what runs inside it is
:mod:`compresswidgets._jobs` (``python -m compresswidgets._jobs``). It is a plain
subprocess, not multiprocessing, so scripts without a ``__main__`` guard work too.

Protocol: the kernel sends one request tuple, then ``("stop",)`` frames while it runs; the
worker answers with any number of ``{"progress": {...}}`` frames and one
``{"done": result, "rss": bytes}``.

Recycling: TensorFlow leaks in every conversion and fine-tune, and a big model leaks more
per job than a small one. So the process is replaced when its resident memory after a job
passes :func:`recycle_bytes` (``COMPRESSWIDGETS_WORKER_MB``), or after :data:`MAX_JOBS` jobs
whatever its size; a worker that stays small keeps its TensorFlow import (several seconds
of CPU) for the next job.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from typing import IO, Any

#: Jobs before the process is replaced whatever its memory (a backstop).
MAX_JOBS = 64
#: Resident memory (MB) after a job above which the process is replaced, unless
#: ``COMPRESSWIDGETS_WORKER_MB`` says otherwise.
WORKER_MB = 2048
#: The module the process runs.
ENTRY = "compresswidgets._jobs"


def recycle_bytes() -> int:
    """The worker's resident memory after a job above which it is replaced."""
    raw = os.environ.get("COMPRESSWIDGETS_WORKER_MB", "").strip()
    try:
        mb = float(raw) if raw else WORKER_MB
    except ValueError:
        raise ValueError(f"COMPRESSWIDGETS_WORKER_MB={raw!r} is not a number of megabytes; "
                         f"set it to e.g. {WORKER_MB}, or unset it") from None
    if not mb > 0:
        raise ValueError(f"COMPRESSWIDGETS_WORKER_MB={raw!r} must be above 0 (megabytes)")
    return int(mb * 2**20)


def resident_bytes() -> int:
    """This process's resident memory now (Linux), else its peak so far; 0 if unknown."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # Windows
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


# --------------------------------------------------------------------------- framing
def read_frame(stream: IO[bytes]) -> Any:
    """One frame, or None at the end of the stream."""
    header = stream.read(8)
    if len(header) < 8:
        return None
    size = int.from_bytes(header, "little")
    return pickle.loads(stream.read(size))


def write_frame(stream: IO[bytes], value: Any) -> None:
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(len(payload).to_bytes(8, "little") + payload)
    stream.flush()


# --------------------------------------------------------------------------- the process
class WorkerDied(RuntimeError):
    """The worker process ended in the middle of a job; ``str()`` is its last words."""


class _Process:
    def __init__(self) -> None:
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process
        env = dict(os.environ)
        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent,
                                                          env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", ENTRY, str(MAX_JOBS)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=env)
        self.jobs = 0
        self.rss = 0  # bytes, as the process reported after its last job

    def usable(self, limit: int) -> bool:
        """Alive, under :data:`MAX_JOBS`, and at most ``limit`` bytes after its last job."""
        return self.proc.poll() is None and self.jobs < MAX_JOBS and self.rss <= limit

    def call(self, request: tuple, on_progress: Callable[[dict], bool] | None) -> Any:
        self.jobs += 1
        failure: BaseException | None = None
        try:
            write_frame(self.proc.stdin, request)
            stopping = False
            while True:
                frame = read_frame(self.proc.stdout)
                if frame is None:
                    raise WorkerDied(self.last_words())
                if "done" in frame:
                    self.rss = frame.get("rss", 0)
                    if failure is not None:  # the job has wound down: now the caller's error
                        raise failure
                    return frame["done"]
                if on_progress is None or failure is not None:
                    continue
                try:
                    wants_stop = on_progress(frame["progress"])
                except BaseException as exc:  # a failing callback stops the job, then raises
                    failure, wants_stop = exc, True
                if wants_stop and not stopping:
                    stopping = True
                    write_frame(self.proc.stdin, ("stop",))
        except (BrokenPipeError, OSError) as exc:
            raise WorkerDied(self.last_words()) from exc

    def last_words(self) -> str:
        """How the process ended (a signal such as SIGSEGV says it crashed) and its stderr."""
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        if code is not None and code < 0:
            try:
                how = f"it crashed ({signal.Signals(-code).name})"
            except ValueError:
                how = f"it was killed by signal {-code}"
        else:
            how = f"it exited with code {code}"
        tail = self.stderr_tail().strip()
        return how + (f"; its last output:\n{tail}" if tail else "; it printed nothing")

    def stderr_tail(self, limit: int = 1500) -> str:
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")[-limit:]

    def retire(self) -> None:
        """Let the process end now (it exits when its stdin closes); :meth:`close` reaps it."""
        with contextlib.suppress(OSError):
            self.proc.stdin.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


_lock = threading.Lock()
_process: _Process | None = None


def call(request: tuple, on_progress: Callable[[dict], bool] | None = None, *,
         retry: bool = False) -> Any:
    """Send one job to the worker (started or replaced as needed); one job at a time.

    ``on_progress`` gets each progress frame and returns True to ask the job to stop. When
    the process dies, :class:`WorkerDied` says how; with ``retry`` (short, idempotent jobs
    such as a conversion) a fresh process gets the job once more first. A fine-tune is never
    retried: it would silently start again from its first batch.
    """
    global _process
    limit = recycle_bytes()  # a bad setting is refused before the job, never after it
    with _lock:
        for attempt in (1, 2):
            if _process is None or not _process.usable(limit):
                if _process is not None:
                    _process.close()
                _process = _Process()
            try:
                result = _process.call(request, on_progress)
            except WorkerDied:
                _process.close()
                _process = None
                if attempt == 2 or not retry:
                    raise
                continue
            if not _process.usable(limit):  # its memory goes back now, not at the next job
                _process.retire()
            return result
    raise AssertionError("unreachable")


def shutdown() -> None:
    """Stop the worker (a new one starts with the next job)."""
    global _process
    with _lock:
        if _process is not None:
            _process.close()
            _process = None


def pid() -> int | None:
    """The worker's process id while it runs (for tests and for stopping it by id)."""
    return _process.proc.pid if _process is not None and _process.proc.poll() is None else None
