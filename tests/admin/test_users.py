"""Users in the admin: search, one user with exact numbers, and the actions on them (block,
unblock, role, a free cycle), each audited, with the guards that keep the product
administrable: no admin blocks or demotes themselves, and the last admin stays one."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa

from admin_support import audit_rows, make_generation, make_payment
from nproxy_core.accounts.models import Role, User
from nproxy_core.billing.models import BillingCycle


def fresh(db: Any, user_id: int) -> User:
    db.expire_all()
    return db.get(User, user_id)


def test_search_finds_users_by_part_of_their_email_newest_first(admin, user_factory):
    for name in ("ann", "bob", "annabel"):
        user_factory(f"{name}@shop.example")
    res = admin.get("/admin/users?q=ANN")
    emails = [a.get_text() for a in res.html.select("#users td[data-label=Email] a")]
    assert emails == ["annabel@shop.example", "ann@shop.example"]


def test_search_treats_wildcards_as_plain_text(admin, user_factory):
    user_factory("under_score@example.com")
    user_factory("underXscore@example.com")
    res = admin.get("/admin/users?q=under_")
    emails = [a.get_text() for a in res.html.select("#users td[data-label=Email] a")]
    assert emails == ["under_score@example.com"]


def test_the_user_list_pages_by_keyset_without_gaps_or_repeats(admin, user_factory):
    made = [user_factory(f"page{i:03}@example.com").email for i in range(120)]
    seen: list[str] = []
    url = "/admin/users?q=page"
    while url:
        res = admin.get(url)
        seen += [a.get_text() for a in res.html.select("#users td[data-label=Email] a")]
        nxt = res.html.select_one("a[rel=next]")
        url = nxt["href"] if nxt else None
    assert seen == list(reversed(made))


def test_one_user_shows_exact_cycle_numbers_payments_generations_and_audit(
    admin, db, user_factory, make_cycle, make_pack
):
    user = user_factory("counted@example.com")
    make_cycle(user, request_limit=300, used=123, reserved=7)
    payment = make_payment(db, user, status="finished")
    generation = make_generation(db, user, prompt="a lighthouse at dusk")
    admin.act(f"/admin/users/{user.id}/grant-cycle", {"reason": "support ticket 42"})

    res = admin.get(f"/admin/users/{user.id}")
    current = res.html.select_one("#current-cycle")
    assert "170" in current.select_one(".stat").get_text()  # 300 - 123 - 7 left
    assert "of 300 units left" in current.get_text()
    text = " ".join(current.get_text(" ").split())
    assert "Used 123" in text and "Reserved 7" in text
    cycles = res.html.select("#cycles tbody tr")
    assert len(cycles) == 2
    assert "free: support ticket 42" in res.html.select_one("#cycles").get_text()
    assert res.html.select_one(f"#payments tr[data-payment='{payment.id}']") is not None
    assert res.html.select_one(f"#generations tr[data-generation='{generation.id}']") is not None
    assert "user.grant_cycle" in res.html.select_one("#audit").get_text()
    assert "No credit packs." in res.html.select_one("#packs").get_text()

    pack = make_pack(user, 120, used=20, label="Starter pack")
    row = admin.get(f"/admin/users/{user.id}").html.select_one(f"#packs tr[data-pack='{pack.id}']")
    cells = [td.get_text(" ", strip=True) for td in row.select("td")]
    assert cells[0] == "Starter pack" and cells[3:7] == ["120", "20", "0", "100"]


def test_block_ends_the_users_sessions_and_unblock_lets_them_log_in_again(
    admin, browse, db, user_factory
):
    user = user_factory("blockme@example.com")
    session = browse().login(user.email)
    assert session.get("/api/v1/me").status_int == 200

    _, ok, errors = admin.act(f"/admin/users/{user.id}/block")
    assert ok == ["Blocked blockme@example.com."] and errors == []
    assert fresh(db, user.id).is_blocked
    assert session.get("/api/v1/me").status_int == 401
    assert (
        browse()
        .post("/login", {"email": user.email, "password": "correct horse battery"})
        .status_int
        != 303
    )

    _, ok, _ = admin.act(f"/admin/users/{user.id}/unblock")
    assert ok == ["Unblocked blockme@example.com."]
    assert not fresh(db, user.id).is_blocked
    # The sessions ended by the block stay ended; a new login works.
    assert session.get("/api/v1/me").status_int == 401
    assert browse().login(user.email).get("/api/v1/me").status_int == 200

    block, unblock = audit_rows(db, "user.block")[0], audit_rows(db, "user.unblock")[0]
    for entry in (block, unblock):
        assert entry.actor == "boss@example.com" and entry.surface == "web"
        assert (entry.target_type, entry.target_id) == ("user", str(user.id))
    assert block.before["blocked"] is False and block.after["blocked"] is True
    assert unblock.before["blocked"] is True and unblock.after["blocked"] is False


def test_blocking_a_blocked_user_is_refused_and_changes_nothing(admin, db, user_factory):
    user = user_factory("twice@example.com", blocked=True)
    _, ok, errors = admin.act(f"/admin/users/{user.id}/block")
    assert ok == [] and errors == ["twice@example.com is already blocked"]
    assert audit_rows(db) == []


def test_an_admin_cannot_block_themselves(admin, db, admin_user, user_factory):
    user_factory("other-admin@example.com", admin=True)
    _, ok, errors = admin.act(f"/admin/users/{admin_user.id}/block")
    assert ok == [] and errors == ["You cannot block yourself."]
    assert not fresh(db, admin_user.id).is_blocked and audit_rows(db) == []


def test_an_admin_cannot_demote_themselves(admin, db, admin_user, user_factory):
    user_factory("other-admin@example.com", admin=True)
    _, _, errors = admin.act(f"/admin/users/{admin_user.id}/role", {"role": "user"})
    assert errors == ["You cannot demote yourself."]
    assert fresh(db, admin_user.id).role == Role.ADMIN and audit_rows(db) == []


def test_role_changes_promote_and_demote_with_an_audit_row(admin, db, user_factory):
    user = user_factory("rising@example.com")
    _, ok, _ = admin.act(f"/admin/users/{user.id}/role", {"role": "admin"})
    assert ok == ["rising@example.com is now admin."]
    assert fresh(db, user.id).role == Role.ADMIN
    _, ok, _ = admin.act(f"/admin/users/{user.id}/role", {"role": "user"})
    assert ok == ["rising@example.com is now user."]
    entries = audit_rows(db, "user.role")
    assert [(e.before["role"], e.after["role"]) for e in entries] == [
        ("user", "admin"),
        ("admin", "user"),
    ]


@pytest.mark.parametrize("role", ["", "root", "ADMIN"])
def test_an_unknown_role_is_refused(admin, db, user_factory, role):
    user = user_factory("roles@example.com")
    _, _, errors = admin.act(f"/admin/users/{user.id}/role", {"role": role})
    assert errors == ["role must be one of user, admin"]
    assert audit_rows(db) == []


def test_the_last_admin_who_can_log_in_cannot_be_demoted_or_blocked(db, user_factory):
    from nproxy_core.accounts import actions
    from nproxy_core.audit import Actor, Surface
    from nproxy_core.errors import Conflict

    last = user_factory("last@example.com", admin=True)
    user_factory("blocked-admin@example.com", admin=True, blocked=True)
    console = Actor("console", Surface.CLI)
    with pytest.raises(Conflict, match="last admin who can log in"):
        actions.set_role(db, last.id, "user", actor=console)
    db.rollback()
    with pytest.raises(Conflict, match="last admin who can log in"):
        actions.block_user(db, last.id, actor=console)
    db.rollback()
    assert fresh(db, last.id).role == Role.ADMIN and not fresh(db, last.id).is_blocked


def test_two_admins_demoting_each_other_at_once_leave_one_admin(registry, user_factory):
    """Threads on real PostgreSQL: both demotions race; exactly one wins, one admin remains."""
    from nproxy_core.accounts import actions
    from nproxy_core.audit import Actor, Surface
    from nproxy_core.db import IDatabase
    from nproxy_core.errors import Conflict
    from nproxy_core.wiring import find_service

    a = user_factory("a-admin@example.com", admin=True)
    b = user_factory("b-admin@example.com", admin=True)
    factory = find_service(registry, IDatabase).session_factory
    barrier = threading.Barrier(2)
    results: list[str] = []

    def demote(actor_user: Any, target: Any) -> None:
        with factory() as session:
            barrier.wait()
            try:
                with session.begin():
                    actions.set_role(
                        session, target.id, "user", actor=Actor.of_user(actor_user, Surface.WEB)
                    )
                results.append("done")
            except Conflict:
                results.append("refused")

    for _ in range(5):
        threads = [
            threading.Thread(target=demote, args=(a, b)),
            threading.Thread(target=demote, args=(b, a)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        with factory() as session:
            admins = session.scalars(sa.select(User.email).where(User.role == Role.ADMIN)).all()
            assert len(admins) == 1, admins
            # Put both back for the next round.
            session.execute(sa.update(User).values(role=Role.ADMIN))
            session.commit()
    assert sorted(results) == ["done"] * 5 + ["refused"] * 5


def test_grant_cycle_needs_a_reason_and_grants_exactly_one(admin, db, user_factory):
    user = user_factory("gift@example.com")
    _, _, errors = admin.act(f"/admin/users/{user.id}/grant-cycle", {"reason": "   "})
    assert errors == ["a reason is required: say why"]
    assert db.scalars(sa.select(BillingCycle)).all() == [] and audit_rows(db) == []

    _, ok, _ = admin.act(f"/admin/users/{user.id}/grant-cycle", {"reason": "beta tester"})
    assert ok and ok[0].startswith("Granted a free cycle from")
    db.expire_all()
    [cycle] = db.scalars(sa.select(BillingCycle)).all()
    assert cycle.user_id == user.id and cycle.payment_id is None
    assert cycle.request_limit == 300 and cycle.grant_reason == "beta tester"
    [entry] = audit_rows(db, "user.grant_cycle")
    assert entry.after["reason"] == "beta tester" and entry.after["cycle_id"] == cycle.id
    assert entry.surface == "web" and entry.actor_user_id is not None


def test_a_granted_cycle_follows_the_current_one_without_losing_days(
    admin, db, user_factory, make_cycle
):
    user = user_factory("renew@example.com")
    current = make_cycle(user)
    admin.act(f"/admin/users/{user.id}/grant-cycle", {"reason": "loyalty"})
    db.expire_all()
    cycles = db.scalars(sa.select(BillingCycle).order_by(BillingCycle.starts_at)).all()
    assert cycles[1].starts_at == current.ends_at


def api_key_for(app: Any, db: Any, user: Any, name: str = "ci") -> Any:
    from nproxy_core.developer_api.interfaces import IApiKeyHasher
    from nproxy_core.developer_api.keys import create_key
    from nproxy_core.wiring import find_service

    hasher = find_service(app.app.registry, IApiKeyHasher)
    made = create_key(db, hasher, user.id, name, max_keys=10)
    db.commit()
    return made


def test_an_admin_revokes_a_users_api_key_once_and_its_calls_get_401(
    app, admin, db, user_factory, make_cycle
):
    user = user_factory("builder@example.com")
    make_cycle(user)
    made = api_key_for(app, db, user)
    bearer = {"Authorization": f"Bearer {made.secret}"}
    assert app.get("/v1/usage", headers=bearer, status="*").status_int == 200

    page = admin.get(f"/admin/users/{user.id}")
    row = page.html.select_one(f"#api-keys tr[data-api-key='{made.key.id}']")
    assert made.key.prefix in row.get_text() and "live" in row.get_text()
    assert made.secret not in page.text

    url = f"/admin/users/{user.id}/api-keys/{made.key.id}/revoke"
    _, said, errors = admin.act(url)
    assert said and not errors
    answer = app.get("/v1/usage", headers=bearer, status="*")
    assert answer.status_int == 401 and answer.json["error"]["code"] == "invalid_api_key"
    [entry] = audit_rows(db, "api_key.revoke")
    assert (entry.target_type, entry.target_id) == ("user", str(user.id))
    assert made.secret not in str(entry.before) + str(entry.after)
    assert entry.after == {f"API key {made.key.prefix}… (ci)": "revoked"}

    # Again: refused with a message, and still one audit row.
    _, said, errors = admin.act(url)
    assert errors and "already revoked" in errors[0]
    assert len(audit_rows(db, "api_key.revoke")) == 1


def test_an_admin_cannot_revoke_a_key_through_another_users_page(app, admin, db, user_factory):
    owner, other = user_factory("owner@example.com"), user_factory("other@example.com")
    made = api_key_for(app, db, owner)
    _, said, errors = admin.act(f"/admin/users/{other.id}/api-keys/{made.key.id}/revoke")
    assert errors and not said
    db.expire_all()
    assert db.get(type(made.key), made.key.id).revoked_at is None
    assert audit_rows(db, "api_key.revoke") == []
