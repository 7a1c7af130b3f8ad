"""Calling the WSGI app with an environ built by hand, byte for byte as a server would build it:
WebTest quotes and checks what it sends, and malformed requests are the point here."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class _Stream(io.RawIOBase):
    """A body that counts what the app reads of it, and may be endless."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._pending = b""
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        self.consumed += n
        return n


@dataclass
class RawRequest:
    method: str = "GET"
    #: The path as bytes, already percent-decoded, as a server puts it in PATH_INFO.
    path: bytes = b"/"
    query: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    #: An alternative to ``body``: chunks sent with Transfer-Encoding: chunked.
    chunks: Iterable[bytes] | None = None
    remote_addr: str = "127.0.0.1"

    def environ(self) -> tuple[dict[str, Any], _Stream]:
        stream = _Stream(self.chunks if self.chunks is not None else [self.body or b""])
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.method,
            "SCRIPT_NAME": "",
            "PATH_INFO": self.path.decode("latin-1"),
            "QUERY_STRING": self.query,
            "SERVER_NAME": "localhost",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": self.remote_addr,
            "HTTP_HOST": "localhost",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BufferedReader(stream),
            "wsgi.errors": io.StringIO(),
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        if self.chunks is not None:
            environ["HTTP_TRANSFER_ENCODING"] = "chunked"
        elif self.body is not None:
            environ["CONTENT_LENGTH"] = str(len(self.body))
        for name, value in self.headers.items():
            key = name.upper().replace("-", "_")
            if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                environ[key] = value
            else:
                environ[f"HTTP_{key}"] = value
        return environ, stream


def call(app: Any, request: RawRequest) -> tuple[RawResponse, int]:
    """Send ``request`` to the WSGI ``app``; the answer and how many body bytes it read."""
    environ, stream = request.environ()
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured["status"] = int(status.split()[0])
        captured["headers"] = {name.lower(): value for name, value in headers}
        return lambda data: None

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return RawResponse(captured["status"], captured["headers"], body), stream.consumed
