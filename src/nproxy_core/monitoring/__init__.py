"""Monitoring: ``GET /metrics`` in the Prometheus text format (DESIGN 4.11), for a scraper holding
the bearer token ``nproxy.metrics_token``; without that setting the route answers 404.

What the code records as it works is in ``nproxy_core.metrics``; the states below are read from
the database and the broker when scraped: keys by state, payments awaiting review, queue depth.
"""

from __future__ import annotations

from typing import Any


def includeme(config: Any) -> None:
    config.add_route("metrics", "/metrics")
    config.scan("nproxy_core.monitoring.views")
