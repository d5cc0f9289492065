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

Spares: a new process spends 5-9 s importing TensorFlow and tfmot, then 2-3 s more on its
first fine-tune (TensorFlow's runtime, the first tracing of Keras' and tfmot's training
code), which is most of a small sweep. So once the worker has done a job and the kernel
idles (no job, little CPU for :data:`SPARE_DELAY`), :func:`start_spares` starts up to
:func:`spare_workers` processes that pay both at once, in the background: each imports
them and runs a toy candidate (:func:`compresswidgets._candidate.warm_up`). A process's
TensorFlow threads are fixed when its runtime starts, so a spare gets those of a full local
pool on this machine (:func:`spare_threads`), and a :class:`WorkerPool` adopts a spare only
when they equal its own: a candidate sees the same settings in either, the same numbers.
A spare nobody took is closed after :data:`IDLE_SECONDS`.
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
import time
import weakref
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
#: goes back; the next job starts a new one); also how long a spare waits to be taken.
IDLE_SECONDS = 120.0
#: Spare processes started while the kernel idles, unless ``COMPRESSWIDGETS_SPARE_WORKERS``
#: says otherwise (0: none); never more than a full local pool.
SPARE_WORKERS = 2
#: Seconds the kernel must idle after a worker job (no job, under :data:`IDLE_CPU` of a
#: core) before spares start: a loop of jobs, or a kernel computing, starts none.
SPARE_DELAY = 1.0
IDLE_CPU = 0.25
#: A spare's resident memory (measured after its imports: 790 MB, of which 390 MB its own,
#: the rest TensorFlow's libraries shared with the other TensorFlow processes); spares are
#: started only while they fit in :data:`SPARE_SHARE` of the available memory.
SPARE_BYTES = 800 * 2**20
SPARE_SHARE = 0.5


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


def spare_workers() -> int:
    """How many spare processes to keep ready while the kernel idles (see the module)."""
    raw = os.environ.get("COMPRESSWIDGETS_SPARE_WORKERS", "").strip()
    if not raw:
        return min(SPARE_WORKERS, cpu_count())  # start_spares: no more than a full pool
    try:
        count = int(raw)
    except ValueError:
        count = -1
    if not 0 <= count <= 64:
        raise ValueError(f"COMPRESSWIDGETS_SPARE_WORKERS={raw!r} is not a number of processes "
                         f"from 0 to 64; set it to e.g. {SPARE_WORKERS} (0: no spares), or "
                         "unset it")
    return count


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
    """One worker process; ``threads`` fixes its TensorFlow threads (intra-op; inter-op 1)
    from the start; ``warm`` imports TensorFlow and tfmot before the first job (a sweep's
    worker), ``"candidate"`` also runs a toy candidate (a spare)."""

    def __init__(self, threads: int | None = None, *, warm: bool | str = False) -> None:
        self.threads = threads
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process
        env = dict(os.environ)
        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent,
                                                          env.get("PYTHONPATH")]))
        if threads is not None:  # TensorFlow reads these when its runtime starts
            env["TF_NUM_INTRAOP_THREADS"] = str(threads)
            env["TF_NUM_INTEROP_THREADS"] = "1"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", ENTRY, str(MAX_JOBS),
             *([warm if isinstance(warm, str) else "warm"] if warm else [])],
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

    def close(self, *, kill: bool = False) -> None:
        """End the process (``kill``: at once, e.g. a spare, which holds no job)."""
        if kill:
            with contextlib.suppress(OSError):
                self.proc.kill()
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
#: worker jobs started so far: a watch for the kernel's idleness ends when another starts
_jobs_started = 0


def call(request: tuple, on_progress: Callable[[dict], bool] | None = None, *,
         retry: bool = False) -> Any:
    """Send one job to the worker (started or replaced as needed); one job at a time. Once
    it is done and the kernel idles, spares are started (see the module).

    ``on_progress`` gets each progress frame and returns True to ask the job to stop. When
    the process dies, :class:`WorkerDied` says how; with ``retry`` (short, idempotent jobs
    such as a conversion) a fresh process gets the job once more first. A fine-tune is never
    retried: it would silently start again from its first batch.
    """
    global _process, _jobs_started
    limit = recycle_bytes()  # a bad setting is refused before the job, never after it
    spare_workers()
    with _lock:
        _jobs_started += 1
        try:
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
        finally:
            _watch_idle(_jobs_started)
    raise AssertionError("unreachable")


