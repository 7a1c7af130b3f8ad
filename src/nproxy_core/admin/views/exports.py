"""``/admin/payments.csv?from=&to=``: every payment of a period, for accounting.

One row per payment ordered in ``[from, to)`` (by ``created_at``, the order date revenue is
counted on, :mod:`nproxy_core.admin.money`). ``from`` and ``to`` are dates (``2026-01-31``) or
UTC date-times (``2026-01-31T13:45``); a ``to`` given as a date includes that whole day. Both
are optional (from the first payment, to now). Amounts are the exact decimals paid (never
floats); times are UTC, ISO 8601 (``2026-01-31T13:45:00Z``); ``finished_at`` is when the
processor first reported the payment finished (empty if it never did).

The rows are streamed from a server-side cursor as they are read, so a year of payments never
sits in memory. The export is an admin's read of every customer's payments: it is audited
(``payments.export``, with the period asked) before the first row is sent.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

from nproxy_core.accounts.models import User
from nproxy_core.accounts.security import Permission
from nproxy_core.admin.page import actor, parse_moment
from nproxy_core.billing.models import (
    CreditPack,
    Payment,
    PaymentNotification,
    PaymentState,
    Plan,
    decimal_text,
)
from nproxy_core.db import IDatabase, utcnow
from nproxy_core.errors import ValidationError

COLUMNS = (
    "payment_id",
    "order_id",
    "created_at",
    "finished_at",
    "status",
    "amount",
    "currency",
    "processor",
    "invoice_id",
    "processor_payment_id",
    "user_id",
    "user_email",
    "item",
    "item_code",
    "needs_review",
    "resolution",
)
#: Rows fetched from the cursor at a time, and written per chunk of the response.
BATCH = 1000


def period(request: Request) -> tuple[dt.datetime | None, dt.datetime]:
    """``[from, to)`` from the query string; a bad value is refused naming its parameter."""
    start = parse_moment(request.params.get("from", ""), "from")
    raw_end = request.params.get("to", "").strip()
    end = parse_moment(raw_end, "to")
    if end is None:
        end = utcnow()
    elif "T" not in raw_end and " " not in raw_end:
        end += dt.timedelta(days=1)  # a date: the whole day
    if start is not None and start >= end:
        raise ValidationError("to must be after from", fields={"to": "before from"})
    return start, end


def _query(start: dt.datetime | None, end: dt.datetime) -> sa.Select[Any]:
    P = Payment
    finished = (
        sa.select(sa.func.min(PaymentNotification.received_at))
        .where(
            PaymentNotification.payment_id == P.id,
            PaymentNotification.status == str(PaymentState.FINISHED),
        )
        .correlate(P)
        .scalar_subquery()
    )
    query = (
        sa.select(
            P.id,
            P.order_id,
            P.created_at,
            finished.label("finished_at"),
            sa.type_coerce(P.status, sa.String),
            P.amount,
            P.currency,
            P.processor,
            P.invoice_id,
            P.processor_payment_id,
            P.user_id,
            User.email,
            Plan.code,
            CreditPack.code,
            P.needs_review,
            sa.type_coerce(P.resolution, sa.String),
        )
        .join(User, User.id == P.user_id)
        .outerjoin(Plan, Plan.id == P.plan_id)
        .outerjoin(CreditPack, CreditPack.id == P.pack_id)
        .where(P.created_at < end)
        .order_by(P.created_at, P.id)
    )
    if start is not None:
        query = query.where(P.created_at >= start)
    return query


def utc_text(moment: dt.datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(dt.UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def cell(text: str | None) -> str:
    """Text as a spreadsheet shows it, never as a formula (a customer chose their email)."""
    text = text or ""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def row_of(values: Any) -> list[str]:
    (
        payment_id,
        order_id,
        created,
        finished,
        status,
        amount,
        currency,
        processor,
        invoice_id,
        processor_payment_id,
        user_id,
        email,
        plan_code,
        pack_code,
        needs_review,
        resolution,
    ) = values
    item = "pack" if pack_code else "plan" if plan_code else ""
    return [
        str(payment_id),
        cell(order_id),
        utc_text(created),
        utc_text(finished),
        status,
        decimal_text(amount),
        cell(currency),
        cell(processor),
        cell(invoice_id),
        cell(processor_payment_id),
        str(user_id),
        cell(email),
        item,
        cell(pack_code or plan_code),
        "yes" if needs_review else "no",
        resolution or "",
    ]


def stream(engine: sa.Engine, query: sa.Select[Any]) -> Iterator[bytes]:
    """The CSV, a chunk per :data:`BATCH` rows, read through a server-side cursor on a
    connection of its own (the request's transaction has ended by the time this runs)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=BATCH).execute(query)
        for rows in result.partitions():
            for values in rows:
                writer.writerow(row_of(values))
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()


@view_config(
    route_name="admin.payments_csv",
    request_method="GET",
    permission=Permission.ADMIN,
    admin_area=True,
)
def payments_csv(request: Request) -> Response:
    start, end = period(request)
    actor(request).record(
        request.db,
        "payments.export",
        "payment",
        None,
        after={
            "from": start.isoformat() if start else None,
            "to": end.isoformat(),
            "format": "csv",
        },
    )
    name = f"payments-{start:%Y%m%d}-{end:%Y%m%d}.csv" if start else f"payments-{end:%Y%m%d}.csv"
    response = Response(content_type="text/csv", charset="utf-8")
    response.content_disposition = f'attachment; filename="{name}"'
    response.cache_control = "no-store"
    response.app_iter = stream(request.find_service(IDatabase).engine, _query(start, end))
    return response
