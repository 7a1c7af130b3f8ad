"""Celery's heartbeat writers (see :mod:`nproxy_core.healthcheck`): a consumer bootstep for
every worker and the scheduler of ``nproxy beat``."""

from __future__ import annotations

from typing import Any

from celery import bootsteps
from celery.beat import PersistentScheduler

from nproxy_core.healthcheck import INTERVAL_SECONDS, HeartbeatFile, heartbeat_path


class WorkerHeartbeatFile(bootsteps.StartStopStep):
    """Beats while the consumer is connected and taking tasks, on the consumer's timer.

    A consumer step starts after the task consumer does and stops when the broker connection
    is lost (then starts again with it): a worker that cannot take jobs is not healthy.
    """

    requires = ("celery.worker.consumer.tasks:Tasks",)
    label = "nproxy healthcheck file"

    def __init__(self, consumer: Any, **kwargs: Any) -> None:
        super().__init__(consumer, **kwargs)
        self._timer_ref: Any = None
        self._heartbeat: HeartbeatFile | None = None

    def start(self, consumer: Any) -> None:
        settings = consumer.app.pyramid_registry.settings
        self._heartbeat = HeartbeatFile(heartbeat_path(settings, "worker"))
        self._heartbeat.beat()
        self._timer_ref = consumer.timer.call_repeatedly(INTERVAL_SECONDS, self._heartbeat.beat)

    def stop(self, consumer: Any) -> None:
        if self._timer_ref is not None:
            self._timer_ref.cancel()
            self._timer_ref = None

    def shutdown(self, consumer: Any) -> None:
        self.stop(consumer)
        if self._heartbeat is not None:
            self._heartbeat.remove()


class HeartbeatScheduler(PersistentScheduler):
    """Celery's file-backed scheduler, beating on every pass of beat's loop, and passing at
    least every :data:`INTERVAL_SECONDS` so that a quiet schedule does not look dead."""

    def setup_schedule(self) -> None:
        settings = self.app.pyramid_registry.settings
        self._heartbeat = HeartbeatFile(heartbeat_path(settings, "beat"))
        super().setup_schedule()

    def tick(self, *args: Any, **kwargs: Any) -> float:
        interval = super().tick(*args, **kwargs)
        self._heartbeat.beat()
        return min(interval, INTERVAL_SECONDS)

    def close(self) -> None:
        super().close()
        self._heartbeat.remove()
