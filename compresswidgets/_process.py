"""The worker transport: one recycled Python subprocess, length-prefixed pickles over pipes.

This module knows how to start, feed, stop and replace the process; what runs inside it is
:mod:`compresswidgets._jobs` (``python -m compresswidgets._jobs``). It is a plain
subprocess, not multiprocessing, so scripts without a ``__main__`` guard work too.

Protocol: the kernel sends one request tuple, then ``("stop",)`` frames while it runs; the
worker answers with any number of ``{"progress": {...}}`` frames and one
``{"done": result, "rss": bytes}``.

:class:`WorkerPool` runs several such processes at once as a ``concurrent.futures.Executor``
(a sweep's candidates); its jobs are calls of module-level functions, pickled by reference.

Recycling: TensorFlow leaks in every conversion and fine-tune, and a big model leaks more
per job than a small one. So the process is replaced when its resident memory after a job
passes :func:`recycle_bytes` (``COMPRESSWIDGETS_WORKER_MB``), or after :data:`MAX_JOBS` jobs
whatever its size; a worker that stays small keeps its TensorFlow import (several seconds
of CPU) for the next job.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import pickle
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

#: Jobs before the process is replaced whatever its memory (a backstop).
MAX_JOBS = 64
#: Resident memory (MB) after a job above which the process is replaced, unless
#: ``COMPRESSWIDGETS_WORKER_MB`` says otherwise.
WORKER_MB = 2048
#: The module the process runs.
ENTRY = "compresswidgets._jobs"
#: Seconds a :class:`WorkerPool` process may wait for a job before it is closed (its memory
#: goes back; the next job starts a new one).
IDLE_SECONDS = 120.0


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
    """One frame, or None at the end of the stream. A frame that does not unpickle (a
    function of a module this process cannot import) raises after it was read whole, so
    the next frame can still be read."""
    header = stream.read(8)
    if len(header) < 8:
        return None
    size = int.from_bytes(header, "little")
    return pickle.loads(stream.read(size))


@dataclass(frozen=True)
class _Raw:
    """A value already pickled."""

    payload: bytes


def write_frame(stream: IO[bytes], value: Any) -> None:
    payload = (value.payload if isinstance(value, _Raw)
               else pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    stream.write(len(payload).to_bytes(8, "little") + payload)
    stream.flush()


# --------------------------------------------------------------------------- inside a job
#: the running job's progress channel and stop request, set by the worker around a
#: :class:`WorkerPool` job (None elsewhere: in the kernel, on a Dask worker)
channel: tuple[Callable[[dict], None], threading.Event] | None = None


def report(message: dict) -> bool:
    """Send a progress frame from a job running in a worker; True when the kernel asked the
    job to stop. Does nothing (False) where no kernel listens (a Dask worker)."""
    if channel is None:
        return False
    emit, stop = channel
    emit(message)
    return stop.is_set()


# --------------------------------------------------------------------------- the process
class WorkerDied(RuntimeError):
    """The worker process ended in the middle of a job; ``str()`` is its last words."""


class _Process:
    def __init__(self, threads: int | None = None) -> None:
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process
        env = dict(os.environ)
        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent,
                                                          env.get("PYTHONPATH")]))
        if threads is not None:  # TensorFlow reads these when its runtime starts
            env["TF_NUM_INTRAOP_THREADS"] = str(threads)
            env["TF_NUM_INTEROP_THREADS"] = "1"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", ENTRY, str(MAX_JOBS)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=env)
        self.jobs = 0
        self.rss = 0  # bytes, as the process reported after its last job
        self._writing = threading.Lock()  # the request and stop frames of two threads

    def _write(self, value: Any) -> None:
        with self._writing:
            write_frame(self.proc.stdin, value)

    def stop(self) -> None:
        """Ask the running job to stop (it sees the request at its next batch)."""
        with contextlib.suppress(OSError, ValueError):
            self._write(("stop",))

    def usable(self, limit: int) -> bool:
        """Alive, under :data:`MAX_JOBS`, and at most ``limit`` bytes after its last job."""
        return self.proc.poll() is None and self.jobs < MAX_JOBS and self.rss <= limit

    def call(self, request: tuple, on_progress: Callable[[dict], bool] | None) -> Any:
        self.jobs += 1
        failure: BaseException | None = None
        try:
            # pickled before writing: an unpicklable request raises here (the caller's error),
            # never leaving half a frame in the pipe
            payload = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
            self._write(_Raw(payload))
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
                    self._write(("stop",))
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


# --------------------------------------------------------------------------- a pool of them
def cpu_count() -> int:
    """The cores this process may use (its affinity, e.g. a container's share)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def available_bytes() -> int | None:
    """Memory the system can give without swapping (Linux ``MemAvailable``); None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


@dataclass
class _Item:
    future: concurrent.futures.Future
    fn: Callable[..., Any]
    args: tuple
    kwargs: dict
    on_progress: Callable[[dict], bool] | None = None
    process: _Process | None = field(default=None, repr=False)


class WorkerPool(concurrent.futures.Executor):
    """Worker processes of this machine as a ``concurrent.futures.Executor``.

    ``submit(fn, *args, **kwargs)`` runs ``fn`` in one of ``max_workers`` processes (started
    as needed, each the recycled worker of this module, with ``threads`` TensorFlow threads)
    and returns a Future. ``fn`` must be a module-level function (it travels by reference);
    what it raises is the Future's exception; a process that dies makes it
    :class:`WorkerDied` and is replaced for the next job. Plain subprocesses, not
    multiprocessing: scripts without a ``__main__`` guard work too. A process idle for
    ``idle_seconds`` is closed (the next job starts another).

    Example:
        >>> with WorkerPool(2) as pool:                        # doctest: +SKIP
        ...     pool.submit(math.factorial, 20).result()
        2432902008176640000
    """

    def __init__(self, max_workers: int, *, threads: int | None = 1,
                 idle_seconds: float = IDLE_SECONDS) -> None:
        if not isinstance(max_workers, int) or isinstance(max_workers, bool) or max_workers < 1:
            raise ValueError(f"max_workers must be a whole number of at least 1, but got "
                             f"{max_workers!r}. E.g. WorkerPool(2).")
        self.max_workers = max_workers
        self.threads = threads
        self.idle_seconds = idle_seconds
        self._items: queue.Queue[_Item | None] = queue.Queue()
        self._dispatchers: list[threading.Thread] = []
        self._live: list[_Item] = []
        self._processes: list[_Process] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., Any], /, *args: Any,
               **kwargs: Any) -> concurrent.futures.Future:
        return self.submit_with_progress(fn, args, kwargs)

    def submit_with_progress(self, fn: Callable[..., Any], args: tuple = (),
                             kwargs: dict | None = None,
                             on_progress: Callable[[dict], bool] | None = None,
                             ) -> concurrent.futures.Future:
        """:meth:`submit` with a callback for the job's progress frames (see
        :func:`report`); it returns True to ask the job to stop."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("This WorkerPool was shut down; make a new one.")
            self._items.put(_Item(future, fn, args, dict(kwargs or {}), on_progress))
            if len(self._dispatchers) < self.max_workers:
                thread = threading.Thread(target=self._dispatch, daemon=True,
                                          name=f"cw-pool-{len(self._dispatchers)}")
                self._dispatchers.append(thread)
                thread.start()
        return future

    def stop_running(self) -> None:
        """Ask every running job to stop (a fine-tune ends after its current batch)."""
        with self._lock:
            processes = [item.process for item in self._live if item.process is not None]
        for process in processes:
            process.stop()

    def pids(self) -> list[int]:
        """The process ids of the pool's live worker processes (to stop them by id, as
        tests do, or to read their memory)."""
        with self._lock:
            return [p.proc.pid for p in self._processes if p.proc.poll() is None]

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            dispatchers = list(self._dispatchers)
        if cancel_futures:
            while True:
                try:
                    item = self._items.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item.future.cancel()
        for _ in dispatchers:
            self._items.put(None)
        if wait:
            for thread in dispatchers:
                thread.join()

    def _dispatch(self) -> None:
        process: _Process | None = None
        try:
            while True:
                try:
                    item = self._items.get(timeout=self.idle_seconds if process else None)
                except queue.Empty:  # idle: give its memory back until the next job
                    process = self._replace(process, start=False)
                    continue
                if item is None:
                    return
                if not item.future.set_running_or_notify_cancel():
                    continue
                limit = recycle_bytes()
                if process is None or not process.usable(limit):
                    process = self._replace(process)
                item.process = process
                with self._lock:
                    self._live.append(item)
                try:
                    answer = process.call(("call", item.fn, item.args, item.kwargs),
                                          item.on_progress)
                except WorkerDied as exc:
                    process = self._replace(process, start=False)
                    item.future.set_exception(exc)
                except BaseException as exc:  # an unpicklable call, a failing callback
                    item.future.set_exception(exc)
                else:
                    if "raised" in answer:
                        item.future.set_exception(answer["raised"])
                    else:
                        item.future.set_result(answer["value"])
                finally:
                    with self._lock:
                        self._live.remove(item)
                    item.process = None
                if process is not None and not process.usable(limit):
                    process = self._replace(process, start=False)  # its memory back now
        finally:
            if process is not None:
                process.close()

    def _replace(self, old: _Process | None, *, start: bool = True) -> _Process | None:
        """A new process in place of ``old`` (closed, if any); none with ``start=False``."""
        if old is not None:
            old.close()
        new = _Process(self.threads) if start else None
        with self._lock:
            self._processes = [p for p in self._processes if p is not old and
                               p.proc.poll() is None] + ([new] if new else [])
        return new
