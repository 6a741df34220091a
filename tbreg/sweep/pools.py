"""Pools: where a trial's attempts run. `submit(call)` an attempt (`(trial, attempt, errors)`),
`wait(timeout)` for (handle, outcome) pairs, `interrupt()` the running ones, `close()`.

`SerialPool` runs them one by one in this process (a family run's --jobs=1: Keras' own engine,
progress dots and callbacks that do not pickle all work); `LocalPool` in worker processes on this
machine; `RayPool` as Ray tasks. An outcome is run_trial's dict, or WorkerLost.
"""

import collections
import itertools
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal

from tbreg import progress
from tbreg.errors import UserError, first_line
from tbreg.status import Status
from tbreg.sweep.worker import _call_safely, _set_threads, run_trial


class WorkerLost(Exception):
    """An attempt's worker died (killed, out of memory, a lost node) before it reported."""


def _worker_main(conn, threads: int) -> None:
    """A local worker: runs the calls it receives until told to stop. Ctrl-C in the terminal is
    left to the driver, which sends SIGTERM: the trial then ends its epoch and saves (resumable)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    progress.guard_streams()  # the driver's stdout/stderr: a closed pipe must not fail a trial
    _set_threads(threads)
    try:
        while True:
            try:
                call = conn.recv()
            except EOFError:
                return
            if call is None:
                return
            conn.send(_call_safely(call))
    except KeyboardInterrupt:  # SIGTERM while idle
        return


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def _signal_name(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


class _Pool:
    """What every pool shares: `with pool:` closes it (its workers, its Ray connection) at the end."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SerialPool(_Pool):
    """Runs each attempt in this process, when the driver waits for it. An interrupt (Ctrl-C, or
    SIGTERM turned into KeyboardInterrupt) reaches the driver as KeyboardInterrupt, its trial's
    outcome (`interrupted`) at the next wait. With `safe`, an attempt's exception is a failed
    outcome (as in a worker); without, it propagates (a family run stops at a UserError)."""

    engine = "serial"
    capacity = 1

    def __init__(self, safe: bool = False):
        self._safe = safe
        self._queued = collections.deque()  # (handle, call)
        self._done = []  # (handle, outcome) not yet reported
        self._handles = itertools.count()

    def describe(self) -> str:
        return "this process"

    def submit(self, call) -> int:
        handle = next(self._handles)
        self._queued.append((handle, call))
        return handle

    def wait(self, timeout: float) -> list:
        if self._done or not self._queued:
            done, self._done = self._done, []
            return done
        handle, call = self._queued.popleft()
        try:
            outcome = _call_safely(call) if self._safe else run_trial(*call)
        except KeyboardInterrupt:  # outside the training (which returns an interrupted outcome)
            self._done.append((handle, {"status": Status.INTERRUPTED, "error": None}))
            raise
        if outcome.get("status") == Status.INTERRUPTED:
            self._done.append((handle, outcome))
            raise KeyboardInterrupt
        return [(handle, outcome)]

    def interrupt(self) -> None:
        """The attempts not started yet end as interrupted, without training."""
        while self._queued:
            handle, _ = self._queued.popleft()
            self._done.append((handle, {"status": Status.INTERRUPTED, "error": None}))

    def close(self) -> None:
        self._queued.clear()


