"""What the fake provider APIs share: a threaded HTTP server on 127.0.0.1 that answers each
request with the behaviour chosen for its key, records every request, and counts how many it
answers at once. ``fakes.gemini`` and ``fakes.openai_images`` subclass :class:`FakeServer` with
their wire formats."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass
class Reply:
    """What the fake answers. ``body`` may be a dict (sent as JSON) or raw bytes."""

    status: int = 200
    body: dict[str, Any] | bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    #: Seconds to wait before answering (interrupted when the server stops).
    delay: float = 0.0
    #: Close the connection without answering at all.
    drop: bool = False


Behaviour = Callable[..., Reply]


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # Do not join handler threads on close: a "slow" handler must not hold up shutdown.
    block_on_close = False
    # Room for a worker's whole burst of calls (hundreds at once) in the listen backlog.
    request_queue_size = 1024
    fake: FakeServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out and hang up mid-answer are normal here; stay quiet.
        pass


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real services serve it
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.fake._handle(self, b"")

    def do_POST(self) -> None:
        length = self.headers.get("content-length")
        if length is None:
            self._send(self.server.fake.length_required())
            return
        self.server.fake._handle(self, self.rfile.read(int(length)))

    def _send(self, reply: Reply) -> None:
        if reply.drop:
            self.close_connection = True
            with suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        headers = {"content-type": self.server.fake.content_type}
        headers.update({name.lower(): value for name, value in reply.headers.items()})
        try:
            self.send_response(reply.status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            self.close_connection = True  # the client gave up (timeout): nothing to do


class FakeServer:
    """The server. Use as a context manager, or call ``start()`` and ``stop()``.

    A subclass names itself (``service``), gives its ``behaviours`` and ``content_type``, and
    answers in :meth:`_handle` (recording with :meth:`_answering`, sending with :meth:`_send`).
    """

    service: ClassVar[str] = "fake"
    behaviours: ClassVar[Mapping[str, Behaviour]] = {}
    content_type: ClassVar[str] = "application/json"

    def __init__(self, *, default: str | Behaviour = "success") -> None:
        self.default = default
        self._rules: dict[str, tuple[str | Behaviour, dict[str, Any]]] = {}
        self._requests: list[Any] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        #: Requests being answered now, and the most there ever were at once.
        self.in_flight = 0
        self.max_in_flight = 0

    # lifecycle

    def start(self) -> Any:
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=f"fake-{self.service.lower()}",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # wake handlers waiting out a delay
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"the fake {self.service} server is not running")
        return self._server.server_address[1]

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # behaviour

    def behave(self, key: str, behaviour: str | Behaviour, **options: Any) -> None:
        """Make ``key`` answer with ``behaviour`` (a name in ``behaviours`` or a callable)."""
        if isinstance(behaviour, str) and behaviour not in self.behaviours:
            known = ", ".join(self.behaviours)
            raise ValueError(f"unknown behaviour {behaviour!r}; known: {known}")
        with self._lock:
            self._rules[key] = (behaviour, options)

    def behaviour_for(self, key: str | None) -> tuple[str | Behaviour, dict[str, Any]]:
        """The rule for ``key``; else the behaviour its prefix names; else the default."""
        with self._lock:
            if key is not None and key in self._rules:
                return self._rules[key]
        prefix = (key or "").split("-", 1)[0]
        if prefix in self.behaviours:
            return prefix, {}
        return self.default, {}

    # what was received

    @property
    def requests(self) -> list[Any]:
        """A snapshot of every request received, oldest first."""
        with self._lock:
            return list(self._requests)

    def requests_for(self, key: str) -> list[Any]:
        return [r for r in self.requests if r.api_key == key]

    def clear(self) -> None:
        """Forget recorded requests and the in-flight peak (behaviours stay)."""
        with self._lock:
            self._requests.clear()
            self.max_in_flight = self.in_flight

    # for subclasses

    def length_required(self) -> Reply:
        """The answer to a POST without Content-Length, in the service's error shape."""
        raise NotImplementedError

    def _handle(self, handler: _Handler, body: bytes) -> None:
        raise NotImplementedError

    @contextmanager
    def _answering(self, request: Any) -> Iterator[None]:
        """Record ``request`` and count it in flight while it is answered."""
        with self._lock:
            self._requests.append(request)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= 1

    def _send(self, handler: _Handler, reply: Reply) -> None:
        """Send ``reply`` once its delay is over; a server stopping meanwhile answers nothing."""
        if reply.delay and self._stopping.wait(reply.delay):
            reply = Reply(drop=True)
        handler._send(reply)
