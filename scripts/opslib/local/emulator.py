"""The embedded default's AWS emulator: a moto server (`emulator_server.py`) in its own process on a free
loopback port, which can keep its tables and buckets between runs (`Emulator(state_dir=...)`, saved and
restored by `snapshot.EmulatorState`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from backtesting_modules.pipeline.clients import ClientFactory

from ..errors import LocalSetupError
from .snapshot import EmulatorState

ROOT = Path(__file__).resolve().parents[3]
STATE_ENV = "MAKENAIDE_LOCAL_STATE"  # where the embedded default keeps its state (default .local-aws/)
EMULATOR_SERVER = Path(__file__).with_name("emulator_server.py")  # moto's server, made cheaper: see there


def local_state_dir() -> Path:
    """The embedded default's state folder: $MAKENAIDE_LOCAL_STATE, else .local-aws/ in the repository."""
    return Path(os.environ.get(STATE_ENV) or ROOT / ".local-aws")


LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "ap-northeast-2",
    "AWS_REGION": "ap-northeast-2",
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Emulator:
    """A moto server in its own process (its own GIL), on a free loopback port.

    With `state_dir` its tables and buckets outlive it (moto itself keeps nothing): `start` restores the
    snapshot saved there (the previous one, with a warning, when it cannot be read), unless `fresh`; `stop`
    saves a new one before ending the server, unless `read_only`. The server loads and dumps the state
    itself and leaves stored objects in their files until read, so neither costs the size of the history.
    Queues are not kept: a batch stopped midway is finished by `run_batch.py --resume`.
    Without `state_dir` (the tests) everything is gone at `stop`.
    """

    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    state_dir: Path | None = None
    fresh: bool = False
    read_only: bool = False
    region: str = LOCAL_CREDENTIALS["AWS_REGION"]
    timings: dict[str, float] = field(default_factory=dict)  # restore_s, save_s and what they moved
    stock: bool = False  # `python -m moto.server` as shipped instead of emulator_server.py (benchmarks)
    restored: str | None = field(default=None, init=False)  # the snapshot restored at start
    saving: bool = field(default=False, init=False)  # only a complete start may save over the snapshot

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> Emulator:
        server = ["-m", "moto.server"] if self.stock else [str(EMULATOR_SERVER)]
        command = [sys.executable, *server, "-H", "127.0.0.1", "-p", str(self.port)]
        if not self.stock:  # it dies with this process, even a SIGKILLed one (opslib/local/lifetime.py)
            command += ["--parent-pid", str(os.getpid())]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while not self._listening():
            if self.process.poll() is not None:
                raise LocalSetupError(
                    f"the AWS emulator exited at start (code {self.process.returncode}): is moto[server] "
                    "installed? `make setup` installs it."
                )
            if time.monotonic() > deadline:
                self.stop()
                raise LocalSetupError(
                    f"the AWS emulator did not listen on 127.0.0.1:{self.port} in {timeout_s:.0f} s"
                )
            time.sleep(0.05)  # a subprocess offers no waiter; poll the port until it listens
        self._restore()
        return self

    def _listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.saving and self.process is not None and self.process.poll() is not None:
            print(
                f"warning: the AWS emulator exited (code {self.process.returncode}) before its state could "
                f"be saved; {self.state_dir} keeps the state of the previous run.",
                file=sys.stderr,
            )
        if self.process is not None and self.process.poll() is None:
            if self.saving:
                self._save()
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        self.saving = False

    def environ(self) -> dict[str, str]:
        return {**LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint_url}

    def _clients(self) -> ClientFactory:
        # boto3 reads credentials from the environment, which the caller may not have pointed here yet;
        # the emulator accepts any.
        os.environ.setdefault("AWS_ACCESS_KEY_ID", LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"])
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
        return ClientFactory(endpoint_url=self.endpoint_url, region=self.region)

    def _restore(self) -> None:
        if self.state_dir is None:
            return
        state = EmulatorState(self.state_dir)
        if not self.fresh:
            started = time.monotonic()
            try:
                self.restored, moved = state.restore(self._clients())
            except (OSError, ValueError, KeyError, TypeError, ClientError, BotoCoreError) as exc:
                self.stop()
                raise LocalSetupError(
                    f"cannot restore the local AWS state from {state.current_dir() or self.state_dir} "
                    f"({type(exc).__name__}: {exc}); start empty with --fresh (the state is then replaced "
                    f"when the run ends), or move {self.state_dir} away."
                ) from exc
            except BaseException:
                self.stop()  # no server outlives a failed start
                raise
            self.timings.update(moved, restore_s=time.monotonic() - started)
        self.saving = not self.read_only

    def _save(self) -> None:
        if self.state_dir is None:
            return
        started = time.monotonic()
        try:
            moved = EmulatorState(self.state_dir).save(
                self._clients(), merge=not self.fresh, restored=self.restored
            )
        except (OSError, ValueError, ClientError, BotoCoreError) as exc:
            # stop() runs on the way out of errors too: report, never raise over the original error.
            print(
                f"warning: the local AWS state was not saved ({type(exc).__name__}: {exc}); "
                f"{self.state_dir} keeps the state of the previous run.",
                file=sys.stderr,
            )
            return
        self.timings.update(moved, save_s=time.monotonic() - started)
