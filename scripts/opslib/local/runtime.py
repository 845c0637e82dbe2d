"""The embedded default, up for as long as a `with` block (`LocalRuntime`: emulator, stack, worker and
collector processes), and the CPU time each of its processes used.

`run_batch.py` runs one batch per runtime (through `opslib.batch.execute_batch`, as on AWS); the benchmarks
keep one runtime up across many batches (like warm Lambda containers) and read the per-process CPU time it
accounts, to say which part of the pipeline limits a run.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import TracebackType

from backtesting_modules.names import StackNames
from backtesting_modules.pipeline.clients import ClientFactory
from backtesting_modules.pipeline.store import Store

from ..batch.submitter import Submitter
from ..errors import LocalSetupError
from ..stack import StackConfig
from .emulator import Emulator
from .pollers import POLL_WAIT_S, ProcessGroup, function_poller
from .provision import ensure_stack

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
RESTART_WINDOW_S = 60.0  # at most max(2, N) of a function's N processes are replaced in any such window
SUPERVISE_EVERY_S = 0.2  # how long the supervisor waits on the sentinels before it looks for `stop` again


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a live process (Linux /proc); None where /proc is not available."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            stat = handle.read()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_cpu_seconds() -> tuple[float, float] | None:
    """(busy, idle) CPU seconds of the whole machine since boot, all cores (Linux /proc/stat)."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            ticks = [int(v) for v in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    busy = sum(ticks[:8]) - idle  # user nice system idle iowait irq softirq steal (guest is in user)
    return busy / CLOCK_TICKS, idle / CLOCK_TICKS


def exit_description(code: int | None) -> str:
    """A process's exit code for a log line ("exit code -9, SIGKILL")."""
    if code is not None and code < 0:
        try:
            return f"exit code {code}, {signal.Signals(-code).name}"
        except ValueError:
            return f"exit code {code}, signal {-code}"
    return f"exit code {code}"


@dataclass(frozen=True)
class Restart:
    """A process the supervisor replaced: when (monotonic), its function, pid and exit code, the new pid."""

    at: float
    function: str
    pid: int
    exitcode: int | None
    replacement: int


