"""HTTP/1.1 over a raw socket: requests sent byte for byte as given, answers parsed strictly."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from types import TracebackType

import orjson

Headers = list[tuple[bytes, bytes]]

BODY_METHODS = (b"POST", b"PUT", b"PATCH")
HEAD_LIMIT = 1 << 20  # bytes without a line end before the answer counts as garbage


def request_head(method: bytes, target: bytes, headers: Headers, version: bytes) -> list[bytes]:
    """The request line, a host header and ``headers``, one line each."""
    lines = [method + b" " + target + b" " + version, b"host: 127.0.0.1"]
    return lines + [name + b": " + value for name, value in headers]


def head_and_body(lines: list[bytes], body: bytes) -> bytes:
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def encode_request(
    method: bytes, target: bytes, headers: Headers, body: bytes = b"", version: bytes = b"HTTP/1.1"
) -> bytes:
    """A request with an honest Content-Length wherever there is or may be a body."""
    lines = request_head(method, target, headers, version)
    if body or method in BODY_METHODS:
        lines.append(b"content-length: %d" % len(body))
    return head_and_body(lines, body)


class WireError(Exception):
    """The connection failed before a whole answer arrived."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@dataclass
class RawResponse:
    status: int
    headers: dict[bytes, bytes]  # names lowercased
    body: bytes

    @property
    def closes(self) -> bool:
        return self.headers.get(b"connection", b"").lower() == b"close"

    def header(self, name: str) -> str | None:
        value = self.headers.get(name.lower().encode())
        return None if value is None else value.decode("latin-1")

    def json(self) -> object:
        return orjson.loads(self.body)


class RawConnection:
    """One keep-alive connection to 127.0.0.1:``port``."""

    def __init__(self, port: int, timeout: float = 10) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buffer = b""

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def request(
        self, method: str, target: bytes, headers: Headers, body: bytes = b""
    ) -> RawResponse:
        """Send one well-framed request and read its answer."""
        self.sock.sendall(encode_request(method.encode(), target, headers, body))
        return self.answer()

    def send(self, data: bytes) -> str:
        """Send everything; '' or what went wrong (the server may have answered early)."""
        try:
            self.sock.sendall(data)
        except OSError as exc:
            return type(exc).__name__
        return ""

    def shutdown_write(self) -> str:
        """Close the sending side; '' or what went wrong."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            return type(exc).__name__
        return ""

    def answer(self, head_only: bool = False) -> RawResponse:
        """The next final answer (1xx skipped)."""
        status, headers = self._head()
        try:
            return self._body(status, headers, head_only)
        except WireError as exc:
            raise WireError(f"{status} answer cut off after its head ({exc.kind})") from None

    def _fill(self) -> None:
        try:
            chunk = self.sock.recv(262144)
        except TimeoutError:
            raise WireError("no answer within the timeout") from None
        except ConnectionResetError:
            raise WireError("connection reset") from None
        except OSError as exc:
            raise WireError(type(exc).__name__) from None
        if not chunk:
            raise WireError("connection closed")
        self.buffer += chunk

    def _take(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._fill()
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def _until(self, end: bytes) -> bytes:
        while end not in self.buffer:
            if len(self.buffer) > HEAD_LIMIT:
                raise WireError("garbage instead of an answer")
            self._fill()
        taken, _, self.buffer = self.buffer.partition(end)
        return taken

    def _head(self) -> tuple[int, dict[bytes, bytes]]:
        while True:
            lines = self._until(b"\r\n\r\n").split(b"\r\n")
            parts = lines[0].split(b" ", 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
                raise WireError("garbage instead of an answer")
            status = int(parts[1])
            headers: dict[bytes, bytes] = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            if 100 <= status < 200:
                if status == 101:
                    raise WireError("switched protocols")
                continue
            return status, headers

    def _body(self, status: int, headers: dict[bytes, bytes], head_only: bool) -> RawResponse:
        if head_only or status in (204, 304):
            return RawResponse(status, headers, b"")
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            return RawResponse(status, headers, self._chunks())
        if b"content-length" in headers:
            return RawResponse(status, headers, self._take(int(headers[b"content-length"])))
        try:
            while True:
                self._fill()
        except WireError as exc:
            if exc.kind != "connection closed":
                raise
        body, self.buffer = self.buffer, b""
        return RawResponse(status, headers, body)

    def _chunks(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size_line = self._until(b"\r\n").split(b";")[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise WireError("garbage in a chunked answer") from None
            if size == 0:
                while self._until(b"\r\n"):
                    pass
                return b"".join(parts)
            parts.append(self._take(size))
            self._take(2)
