"""Landing page and ``/healthz``."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

from nproxy_core.billing.interfaces import IPlans
from nproxy_core.billing.presenters import EXAMPLES, month_offer
from nproxy_core.db import IDatabase, is_disconnect
from nproxy_core.plugin_registry import IPlugins
from nproxy_core.pricing import IUnitPrices

log = logging.getLogger(__name__)


@view_config(route_name="home", request_method="GET", renderer="site/landing.html")
def landing(request: Request) -> dict[str, Any]:
    plan = request.find_service(IPlans).default(request.db)
    return {
        "plan": plan,
        "offer": month_offer(
            plan,
            request.find_service(IPlugins).providers,
            request.find_service(IUnitPrices).per_image(request.db),
        ),
        "examples": EXAMPLES,
    }


@view_config(route_name="healthz", request_method="GET")
def healthz(request: Request) -> Response:
    if not _database_answers(request.find_service(IDatabase).reader):
        return Response(json_body={"status": "unavailable", "database": "down"}, status=503)
    return Response(json_body={"status": "ok", "database": "ok"})


def _database_answers(reader: sa.Engine) -> bool:
    # Its own connection in autocommit, outside the request transaction: the probe holds no
    # lock and costs one round trip (no BEGIN, no ROLLBACK, no user loaded).
    for attempt in (1, 2):
        try:
            with reader.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
            return True
        except Exception as exc:
            # A pooled connection that died with a database restart: the pool is renewed, and
            # the database itself is asked once more before it is called down.
            if attempt == 1 and is_disconnect(exc):
                continue
            log.exception("health check: database does not answer")
    return False