@dataclass
class SupervisedGroup(ProcessGroup):
    """A process group kept at strength, as Lambda keeps its concurrency: once `supervise()` is called, a
    thread in the driver waits on the processes' sentinels and starts a process with the same spec in place
    of each one that exits, saying so on stderr with the dead pid and its exit code.

    At most max(2, N) processes of a function with N processes are replaced per `RESTART_WINDOW_S`, so one
    that dies at start is not restarted forever: past that it is reported on stderr and left dead, and once
    every process of a function is (`alive` False) the batch ends with its --resume message."""

    abandoned: set[int] = field(default_factory=set)  # pids of exited processes that will not be replaced
    restarts: list[Restart] = field(default_factory=list)
    _halt: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def supervise(self) -> None:
        """Replace the processes that exit, until `stop` (or `unsupervise`)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._halt = threading.Event()
            self._thread = threading.Thread(target=self._watch, name="poller-supervisor", daemon=True)
            self._thread.start()

    def unsupervise(self) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join()
        self._thread = None

    def stop(self) -> None:
        """The supervisor first (it replaces nothing from then on), then every process."""
        try:
            self.unsupervise()
        finally:
            super().stop()
            self.abandoned.clear()

    def alive(self) -> bool:
        """False once every process of some function has exited and none of them will be replaced."""
        supervised = self._thread is not None and self._thread.is_alive() and not self._halt.is_set()
        return self._every_function(lambda p: p.is_alive() or (supervised and p.pid not in self.abandoned))

    def _watch(self) -> None:
        while not self._halt.is_set():
            with self._lock:
                watched = [p for p in self.processes if p.pid not in self.abandoned]
            if watched:
                wait([p.sentinel for p in watched], timeout=SUPERVISE_EVERY_S)
            else:
                self._halt.wait(SUPERVISE_EVERY_S)
            with self._lock:
                if self._halt.is_set():
                    return
                for process in watched:
                    if process.exitcode is not None and process in self.processes:
                        self._replace(process)

    def _replace(self, process: BaseProcess) -> None:
        pid = process.pid or 0
        function = self.specs[pid].function
        how = exit_description(process.exitcode)
        if self.shared is not None and self.shared.normal_slots is not None:
            self.shared.normal_slots.release(pid)  # a worker killed on a normal job leaks no slot
        now = time.monotonic()
        peers = sum(1 for p in self.processes if self.specs[p.pid or 0].function == function)
        recent = sum(1 for r in self.restarts if r.function == function and now - r.at < RESTART_WINDOW_S)
        new: BaseProcess | None = None
        if recent < max(2, peers):
            try:
                new = self._spawn(self.specs[pid])
            except Exception as exc:
                _say(f"local {function} process {pid} exited ({how}); no replacement could start: {exc}")
        else:
            _say(
                f"local {function} process {pid} exited ({how}) and is not replaced: {recent} {function} "
                f"processes were replaced in the last {RESTART_WINDOW_S:.0f} s already"
            )
        if new is None:
            self.abandoned.add(pid)
            return
        self.processes.remove(process)
        self.restarts.append(Restart(now, function, pid, process.exitcode, new.pid or 0))
        _say(f"local {function} process {pid} exited ({how}); process {new.pid} started in its place")
        process.close()


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class LocalRuntime:
    """The embedded default, up for as long as the `with` block: a moto server on 127.0.0.1, the stack
    created from config/stack.yaml, `workers` worker processes and one collector process, kept at strength
    (`SupervisedGroup`: a process that dies is replaced) and all stopped when the block ends, however it
    ends (an exception, Ctrl-C, SIGTERM turned into an exception by `opslib.cli.on_sigterm`).

    As on AWS, where the worker's normal-queue mapping is capped at `normal_maximum_concurrency`, at most
    that many workers take normal-queue jobs at once; the others take only priority jobs.

    For the run's summary: `crashes` (handler invocations that raised, each logged on stderr with its jobs
    and traceback), `failed_records` (records left for redelivery, the crashes' included) and `restarts`
    (processes replaced)."""

    stack: StackConfig
    workers: int = 2
    visibility_timeout_s: int = 60
    emulator: Emulator = field(default_factory=Emulator)
    group: SupervisedGroup = field(default_factory=SupervisedGroup)
    clients: ClientFactory | None = None
    names: StackNames | None = None
    urls: dict[str, str] = field(default_factory=dict)
    worker_faults: str = ""  # injected into the workers' AWS calls (`faults.FaultInjector`): tests only

    def __enter__(self) -> LocalRuntime:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> LocalRuntime:
        try:
            self.emulator.start()
            os.environ.update(self.emulator.environ())
            self.clients = ClientFactory(endpoint_url=self.emulator.endpoint_url, region=self.stack.region)
            self.names = self.stack.names()
            self.urls = ensure_stack(
                self.clients, self.stack, self.names, visibility_timeout_s=self.visibility_timeout_s
            )
            self.start_pollers(self.workers)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the pollers (their supervisor first), then the emulator (which saves its state); an
        interrupt on the way (a second Ctrl-C or SIGTERM) still ends every process."""
        try:
            self.group.stop()
        finally:
            try:
                self.emulator.stop()
            finally:
                process = self.emulator.process
                if process is not None and process.poll() is None:  # stop() was interrupted
                    process.kill()
                    process.wait(timeout=5)

    def start_pollers(self, workers: int) -> None:
        """(Re)start `workers` worker processes and the collector; they poll until stopped."""
        if self.group.processes:
            self.group.stop()
            # A poller stopped during a long poll leaves its receive pending in the emulator, which would
            # hand the next message to a dead client (it then returns only after the visibility timeout).
            # The emulator cannot cancel it: let the pending receives (1 s long polls) run out first.
            time.sleep(POLL_WAIT_S + 0.5)
        names = self._names()
        environ = {**self.emulator.environ(), **self.stack.handler_env(names, self.urls).to_environ()}
        normal = self.stack.worker.normal_maximum_concurrency
        self.group.limit_normal(normal if normal is not None and normal < workers else None)
        self.group.start(
            function_poller("worker", names, self.urls, environ, faults=self.worker_faults), workers
        )
        self.group.start(function_poller("collector", names, self.urls, environ))
        self.group.supervise()
        self.workers = workers

    @property
    def roles(self) -> dict[int, str]:
        """pid → "worker" / "collector" of the running pollers."""
        return self.group.roles()

    @property
    def crashes(self) -> int:
        """Handler invocations that raised so far (worker and collector; each logged on stderr)."""
        return self.group.counts()[0]

    @property
    def failed_records(self) -> int:
        """Records the handlers left for redelivery so far (a crash leaves all of its records)."""
        return self.group.counts()[1]

    @property
    def restarts(self) -> int:
        """Poller processes that died and were replaced so far."""
        return len(self.group.restarts)

    def store(self) -> Store:
        names = self._names()
        return Store(self._clients(), names.table, names.bucket)

    def submitter(self) -> Submitter:
        return Submitter(
            self._clients(), self._names(), self.urls, read_locations=self.stack.data_read_locations
        )

    def alive(self) -> bool:
        """False once every worker (or the collector) has exited and cannot be replaced: nothing would
        ever finish the batch."""
        return self.group.alive()

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used so far by role: emulator, worker (all), collector, driver (this process), and
        the whole machine's busy and idle seconds (what other processes took shows as the difference)."""
        out = {"emulator": 0.0, "worker": 0.0, "collector": 0.0}
        process = self.emulator.process
        if process is not None:
            out["emulator"] = process_cpu_seconds(process.pid) or 0.0
        for pid, role in self.group.roles().items():
            out[role] += process_cpu_seconds(pid) or 0.0
        times = os.times()
        out["driver"] = times.user + times.system
        machine = machine_cpu_seconds()
        if machine is not None:
            out["machine_busy"], out["machine_idle"] = machine
        return out

    def _clients(self) -> ClientFactory:
        if self.clients is None:
            raise LocalSetupError(
                "the local runtime is not started: use it in a `with` block or call start()"
            )
        return self.clients

    def _names(self) -> StackNames:
        if self.names is None:
            raise LocalSetupError(
                "the local runtime is not started: use it in a `with` block or call start()"
            )
        return self.names
