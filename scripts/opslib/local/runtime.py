"""The embedded default, up for as long as a `with` block (`LocalRuntime`: emulator, stack, worker and
collector processes), and the CPU time each of its processes used.

`run_batch.py` runs one batch per runtime (through `opslib.batch.execute_batch`, as on AWS); the benchmarks
keep one runtime up across many batches (like warm Lambda containers) and read the per-process CPU time it
accounts, to say which part of the pipeline limits a run.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
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


@dataclass
class LocalRuntime:
    """The embedded default, up for as long as the `with` block: a moto server on 127.0.0.1, the stack
    created from config/stack.yaml, `workers` worker processes and one collector process."""

    stack: StackConfig
    workers: int = 2
    visibility_timeout_s: int = 60
    emulator: Emulator = field(default_factory=Emulator)
    group: ProcessGroup = field(default_factory=ProcessGroup)
    clients: ClientFactory | None = None
    names: StackNames | None = None
    urls: dict[str, str] = field(default_factory=dict)
    roles: dict[int, str] = field(default_factory=dict)  # pid → "worker" / "collector"

    def __enter__(self) -> LocalRuntime:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> LocalRuntime:
        self.emulator.start()
        try:
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
        self.group.stop()
        self.roles.clear()
        self.emulator.stop()

    def start_pollers(self, workers: int) -> None:
        """(Re)start `workers` worker processes and the collector; they poll until stopped."""
        if self.group.processes:
            self.group.stop()
            # A poller stopped during a long poll leaves its receive pending in the emulator, which would
            # hand the next message to a dead client (it then returns only after the visibility timeout).
            # The emulator cannot cancel it: let the pending receives (1 s long polls) run out first.
            time.sleep(POLL_WAIT_S + 0.5)
        self.roles.clear()
        names = self._names()
        environ = {**self.emulator.environ(), **self.stack.handler_env(names, self.urls).to_environ()}
        worker = function_poller("worker", names, self.urls, environ)
        for process in self.group.start(worker, count=workers):
            self.roles[process.pid or 0] = "worker"
        collector = function_poller("collector", names, self.urls, environ)
        for process in self.group.start(collector):
            self.roles[process.pid or 0] = "collector"
        self.workers = workers

    def store(self) -> Store:
        names = self._names()
        return Store(self._clients(), names.table, names.bucket)

    def submitter(self) -> Submitter:
        return Submitter(
            self._clients(), self._names(), self.urls, read_locations=self.stack.data_read_locations
        )

    def alive(self) -> bool:
        """False when every poller process has exited (nothing would ever finish the batch)."""
        return not self.group.processes or len(self.group.dead()) < len(self.group.processes)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used so far by role: emulator, worker (all), collector, driver (this process), and
        the whole machine's busy and idle seconds (what other processes took shows as the difference)."""
        out = {"emulator": 0.0, "worker": 0.0, "collector": 0.0}
        process = self.emulator.process
        if process is not None:
            out["emulator"] = process_cpu_seconds(process.pid) or 0.0
        for pid, role in self.roles.items():
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
