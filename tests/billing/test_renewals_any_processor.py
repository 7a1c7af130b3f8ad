"""Renewals are a plugin capability (DESIGN 4.16): a processor other than Stripe that says
``recurring = True`` gets the same renewal path through the real app and database. The
processor here is a small plugin installed the way pip leaves one (a ``*.dist-info`` folder
with ``entry_points.txt`` on the path) that signs its notifications with an HMAC of its own;
it keeps what the core asked of it, so the test can see the core call it."""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from apiclient import ApiClient
from nproxy_core.alerts.models import Alert
from nproxy_core.billing.cycles import add_months
from nproxy_core.billing.models import (
    BillingCycle,
    Payment,
    PaymentState,
    Subscription,
    SubscriptionState,
)
from nproxy_core.billing.presenters import isoformat

SECRET = "renewer-webhook-secret"

PLUGIN_SOURCE = '''
import hashlib
import hmac
import json
from decimal import Decimal

from nproxy_core.plugins import (
    EventKind, HostedCheckout, PaymentEvent, PaymentProcessor, PaymentProcessorError,
    PaymentStatus, SubscriptionInfo, WebhookRejected, setting, webhook_header,
)

#: What the core asked of the processor (its side of things).
ASKED = {"checkouts": [], "cancelled": [], "portal": []}


class RenewerProcessor(PaymentProcessor):
    """Card payments that renew, in a wire format of its own."""

    display_name = "Renewer cards"
    recurring = True

    def __init__(self, settings):
        super().__init__(settings)
        self._secret = setting(settings, "renewer.secret", required=True)

    def create_checkout(self, checkout):
        ASKED["checkouts"].append(checkout)
        return HostedCheckout(
            checkout_url=f"https://renewer.example/pay/{checkout.order_id}",
            invoice_id=f"co_{checkout.order_id}",
        )

    def parse_webhook(self, body, headers):
        given = webhook_header(headers, "x-renewer-signature") or ""
        wanted = hmac.new(self._secret.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(given, wanted):
            raise WebhookRejected("bad X-Renewer-Signature")
        data = json.loads(body)
        sub = data.get("subscription")
        info = None
        if sub is not None:
            info = SubscriptionInfo(
                subscription_id=sub["id"],
                customer_id=sub.get("customer"),
                order_id=sub.get("order_id"),
                renews=sub.get("renews"),
                ended=sub.get("ended", False),
            )
        return PaymentEvent(
            order_id=data.get("order_id"),
            status=PaymentStatus(data["status"]),
            amount=Decimal(data["amount"]) if data.get("amount") else None,
            currency=data.get("currency"),
            payment_id=data.get("payment_id"),
            invoice_id=data.get("invoice_id"),
            kind=EventKind(data["kind"]),
            subscription=info,
            renewal_id=data.get("renewal_id"),
            references=tuple(data.get("references", ())),
            pay_url=data.get("pay_url"),
            raw=data,
        )

    def fetch_status(self, payment_id):
        raise PaymentProcessorError("no status queries")

    def cancel_renewal(self, subscription_id):
        ASKED["cancelled"].append(subscription_id)
        return SubscriptionInfo(subscription_id=subscription_id, renews=False)

    def manage_url(self, customer_id, return_url):
        ASKED["portal"].append((customer_id, return_url))
        return f"https://renewer.example/manage/{customer_id}"

    def fetch_subscription(self, subscription_id):
        raise PaymentProcessorError("no subscription queries")
'''


