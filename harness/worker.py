"""Run journeystream workers as child processes (process, demo, tests): start, ready, kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from harness.broker import die_with_parent
from streams.settings import Settings


class WorkerError(RuntimeError):
    """A worker process failed to start or become ready."""


@dataclass
class WorkerProcess:
    """One `journeystream worker` child process with its own settings, port and log."""

    settings: Settings
    log_path: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def base_url(self) -> str:
        """The worker's web server."""
        return f"http://{self.settings.web_host}:{self.settings.web_port}"

    def start(self) -> WorkerProcess:
        """Start the worker process (returns at once; see wait_ready)."""
        env = {**os.environ, **self.settings.to_env(), **self.extra_env}
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "harness", "worker"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=die_with_parent(),  # SIGTERM when the parent dies: no orphans
            )
        return self

    def alive(self) -> bool:
        """True while the process runs."""
        return self._proc is not None and self._proc.poll() is None

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until /ready answers 200 (partitions assigned, state recovered)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise WorkerError(f"worker exited early; log: {self.log_path}\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.base_url + "/ready", timeout=1.0) as resp:  # noqa: S310
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise WorkerError(
            f"worker not ready in {timeout}s; log: {self.log_path}\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 20.0) -> int | None:
        """Stop gracefully (SIGTERM), SIGKILL after `timeout`; return the exit code."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL the worker (crash simulation)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the worker's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
