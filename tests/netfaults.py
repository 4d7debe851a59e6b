"""A TCP proxy that drops the first N connections mid-request, then forwards faithfully."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from types import TracebackType

from cli.processes import free_port


class FlakyProxy:
    """127.0.0.1:<port> -> target; the first ``drop_first`` connections are reset."""

    def __init__(self, target_port: int, drop_first: int) -> None:
        self.port = free_port()
        self._target = ("127.0.0.1", target_port)
        self._remaining_drops = drop_first
        self.dropped = 0
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._server.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> FlakyProxy:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(5)
        self._server.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            if self._remaining_drops > 0:
                self._remaining_drops -= 1
                self.dropped += 1
                with contextlib.suppress(OSError):
                    client.recv(1024)  # the request has started: the network now fails
                # SO_LINGER 0 makes close() send RST, like a dropped connection.
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()
                continue
            upstream = socket.create_connection(self._target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
