"""``GET /metrics``: every process's counters added up, and the states read at scrape time."""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector
from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

from nproxy_core.billing.models import Payment
from nproxy_core.db import IDatabase
from nproxy_core.errors import NotAuthenticated, NotFound
from nproxy_core.keypool.models import KeyState, ProviderKey
from nproxy_core.tasks import CELERY_APP

log = logging.getLogger(__name__)

#: The broker is asked this briefly at most: a scrape must not hang on it.
BROKER_TIMEOUT_SECONDS = 2.0


class StateCollector:
    """Gauges read from the database and the broker at each scrape."""

    def __init__(self, request: Request) -> None:
        self._request = request

    def collect(self) -> Iterator[GaugeMetricFamily]:
        sessions = self._request.find_service(IDatabase).read_only_session_factory
        with sessions() as db:
            keys = GaugeMetricFamily(
                "nproxy_keys", "Provider keys by state", labels=["provider", "state"]
            )
            counts = {
                (row.provider, str(row.state)): row.n
                for row in db.execute(
                    sa.select(ProviderKey.provider, ProviderKey.state, sa.func.count().label("n"))
                    .where(ProviderKey.deleted_at.is_(None))
                    .group_by(ProviderKey.provider, ProviderKey.state)
                )
            }
            for provider in sorted({p for p, _ in counts}):
                for state in KeyState:  # every state, zeros included: alerts need the series
                    keys.add_metric([provider, str(state)], counts.get((provider, str(state)), 0))
            yield keys
            review = db.scalar(
                sa.select(sa.func.count()).select_from(Payment).where(Payment.needs_review)
            )
            yield GaugeMetricFamily(
                "nproxy_payments_awaiting_review", "Payments flagged for review", value=review
            )
        depth = self._queue_depth()
        if depth is not None:
            yield GaugeMetricFamily("nproxy_queue_depth", "Jobs waiting in the queue", value=depth)

    def _queue_depth(self) -> int | None:
        app = self._request.registry[CELERY_APP]
        try:
            with app.connection_for_read(connect_timeout=BROKER_TIMEOUT_SECONDS) as connection:
                queue = app.conf.task_default_queue or "celery"
                declared = connection.default_channel.queue_declare(queue=queue, passive=True)
                return int(declared.message_count)
        except Exception:
            log.warning("metrics: the broker's queue depth could not be read", exc_info=True)
            return None


def _check_token(request: Request) -> None:
    token = request.registry.settings.get("nproxy.metrics_token") or ""
    if not token:
        raise NotFound("Not found.")
    scheme, _, given = (request.headers.get("Authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), token):
        error = NotAuthenticated("Send the metrics token as 'Authorization: Bearer ...'.")
        error.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        raise error


@view_config(route_name="metrics", request_method="GET")
def metrics(request: Request) -> Response:
    _check_token(request)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Every process's files: gunicorn's workers and the Celery workers alike.
        recorded: Any = CollectorRegistry()
        MultiProcessCollector(recorded)
    else:
        recorded = REGISTRY
    states = CollectorRegistry()
    states.register(StateCollector(request))
    body = generate_latest(recorded) + generate_latest(states)
    response = Response(body=body, content_type=CONTENT_TYPE_LATEST.split(";")[0])
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    response.headers["Cache-Control"] = "no-store"
    return response
