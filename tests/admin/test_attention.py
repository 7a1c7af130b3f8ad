"""Needs attention (DESIGN 4.7): the top of the overview lists every open alert linked to its
key, project, payment or worker, the payments awaiting review and the keys out of service,
each problem once; each admin tab carries the count of what it deals with; with nothing to do
the overview says so calmly."""

from __future__ import annotations

from typing import Any

import pytest

from admin_support import make_payment
from nproxy_core.alerts.models import Alert, AlertState
from nproxy_core.audit import Actor, Surface
from nproxy_core.db import utcnow
from nproxy_core.keypool import services as pool
from nproxy_core.keypool.interfaces import ISecretBox
from nproxy_core.keypool.models import KeyState
from nproxy_core.wiring import find_service


def alert(db: Any, kind: str, subject: str, detail: str = "it broke", **fields: Any) -> Alert:
    now = utcnow()
    row = Alert(kind=kind, subject=subject, detail=detail, first_seen=now, last_seen=now, **fields)
    db.add(row)
    db.commit()
    return row


@pytest.fixture
def add_key(db: Any, app: Any) -> Any:
    secrets = find_service(app.app.registry, ISecretBox)
    counter = iter(range(1, 1000))

    def make(label: str | None = None, state: KeyState = KeyState.ACTIVE) -> Any:
        key = pool.add_key(
            db,
            secrets,
            provider="demo",
            secret=f"demo-key-attention-{next(counter)}",
            label=label,
            enabled_providers=["demo"],
            actor=Actor("tests", Surface.CLI),
        )
        key.state = state
        db.commit()
        return key

    return make


def items(res: Any) -> list[Any]:
    return res.html.select("#attention li")


def badges(res: Any) -> dict[str, int]:
    found = {}
    for link in res.html.select("nav.admin-nav a"):
        count = link.select_one(".count")
        if count is not None:
            found[link.get_text(" ", strip=True).split()[0]] = int(count.contents[0])
    return found


def test_with_nothing_to_do_the_overview_says_so_and_no_tab_has_a_badge(admin, db):
    alert(db, "key_manual_review", "demo key 9", state=AlertState.RESOLVED)
    res = admin.get("/admin")
    assert items(res) == []
    assert res.html.select_one("#attention .calm").get_text(strip=True) == "Nothing needs you."
    assert res.html.select_one("#attention")["data-total"] == "0"
    assert badges(res) == {}


def test_every_open_alert_links_to_what_it_is_about(admin, db, add_key):
    key = add_key("eu-3")
    payment = make_payment(db, admin_user_of(db), status="finished")
    alert(db, "key_manual_review", f"demo key {key.id}")
    alert(db, "project_daily_quota", "demo project alpha")
    alert(db, "pool_exhausted", "provider demo")
    alert(db, "payment_flagged", f"payment {payment.id}")
    alert(db, "worker_heartbeat", "workers")
    alert(db, "queue_depth", "task queue")
    res = admin.get("/admin")
    links = {li["data-kind"]: li.select_one("a") for li in items(res)}
    assert links["key_manual_review"]["href"] == f"/admin/keys/{key.id}"
    # Keys are named by label and id.
    assert f"key 'eu-3' (#{key.id})" in links["key_manual_review"].get_text()
    assert links["project_daily_quota"]["href"].startswith("/admin/keys")
    assert "project alpha" in links["project_daily_quota"].get_text()
    assert links["pool_exhausted"]["href"] == "/admin/keys"
    assert links["payment_flagged"]["href"] == f"/admin/payments/{payment.id}"
    assert links["worker_heartbeat"]["href"] == "/admin/health"
    assert links["queue_depth"]["href"] == "/admin/health"
    assert badges(res) == {"Overview": 6, "Keys": 3, "Payments": 1, "Health": 2}
    assert res.html.select_one("#attention")["data-total"] == "6"


def admin_user_of(db: Any) -> Any:
    from nproxy_core.accounts.models import User

    return db.query(User).filter(User.email == "boss@example.com").one()


def test_keys_out_of_service_are_listed_once_with_their_alert(admin, db, add_key):
    reviewed = add_key("rev", KeyState.MANUAL_REVIEW)
    broke = add_key(None, KeyState.OUT_OF_FUNDS)
    add_key("fine", KeyState.ACTIVE)
    add_key("resting", KeyState.COOLDOWN)
    add_key("off", KeyState.DISABLED)
    alert(db, "key_manual_review", f"demo key {reviewed.id}", "rejected 3 times")
    res = admin.get("/admin")
    lines = items(res)
    assert len(lines) == 2
    hrefs = sorted(li.select_one("a")["href"] for li in lines)
    assert hrefs == sorted([f"/admin/keys/{reviewed.id}", f"/admin/keys/{broke.id}"])
    text = " ".join(li.get_text(" ", strip=True) for li in lines)
    assert "rejected 3 times" in text and f"key #{broke.id}" in text
    assert f"key 'rev' (#{reviewed.id})" in text
    assert badges(res) == {"Overview": 2, "Keys": 2}


def test_payments_awaiting_review_are_one_line_counted_on_the_payments_tab(admin, db, user_factory):
    buyer = user_factory("buyer@example.com")
    flagged = make_payment(db, buyer, review="partially paid")
    make_payment(db, buyer, review="amount mismatch")
    alert(db, "payment_flagged", f"payment {flagged.id}")  # the same problem: not twice
    res = admin.get("/admin")
    lines = items(res)
    assert [li["data-kind"] for li in lines] == ["payments_review"]
    assert lines[0].select_one("a")["href"] == "/admin/payments?state=review"
    assert "2 payments" in lines[0].get_text()
    assert badges(res) == {"Overview": 2, "Payments": 2}
    # The badge is on every admin page, not only the overview.
    assert badges(admin.get("/admin/users")) == {"Overview": 2, "Payments": 2}


def test_attention_comes_first_on_the_overview(admin, db):
    alert(db, "worker_heartbeat", "workers")
    res = admin.get("/admin")
    sections = res.html.select("main section")
    assert sections[0]["id"] == "attention"
    assert sections[1]["id"] == "money"
