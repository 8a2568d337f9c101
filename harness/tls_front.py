"""A TLS terminator in front of the embedded broker (Tansu 0.6.0 cannot serve TLS itself)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from pathlib import Path
from typing import Any


class TlsFront:
    """A TLS terminator on host:port relaying every connection to a plaintext port on loopback.

    It runs its own event loop in a daemon thread; `stop` closes the listener and every relayed
    connection. Only TLS clients that trust the certificate's issuer get through.
    """

    def __init__(self, host: str, port: int, backend_port: int, cert: Path, key: Path) -> None:
        self.host, self.port, self.backend_port = host, port, backend_port
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(cert, key)
        self._loop = asyncio.new_event_loop()
        self._loop.set_exception_handler(_quiet_refusals)
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> TlsFront:
        """Listen on host:port (raises OSError when it cannot)."""
        try:
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._relay, self.host, self.port, ssl=self._context)
            )
        except BaseException:
            self._loop.close()
            raise
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"tls-front-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            broker_r, broker_w = await asyncio.open_connection("127.0.0.1", self.backend_port)
        except OSError:
            client_w.close()
            return
        self._writers |= {client_w, broker_w}
        try:
            await asyncio.gather(_pipe(client_r, broker_w), _pipe(broker_r, client_w))
        finally:
            self._writers -= {client_w, broker_w}

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        await asyncio.sleep(0)

    def stop(self) -> None:
        """Close the listener and the relayed connections; end the thread."""
        if self._thread is None:
            self._loop.close()
            return
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._thread = None
        self._loop.close()


def _quiet_refusals(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Refused handshakes (plaintext or untrusting clients) are the point: not logged."""
    if not isinstance(context.get("exception"), (OSError, ssl.SSLError)):
        loop.default_exception_handler(context)


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    """Copy src to dst until either side closes; then close dst."""
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    except (OSError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            dst.close()
