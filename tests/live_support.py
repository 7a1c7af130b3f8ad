"""The real WSGI app behind waitress on 127.0.0.1, for tests that need real HTTP (concurrent
deliveries, a payment processor calling back the app's public URL)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import waitress.server


class LiveServer:
    """A bound port first, so the app's public URL (its callbacks) can point at it; the app is
    given afterwards with :meth:`start`."""

    def __init__(self) -> None:
        self.app: Any = None
        self.server = waitress.server.create_server(
            lambda environ, start: self.app(environ, start),
            host="127.0.0.1",
            port=0,
            threads=12,
            connection_limit=200,
            clear_untrusted_proxy_headers=True,
        )
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self, app: Any) -> None:
        self.app = app
        self.thread.start()

    def stop(self) -> None:
        stop_server(self.server, self.thread)


def stop_server(server: Any, thread: threading.Thread) -> None:
    """Stop a waitress server running ``server.run`` in ``thread``, at once.

    Closing only the listening socket leaves the open connections (a client's keep-alive
    ones) in the loop's map, and the loop runs while any is there: the thread outlived a
    ten-second join, then ran on until their idle timeout. So every channel is closed, from
    the loop's own thread (the trigger), and the loop ends with its map empty.
    """
    from waitress import wasyncore

    if thread.is_alive():
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        thread.join(timeout=10)
    else:
        wasyncore.close_all(server._map)
    server.task_dispatcher.shutdown()


def serve_live() -> Iterator[LiveServer]:
    """The body of a ``live_server`` fixture: a server, stopped after the test."""
    server = LiveServer()
    yield server
    server.stop()
