"""The pricing page's credit packs: each pack's name, units, images per model, validity and
price, with a Buy button per payment method that can sell it."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from apiclient import ApiClient
from nproxy_core.audit import Actor, Surface
from nproxy_core.billing import packs as pack_service
from nproxy_core.billing.models import Payment

ADMIN = Actor("tester", Surface.CLI)


def add(db: Any, code: str, **fields: Any) -> None:
    values = {"name": code.title(), "price": "5", "currency": "USD", "units": 100, **fields}
    pack_service.add_pack(db, code, values, actor=ADMIN)
    db.commit()


def squeeze(text: str) -> str:
    return " ".join(text.split())


def test_no_pack_for_sale_no_section(app, db):
    add(db, "hidden", public=False)
    assert app.get("/pricing").html.select_one("#packs") is None


def test_a_visitor_sees_the_packs_and_is_asked_to_log_in(app, db):
    add(db, "large", name="Large", price="20", units=600, valid_months=1)
    add(db, "small", name="Small", price="4.50", units=120)
    page = app.get("/pricing").html
    section = page.select_one("#packs")
    assert section.select_one("h2").text == "Credit packs"
    assert [a["data-pack"] for a in section.select("article.pack")] == ["small", "large"]
    small = squeeze(section.select_one("#pack-small").text)
    assert "Small" in small and "4.50 USD" in small
    assert "120 units, valid 12 months from purchase" in small
    assert "about 120 images with" in small
    assert "valid one month" in squeeze(section.select_one("#pack-large").text)
    assert section.select("form") == [] and "Log in to buy" in small
    # The packs come after the plans.
    text = page.text
    assert text.index("Credit packs") > text.index("Monthly")


def test_a_customer_gets_a_buy_button_per_payment_method(np_app, db):
    add(db, "small", name="Small", price="4.50", units=120)
    api = ApiClient(np_app)
    api.register("buyer@example.com")
    card = np_app.get("/pricing").html.select_one("#pack-small")
    forms = card.select("form.buy-pack")
    assert [f.select_one("input[name=processor]")["value"] for f in forms] == [
        "nowpayments",
        "demo",
    ]
    assert all(f.select_one("input[name=pack]")["value"] == "small" for f in forms)
    labels = [f.select_one("button")["aria-label"] for f in forms]
    assert labels[1] == "Buy Small (4.50 USD) with Demo (no real money)"


def test_the_buy_button_checks_out_the_pack(demo_app, db):
    add(db, "small", name="Small", price="4.50", units=120)
    ApiClient(demo_app).register("buyer@example.com")
    page = demo_app.get("/pricing")
    [form] = [f for f in page.forms.values() if f.get("pack", default=None) is not None]
    res = form.submit()
    assert res.status_int == 303
    payment = db.scalar(sa.select(Payment))
    assert payment.pack.code == "small" and res.location == payment.checkout_url
    demo = demo_app.get(res.location.removeprefix("http://localhost"))
    demo.forms["demo-outcome"].submit("outcome", value="paid")
    done = demo_app.get(f"/billing/payments/{payment.order_id}/success")
    assert "120 units of Small are yours until" in squeeze(done.html.select_one("#pack-added").text)