def shutdown() -> None:
    """Stop the worker and the spares (a new worker starts with the next job)."""
    global _process
    with _lock:
        if _process is not None:
            _process.close()
            _process = None
    close_spares()


def pid() -> int | None:
    """The worker's process id while it runs (for tests and for stopping it by id)."""
    return _process.proc.pid if _process is not None and _process.proc.poll() is None else None


# --------------------------------------------------------------------------- spares
_spare_lock = threading.Lock()
_spares: list[_Process] = []
#: every WorkerPool made (weakly): no spare starts while one of them has processes
_pools: weakref.WeakSet[WorkerPool] = weakref.WeakSet()


#: A worker's resident memory before the model and data (TensorFlow, tfmot, the converter;
#: measured after a demo candidate: see docs/benchmarks.md).
WORKER_BASE_BYTES = 900 * 2**20
#: The share of the available memory a pool may fill.
MEMORY_SHARE = 0.8


def workers_for(per_worker: int, candidates: int) -> int:
    """Local workers for ``candidates`` at ``per_worker`` bytes each: one per core, no more
    than the candidates, and no more than :data:`MEMORY_SHARE` of the available memory holds
    (the spares' own memory counts as available: a pool adopts them)."""
    by_memory = cpu_count()
    available = available_bytes()
    if available is not None:
        available += spare_bytes()
        by_memory = max(1, int(MEMORY_SHARE * available // max(1, per_worker)))
    return max(1, min(cpu_count(), by_memory, candidates))


def spare_threads() -> int:
    """The TensorFlow threads of a spare: a full local pool's on this machine, which a sweep
    of a model of ordinary size uses (the cores over :func:`workers_for` a worker of its base
    size)."""
    return max(1, cpu_count() // workers_for(WORKER_BASE_BYTES, 1 << 20))


def start_spares(count: int | None = None, threads: int | None = None) -> list[int]:
    """Start spare processes up to ``count`` (default :func:`spare_workers`) with ``threads``
    TensorFlow threads (default :func:`spare_threads`), as many as fit in
    :data:`SPARE_SHARE` of the available memory; the process ids of all the spares. Each
    imports TensorFlow and tfmot and runs a toy candidate at once; it is closed if nobody
    takes it within :data:`IDLE_SECONDS`."""
    wanted = spare_workers() if count is None else count
    threads = spare_threads() if threads is None else threads
    available = available_bytes()
    with _spare_lock:
        dead = [s for s in _spares if s.proc.poll() is not None or s.threads != threads]
        _spares[:] = [s for s in _spares if s not in dead]
        room = wanted - len(_spares)
        if available is not None:
            room = min(room, int(SPARE_SHARE * available // SPARE_BYTES))
        for _ in range(max(0, room)):
            spare = _Process(threads, warm="candidate")
            _spares.append(spare)
            timer = threading.Timer(IDLE_SECONDS, _expire, (spare,))
            timer.daemon = True
            timer.start()
        pids = [s.proc.pid for s in _spares]
    for spare in dead:
        spare.close(kill=True)
    return pids


def take_spare(threads: int | None) -> _Process | None:
    """A spare process with ``threads`` TensorFlow threads, no longer a spare (the oldest:
    the likeliest to be ready), or None."""
    with _spare_lock:
        for spare in list(_spares):
            if spare.threads == threads and spare.proc.poll() is None:
                _spares.remove(spare)
                return spare
    return None


def spare_bytes() -> int:
    """The memory the spares hold of their own (Linux ``RssAnon``; 0 if unknown): a sweep
    counts it as available, since its pool adopts them."""
    total = 0
    for pid in spare_pids():
        with (contextlib.suppress(OSError, ValueError, IndexError, StopIteration),
              open(f"/proc/{pid}/status") as f):
            total += next(int(line.split()[1]) * 1024 for line in f
                          if line.startswith("RssAnon:"))
    return total


def spare_pids() -> list[int]:
    """The process ids of the spares waiting to be taken."""
    with _spare_lock:
        return [s.proc.pid for s in _spares if s.proc.poll() is None]


def close_spares() -> None:
    """Stop every spare now."""
    with _spare_lock:
        spares = list(_spares)
        _spares.clear()
    for spare in spares:
        spare.close(kill=True)


def _expire(spare: _Process) -> None:
    with _spare_lock:
        if spare not in _spares:  # taken
            return
        _spares.remove(spare)
    spare.close(kill=True)


def _pools_running() -> bool:
    return any(pool.pids() for pool in list(_pools))


def _watch_idle(generation: int) -> None:
    with contextlib.suppress(ValueError):  # a setting changed during the job: no spares
        if spare_workers() == 0:
            return
        threading.Thread(target=_when_idle, args=(generation,), daemon=True,
                         name="cw-spares").start()


def _when_idle(generation: int) -> None:
    """Start the spares once the kernel idles after the job ``generation``: no job since,
    under :data:`IDLE_CPU` of a core for :data:`SPARE_DELAY`, and no pool running (a
    sweep's processes are warm already); give up when another job starts."""
    deadline = time.monotonic() + IDLE_SECONDS
    cpu = time.process_time()
    while time.monotonic() < deadline:
        time.sleep(SPARE_DELAY)
        if _jobs_started != generation:  # another job: when it ends, it watches again
            return
        now = time.process_time()
        if now - cpu < IDLE_CPU * SPARE_DELAY and not _pools_running():
            with contextlib.suppress(Exception):  # a background nicety: never an error
                start_spares()
            return
        cpu = now


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

    Before it starts a process, the pool adopts a spare (:func:`start_spares`) with the same
    ``threads``, if there is one; :attr:`adopted` lists their process ids. ``warm``
    processes import TensorFlow and tfmot when they start, not at their first job;
    :meth:`prestart` starts them before any job.

    Example:
        >>> with WorkerPool(2) as pool:                        # doctest: +SKIP
        ...     pool.submit(math.factorial, 20).result()
        2432902008176640000
    """

    def __init__(self, max_workers: int, *, threads: int | None = 1,
                 idle_seconds: float = IDLE_SECONDS, warm: bool = False) -> None:
        if not isinstance(max_workers, int) or isinstance(max_workers, bool) or max_workers < 1:
            raise ValueError(f"max_workers must be a whole number of at least 1, but got "
                             f"{max_workers!r}. E.g. WorkerPool(2).")
        self.max_workers = max_workers
        self.threads = threads
        self.idle_seconds = idle_seconds
        self.warm = warm
        #: process ids of the spares this pool adopted, in order
        self.adopted: list[int] = []
        self._items: queue.Queue[_Item | None] = queue.Queue()
        self._dispatchers: list[threading.Thread] = []
        self._live: list[_Item] = []
        self._processes: list[_Process] = []
        self._outstanding = 0  # jobs sent and not finished: no more dispatchers than these
        self._lock = threading.Lock()
        self._closed = False
        _pools.add(self)

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
            self._outstanding += 1
            if len(self._dispatchers) < min(self.max_workers, self._outstanding):
                self._add_dispatcher(start=False)
        return future

    def prestart(self, count: int) -> None:
        """Start processes (spares first) for up to ``count`` jobs now, before they are
        sent: their start overlaps the caller's own preparations."""
        with self._lock:
            while not self._closed and len(self._dispatchers) < min(count, self.max_workers):
                self._add_dispatcher(start=True)

    def _add_dispatcher(self, *, start: bool) -> None:  # under self._lock
        thread = threading.Thread(target=self._dispatch, args=(start,), daemon=True,
                                  name=f"cw-pool-{len(self._dispatchers)}")
        self._dispatchers.append(thread)
        thread.start()

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

    def _dispatch(self, start: bool = False) -> None:
        process: _Process | None = None
        try:
            if start:
                process = self._replace(None)
            while True:
                try:
                    item = self._items.get(timeout=self.idle_seconds if process else None)
                except queue.Empty:  # idle: give its memory back until the next job
                    process = self._replace(process, start=False)
                    continue
                if item is None:
                    return
                if not item.future.set_running_or_notify_cancel():
                    self._done_one()
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
                    self._done_one()
                if process is not None and not process.usable(limit):
                    process = self._replace(process, start=False)  # its memory back now
        finally:
            if process is not None:
                process.close()

    def _done_one(self) -> None:
        with self._lock:
            self._outstanding -= 1

    def _replace(self, old: _Process | None, *, start: bool = True) -> _Process | None:
        """A new process (a spare if there is one) in place of ``old`` (closed, if any); none
        with ``start=False``."""
        if old is not None:
            old.close()
        new = None
        if start:
            new = take_spare(self.threads)
            if new is not None:
                with self._lock:
                    self.adopted.append(new.proc.pid)
            else:
                new = _Process(self.threads, warm=self.warm)
        with self._lock:
            self._processes = [p for p in self._processes if p is not old and
                               p.proc.poll() is None] + ([new] if new else [])
        return new