@pytest.fixture
def renewer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The plugin, installed on the path; its module (``ASKED``)."""
    site = tmp_path / "site"
    info = site / "nproxy_renewer-0.0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: nproxy-renewer\nVersion: 0.0.1\n")
    (info / "entry_points.txt").write_text(
        "[nproxy.payments]\nrenewer = renewer_plugin:RenewerProcessor\n"
    )
    (site / "renewer_plugin.py").write_text(textwrap.dedent(PLUGIN_SOURCE))
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    yield importlib.import_module("renewer_plugin")
    sys.modules.pop("renewer_plugin", None)


@pytest.fixture
def app(make_app: Any, renewer: Any) -> Any:
    return make_app(nproxy__payments="renewer demo", renewer__secret=SECRET)


def notify(app: Any, data: dict[str, Any], secret: str = SECRET) -> Any:
    body = json.dumps(data).encode()
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return app.post(
        "/billing/webhooks/renewer",
        body,
        headers={"X-Renewer-Signature": signature},
        content_type="application/json",
        status="*",
    )


def result(app: Any, data: dict[str, Any]) -> str:
    res = notify(app, data)
    assert res.status_int == 200, res.text
    return res.json["result"]


def rows(db: Any, model: Any) -> list[Any]:
    db.expire_all()
    return list(db.scalars(sa.select(model).order_by(model.id)))


def renewal(invoice: str, status: str = "finished", **more: Any) -> dict[str, Any]:
    return {
        "kind": "renewal",
        "status": status,
        "amount": "9.99",
        "currency": "USD",
        "renewal_id": invoice,
        "references": [f"charge-{invoice}"],
        "subscription": {"id": "rs_1", "customer": "rc_1"},
        **more,
    }


def test_another_processor_with_renewals_takes_the_same_path(app, renewer, db, outbox):
    api = ApiClient(app)
    assert api.register("renews@example.com").status_int == 201
    res = api.post("/api/v1/billing/checkout", {"processor": "renewer"})
    assert res.status_int == 201, res.text
    order_id = res.json["payment_id"]
    [asked] = renewer.ASKED["checkouts"]
    assert (asked.order_id, asked.recurring, asked.period_months) == (order_id, True, 1)
    assert asked.customer_email == "renews@example.com"

    checkout = {
        "kind": "checkout",
        "status": "finished",
        "order_id": order_id,
        "amount": "9.99",
        "currency": "USD",
        "invoice_id": f"co_{order_id}",
        "payment_id": "rp_1",
        "subscription": {"id": "rs_1", "customer": "rc_1", "order_id": order_id},
    }
    assert result(app, checkout) == "activated"
    [subscription] = rows(db, Subscription)
    assert (subscription.processor, subscription.external_id) == ("renewer", "rs_1")
    assert subscription.state == SubscriptionState.ACTIVE

    # Two renewals, each once however often told: each cycle starts where the last ended.
    assert result(app, renewal("ri_1")) == "activated"
    assert result(app, renewal("ri_1")) == "unchanged"
    assert result(app, renewal("ri_2")) == "activated"
    first, second, third = rows(db, BillingCycle)
    assert second.starts_at == first.ends_at and third.starts_at == second.ends_at
    assert third.ends_at == add_months(third.starts_at, 1)
    view = api.get("/api/v1/billing/subscription").json["subscription"]
    assert view["processor_name"] == "Renewer cards"
    assert view["renews"] is True and view["renews_on"] == isoformat(third.ends_at)

    # A renewal charged at another price goes to review; one that fails mails the user once.
    assert result(app, renewal("ri_3", amount="1.00")) == "review"
    declined = renewal("ri_4", "failed", pay_url="https://renewer.example/pay-again/ri_4")
    assert result(app, declined) == "updated"
    assert result(app, declined) == "unchanged"
    [mail] = [m for m in outbox if "could not be charged" in m["subject"]]
    assert mail["to"] == "renews@example.com"
    assert "https://renewer.example/pay-again/ri_4" in mail["body"]
    db.expire_all()
    assert db.scalar(sa.select(Alert.state).where(Alert.kind == "payment_failed")) == "open"
    assert len(rows(db, BillingCycle)) == 3

    # Cancel renewal: the processor is asked, the paid cycles run to their end.
    res = api.post("/api/v1/billing/subscription/cancel", {})
    assert res.status_int == 200, res.text
    assert renewer.ASKED["cancelled"] == ["rs_1"]
    assert res.json["subscription"]["ends_on"] == isoformat(third.ends_at)
    ended = {
        "kind": "subscription",
        "status": "expired",
        "subscription": {"id": "rs_1", "renews": False, "ended": True},
    }
    assert result(app, ended) == "subscription"
    assert rows(db, Subscription)[0].state == SubscriptionState.ENDED
    assert len(rows(db, BillingCycle)) == 3

    # A refund of the second renewal ends its cycle; its invoice replayed grants nothing.
    refund = {
        "kind": "refund",
        "status": "refunded",
        "renewal_id": "ri_2",
        "references": ["ri_2", "charge-ri_2"],
    }
    assert result(app, refund) == "refunded"
    assert result(app, renewal("ri_2")) == "ignored"
    first, second, third = rows(db, BillingCycle)
    assert third.ends_at == third.starts_at == second.ends_at
    refunded = db.scalar(sa.select(Payment).where(Payment.invoice_id == "ri_2"))
    assert refunded.status == PaymentState.REFUNDED

    # An unknown subscription is flagged and never activates; a forged notification is refused.
    stranger = renewal("ri_9", subscription={"id": "rs_unknown", "customer": "rc_unknown"})
    assert result(app, stranger) == "unknown_subscription"
    forged = notify(app, renewal("ri_5"), secret="someone-else")
    assert forged.status_int == 400
    assert len(rows(db, BillingCycle)) == 3
    assert "Renewer cards" in app.get("/billing").text
