"""Provider calls bounded by a deadline, on reusable daemon threads the router can abandon."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any


class DaemonThreads:
    """Runs calls on reusable daemon threads, so each attempt can be abandoned at its deadline.

    A standard thread pool will not do: its threads are joined at interpreter exit, so one
    hung attempt would keep a worker process from stopping. An abandoned call only keeps its
    own thread; threads are reused once their call returns.
    """

    def __init__(self) -> None:
        self._idle: queue.SimpleQueue[queue.SimpleQueue[Any]] = queue.SimpleQueue()

    def run(self, fn: Callable[[], Any], timeout: float) -> Any:
        """``fn()``'s result (or exception); :class:`TimeoutError` past ``timeout`` seconds."""
        future: Future[Any] = Future()
        try:
            inbox = self._idle.get_nowait()
        except queue.Empty:
            inbox = queue.SimpleQueue()
            threading.Thread(
                target=self._serve, args=(inbox,), name="nproxy-attempt", daemon=True
            ).start()
        inbox.put((fn, future))
        try:
            return future.result(timeout)
        except FutureTimeout:
            raise TimeoutError from None

    def _serve(self, inbox: queue.SimpleQueue[Any]) -> None:
        while True:
            fn, future = inbox.get()
            try:
                future.set_result(fn())
            except BaseException as exc:  # delivered to the waiting thread
                future.set_exception(exc)
            del fn, future
            self._idle.put(inbox)
