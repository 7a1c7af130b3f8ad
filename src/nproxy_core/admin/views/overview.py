"""The overview (what needs attention, the money, charts of the last 24 hours, queue,
workers) and the health page."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pyramid.request import Request

from nproxy_core.admin import attention, charts, money, queries, stats
from nproxy_core.admin.page import (
    admin_page,
    base,
)
from nproxy_core.billing.models import decimal_text
from nproxy_core.db import utcnow
from nproxy_core.health import probes
from nproxy_core.health.heartbeat import interval_seconds
from nproxy_core.keypool import services as pool
from nproxy_core.keypool.errors import FAILURE_CODES
from nproxy_core.plugins import ContentPolicyError, InvalidInputError

#: The chart colour of a failure code; a code without one of its own is drawn as an outage.
FAILURE_COLOURS = {ContentPolicyError.code: "s-policy", InvalidInputError.code: "s-input"}
IMAGE_SERIES = (
    ("images", "images made", "s-success"),
    *(
        (code, f"failed: {code.replace('_', ' ')}", FAILURE_COLOURS.get(code, "s-unavailable"))
        for code in FAILURE_CODES
    ),
)
ATTEMPT_SERIES = (
    ("success", "success", "s-success"),
    ("user_caused", "user-caused", "s-policy"),
    ("retryable", "retryable", "s-retryable"),
    ("transport", "transport", "s-transport"),
    ("out_of_funds", "out of funds", "s-funds"),
    ("key_rejected", "key rejected", "s-unavailable"),
)


@admin_page("admin.overview", "overview.html")
def overview(request: Request) -> dict[str, Any]:
    db, now = request.db, utcnow()
    images = stats.image_activity(db, now)
    attempts = stats.attempt_activity(db, now)
    labels = {key.id: key.label or f"key {key.id}" for key in pool.list_keys(db)}
    needs = attention.of_request(request)
    payments, notifications = needs.review
    workers = probes.worker_statuses(db, now)
    figures = money.kept_money(db, request.registry, now)
    return base(
        request,
        "overview",
        attention=needs,
        money=figures,
        revenue_charts=[
            charts.daily_amounts(
                f"chart-revenue-{currency.lower()}",
                f"Revenue per day in {currency}, last 30 days",
                figures.days,
                amounts,
                currency,
            )
            for currency, amounts in figures.daily.items()
        ],
        expiring_days=money.WEEK.days,
        thirty_days=money.MONTH,
        one_second=dt.timedelta(seconds=1),
        money_seconds=float(request.registry.settings.get(money.SETTING, money.KEEP_SECONDS) or 0),
        money_text=decimal_text,
        pool=queries.key_pool_by_state(db),
        last_hour=images.hour,
        last_day=images.day,
        queue=probes.queue_depth(request.registry),
        workers=workers,
        workers_alive=sum(1 for w in workers if w.alive),
        heartbeat_seconds=interval_seconds(request.registry.settings),
        awaiting_payments=payments,
        awaiting_notifications=notifications,
        images_chart=charts.stacked_hours(
            "chart-images", "Images per hour, and failures by class", images.chart, IMAGE_SERIES
        ),
        attempts_chart=charts.stacked_hours(
            "chart-attempts", "Key attempts per hour, by outcome", attempts.chart, ATTEMPT_SERIES
        ),
        latency_chart=charts.latency_bars(
            "chart-latency",
            "Latency per key over the last 24 hours",
            [
                (labels.get(key_id, f"key {key_id}"), s.day.p50_ms, s.day.p95_ms)
                for key_id, s in sorted(attempts.keys.items())
                if s.day.attempts
            ],
        ),
    )


@admin_page("admin.health", "health.html")
def health(request: Request) -> dict[str, Any]:
    db, now = request.db, utcnow()
    queue = probes.queue_depth(request.registry)
    images = stats.image_activity(db, now)
    attempts = stats.attempt_activity(db, now, latencies=False)
    return base(
        request,
        "health",
        services=probes.check_services(request.registry, queue),
        queue=queue,
        workers=probes.worker_statuses(db, now),
        stale_after=int(probes.STALE_AFTER.total_seconds()),
        heartbeat_seconds=interval_seconds(request.registry.settings),
        outcomes_hour={name: attempts.hour[name] for name in stats.OUTCOMES},
        outcomes_day={name: attempts.day[name] for name in stats.OUTCOMES},
        images_hour=images.hour,
        images_day=images.day,
    )