class LocalPool(_Pool):
    """`jobs` worker processes on this machine, each with its share of the CPU threads. A worker
    that dies is replaced; only its own trial's attempt is lost."""

    engine = "local"

    def __init__(self, jobs: int = 1):
        self.capacity = max(1, jobs)
        self._threads = max(1, (os.cpu_count() or 1) // self.capacity)
        self._context = multiprocessing.get_context("spawn")  # TensorFlow does not survive fork
        self._idle, self._busy = [], {}  # busy: conn -> (process, handle)
        self._handles = itertools.count()

    def describe(self) -> str:
        return f"{self.capacity} local worker process{'es' if self.capacity != 1 else ''}"

    def _spawn(self):
        conn, child = self._context.Pipe()
        process = self._context.Process(target=_worker_main, args=(child, self._threads), daemon=True)
        process.start()
        child.close()
        return conn, process

    def submit(self, call) -> int:
        conn, process = self._idle.pop() if self._idle else self._spawn()
        handle = next(self._handles)
        conn.send(call)
        self._busy[conn] = (process, handle)
        return handle

    def wait(self, timeout: float) -> list:
        waitables = [*self._busy, *(p.sentinel for p, _ in self._busy.values())]
        if not waitables:
            return []
        multiprocessing.connection.wait(waitables, timeout)
        done = []
        for conn, (process, handle) in list(self._busy.items()):
            outcome = None
            if conn.poll():
                try:
                    outcome = conn.recv()
                except (EOFError, OSError):
                    outcome = None
            if outcome is None and not process.is_alive():
                process.join()
                outcome = WorkerLost(f"worker process {process.pid} died ({_signal_name(process.exitcode)})")
            if outcome is None:
                continue
            del self._busy[conn]
            if isinstance(outcome, WorkerLost):
                conn.close()
            else:
                self._idle.append((conn, process))
            done.append((handle, outcome))
        return done

    def interrupt(self) -> None:
        """Asks every running trial to end its epoch, save and report (SIGTERM)."""
        for process, _ in self._busy.values():
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)

    def close(self) -> None:
        for conn, process in self._idle:
            try:
                conn.send(None)
            except OSError:
                pass
        for conn, process in [*self._idle, *((c, p) for c, (p, _) in self._busy.items())]:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
        self._idle, self._busy = [], {}


def _ray_task(call, threads: int) -> dict:
    _set_threads(threads)
    return _call_safely(call)


class RayPool(_Pool):
    """Trials as Ray tasks: on a local Ray instance with `jobs` CPUs (address None), or on the
    cluster at `address` (e.g. `ray://head:10001`, `auto`), `jobs` at a time (default: its CPUs).
    Every worker must have tbreg installed and reach the log dir (a shared path or gs://…)."""

    engine = "ray"

    def __init__(self, address: str | None = None, jobs: int | None = None):
        try:
            import ray
        except ImportError:
            raise UserError("--engine=ray needs Ray: pip install 'tbreg[ray]' (or pip install ray)") from None
        self._ray = ray
        options = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
        address = address or os.environ.get("RAY_ADDRESS") or None  # what ray.init() would connect to
        try:
            if address:
                ray.init(address=address, **options)
            else:
                ray.init(num_cpus=jobs or 1, object_store_memory=128 * 1024**2, **options)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise UserError(
                f"--address={address}: cannot connect to a Ray cluster there ({first_line(e)}); "
                "start one with `ray start --head`, or drop --address for a local one"
            ) from None
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.capacity = max(1, jobs or cpus)
        self._address = address
        self._threads = max(1, cpus // self.capacity) if not address else 1
        self._remote = ray.remote(num_cpus=1, max_retries=0)(_ray_task)
        self._running = {}  # ObjectRef -> handle
        self._handles = itertools.count()

    def describe(self) -> str:
        where = f"the Ray cluster at {self._address}" if self._address else "a local Ray instance"
        return f"{self.capacity} Ray task{'s' if self.capacity != 1 else ''} at a time on {where}"

    def submit(self, call) -> int:
        handle = next(self._handles)
        self._running[self._remote.remote(call, self._threads)] = handle
        return handle

    def wait(self, timeout: float) -> list:
        if not self._running:
            return []
        ready, _ = self._ray.wait(list(self._running), num_returns=1, timeout=timeout)
        done = []
        for ref in ready:
            handle = self._running.pop(ref)
            try:
                outcome = self._ray.get(ref)
            except self._ray.exceptions.RayError as e:
                first = first_line(e)
                outcome = WorkerLost(f"Ray worker lost ({type(e).__name__}: {first})")
            done.append((handle, outcome))
        return done

    def interrupt(self) -> None:
        for ref in self._running:
            self._ray.cancel(ref)

    def close(self) -> None:
        self._ray.shutdown()
