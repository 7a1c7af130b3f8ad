"""What needs an admin (DESIGN 4.7): the top of the overview, and the badges on the tabs.

Three sources, each item linked to where it is dealt with:

- every **open alert** (:mod:`nproxy_core.alerts`), linked by its subject: a key
  (``nanobanana key 12``, named by label and id), a provider project or provider (the keys
  page), a payment (its page), the workers or the task queue (the health page);
- the **payments awaiting review** (flagged payments, and notifications for no known order);
- **keys out of service** that only an admin brings back (``manual_review``, ``out_of_funds``).

An open alert about a key that is out of service, or about a payment in the review queue, is
the same problem told twice: it is shown once, with the key (or in the queue's count). Each
tab's badge counts the items it deals with, so the overview's total is their sum.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import sqlalchemy as sa
from pyramid.request import Request
from sqlalchemy.orm import Session

from nproxy_core.admin import queries
from nproxy_core.alerts import AlertKind
from nproxy_core.alerts.models import Alert, AlertState
from nproxy_core.alerts.services import title
from nproxy_core.keypool.models import KeyState, ProviderKey
from nproxy_core.keypool.models import key_name as keys_name

#: States a key leaves only when an admin restores it.
OUT_OF_SERVICE = (KeyState.MANUAL_REVIEW, KeyState.OUT_OF_FUNDS)
#: Open alerts shown (they are few; a flood is cut here and counted).
SHOWN = 50

_KEY = re.compile(r"^(?P<provider>\S+) key (?P<id>\d{1,18})$")
_PROJECT = re.compile(r"^(?P<provider>\S+) project (?P<project>.+)$")
_PROVIDER = re.compile(r"^provider (?P<provider>\S+)$")
_PAYMENT = re.compile(r"^payment (?P<id>\d{1,18})$")

#: The tab that deals with each alert kind.
_TABS = {
    AlertKind.KEY_MANUAL_REVIEW: "keys",
    AlertKind.KEY_OUT_OF_FUNDS: "keys",
    AlertKind.PROJECT_DAILY_QUOTA: "keys",
    AlertKind.POOL_EXHAUSTED: "keys",
    AlertKind.KEY_UNREADABLE: "keys",
    AlertKind.PAYMENT_FLAGGED: "payments",
    AlertKind.WORKER_HEARTBEAT: "health",
    AlertKind.QUEUE_DEPTH: "health",
}


@dataclasses.dataclass(frozen=True)
class Item:
    """One thing to deal with: what, about what (linked), since when, and which tab."""

    tab: str
    title: str
    subject: str
    href: str
    detail: str
    since: dt.datetime | None
    kind: str
    #: Items this line stands for (the review queue's line stands for all its entries).
    count: int = 1


@dataclasses.dataclass(frozen=True)
class Attention:
    items: list[Item]
    #: Open alerts not shown (beyond :data:`SHOWN`).
    more_alerts: int = 0
    #: (payments, notifications for no known order) awaiting review.
    review: tuple[int, int] = (0, 0)

    @property
    def total(self) -> int:
        return sum(item.count for item in self.items) + self.more_alerts

    def badge(self, tab: str) -> int:
        return sum(item.count for item in self.items if item.tab == tab)

    @property
    def badges(self) -> dict[str, int]:
        tabs = {item.tab for item in self.items}
        return {tab: self.badge(tab) for tab in tabs}


def key_name(key: ProviderKey) -> str:
    """A key as pages and alerts name it: its label and its id (``key 'eu-3' (#12)``)."""
    return keys_name(key.id, key.label)


def of_request(request: Request) -> Attention:
    """The request's :class:`Attention`, read once (the nav's badges and the overview)."""
    found = request.environ.get(_CACHE)
    if found is None:
        found = request.environ[_CACHE] = needs_attention(request.db, request)
    return found


_CACHE = "nproxy.admin.attention"


def needs_attention(db: Session, request: Request) -> Attention:
    alerts = list(
        db.scalars(
            sa.select(Alert)
            .where(Alert.state == AlertState.OPEN)
            .order_by(Alert.first_seen.desc(), Alert.id.desc())
            .limit(SHOWN + 1)
        )
    )
    more = 0
    if len(alerts) > SHOWN:
        alerts = alerts[:SHOWN]
        more = int(
            db.scalar(sa.select(sa.func.count()).where(Alert.state == AlertState.OPEN)) or 0
        ) - len(alerts)
    out_of_service = list(
        db.scalars(
            sa.select(ProviderKey)
            .where(ProviderKey.deleted_at.is_(None), ProviderKey.state.in_(OUT_OF_SERVICE))
            .order_by(ProviderKey.id)
        )
    )
    mentioned = {int(m["id"]) for a in alerts if (m := _KEY.match(a.subject))}
    labels = {key.id: key for key in out_of_service}
    missing = mentioned - set(labels)
    if missing:
        for key in db.scalars(sa.select(ProviderKey).where(ProviderKey.id.in_(missing))):
            labels[key.id] = key
    payments, notifications = queries.awaiting_review(db)
    flagged = _open_review_ids(db, alerts)

    items: list[Item] = []
    key_alerts: dict[int, list[Alert]] = {}
    for alert in alerts:
        key_match = _KEY.match(alert.subject)
        if key_match and int(key_match["id"]) in {k.id for k in out_of_service}:
            key_alerts.setdefault(int(key_match["id"]), []).append(alert)
            continue
        payment_match = _PAYMENT.match(alert.subject)
        if (
            alert.kind == AlertKind.PAYMENT_FLAGGED
            and payment_match
            and int(payment_match["id"]) in flagged
        ):
            continue  # counted in the review queue's line
        items.append(_alert_item(request, alert, labels))
    for key in out_of_service:
        told = key_alerts.get(key.id, [])
        items.append(
            Item(
                tab="keys",
                title=title(told[0].kind) if told else f"Key {str(key.state).replace('_', ' ')}",
                subject=f"{key.provider} {key_name(key)}",
                href=request.route_path("admin.key", key_id=key.id),
                detail=(told[0].detail if told else key.state_reason) or "",
                since=told[0].first_seen if told else key.updated_at,
                kind=str(told[0].kind) if told else f"key_{key.state}",
            )
        )
    if payments or notifications:
        parts = []
        if payments:
            parts.append(f"{payments} payment{'s' if payments != 1 else ''}")
        if notifications:
            parts.append(
                f"{notifications} notification{'s' if notifications != 1 else ''} "
                "for unknown orders"
            )
        items.append(
            Item(
                tab="payments",
                title="Awaiting review",
                subject=" and ".join(parts),
                href=request.route_path("admin.payments", _query={"state": queries.REVIEW}),
                detail="an admin decides: activate or dismiss, with a note",
                since=None,
                kind="payments_review",
                count=payments + notifications,
            )
        )
    return Attention(items, more, (payments, notifications))


def _open_review_ids(db: Session, alerts: list[Alert]) -> set[int]:
    """Of the payments the alerts name, those waiting in the review queue."""
    from nproxy_core.billing.models import Payment

    ids = {int(m["id"]) for a in alerts if (m := _PAYMENT.match(a.subject))}
    if not ids:
        return set()
    return set(
        db.scalars(sa.select(Payment.id).where(Payment.id.in_(ids), Payment.awaiting_review))
    )


def _alert_item(request: Request, alert: Alert, keys: dict[int, ProviderKey]) -> Item:
    subject, href = alert.subject, request.route_path("admin.telegram")
    try:
        kind = AlertKind(alert.kind)
    except ValueError:
        kind = None
    tab = _TABS.get(kind, "telegram") if kind is not None else "telegram"
    if m := _KEY.match(alert.subject):
        key = keys.get(int(m["id"]))
        name = key_name(key) if key is not None else f"key #{m['id']}"
        subject = f"{m['provider']} {name}"
        href = request.route_path("admin.key", key_id=int(m["id"]))
    elif m := _PROJECT.match(alert.subject):
        subject = f"{m['provider']} project {m['project']}"
        href = request.route_path("admin.keys", _anchor="projects")
    elif m := _PROVIDER.match(alert.subject):
        href = request.route_path("admin.keys")
    elif m := _PAYMENT.match(alert.subject):
        href = request.route_path("admin.payment", payment_id=int(m["id"]))
    elif tab == "health":
        href = request.route_path("admin.health")
    elif tab == "keys":
        href = request.route_path("admin.keys")
    return Item(
        tab=tab,
        title=title(alert.kind),
        subject=subject,
        href=href,
        detail=alert.detail,
        since=alert.first_seen,
        kind=alert.kind,
    )
