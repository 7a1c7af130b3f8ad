"""Landing page and ``/healthz``."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

from nproxy_core.db import IDatabase

log = logging.getLogger(__name__)


@view_config(route_name="home", request_method="GET", renderer="site/landing.html")
def landing(request: Request) -> dict[str, Any]:
    settings = request.registry.settings
    return {
        "plan": {
            "name": settings["nproxy.plan.name"],
            "price": settings["nproxy.plan.price"],
            "currency": settings["nproxy.plan.currency"],
        }
    }


@view_config(route_name="healthz", request_method="GET")
def healthz(request: Request) -> Response:
    # Its own connection, outside the request transaction: the probe must not hold locks.
    engine = request.find_service(IDatabase).engine
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except Exception:
        log.exception("health check: database does not answer")
        return Response(json_body={"status": "unavailable", "database": "down"}, status=503)
    return Response(json_body={"status": "ok", "database": "ok"})
