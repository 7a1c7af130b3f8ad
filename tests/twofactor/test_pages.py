"""The two-factor pages as a person uses them: set up with the QR code or the key, confirm with
a first code, the recovery codes shown once; new codes and turning it off need a code; the
account page and the admin's user page say whether it is on."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
import webtest

from admin_support import AdminBrowser, audit_rows
from nproxy_core.db import utcnow
from nproxy_core.twofactor import codes
from nproxy_core.twofactor.models import RecoveryCode, TotpCredential

from .conftest import STEP, steady_now


def logged_in(app: webtest.TestApp, email: str) -> webtest.TestApp:
    return AdminBrowser(app).login(email).app


def secret_on(page: Any) -> str:
    return page.html.select_one("#totp-secret").text.replace(" ", "")


def form_for(page: Any, action: str) -> Any:
    """The page's form posting to ``action`` (the top bar has a logout form too)."""
    found = [f for f in page.forms.values() if f.action.split("?")[0] == action]
    assert len(found) == 1, [f.action for f in page.forms.values()]
    return found[0]


def set_up(page: webtest.TestApp, next_path: str = "") -> tuple[str, Any]:
    """Start the set-up from the page and confirm it with the code of the step before now
    (leaving now and the next step unused); (the secret, the recovery codes page)."""
    query = f"?next={next_path}" if next_path else ""
    start = page.get(f"/account/2fa{query}")
    res = form_for(start, "/account/2fa/setup").submit()
    assert res.status_int == 303
    enrolment = page.get(res.location)
    secret = secret_on(enrolment)
    form = form_for(enrolment, "/account/2fa/confirm")
    form["otp"] = codes.code_at(secret, steady_now() - STEP)
    return secret, form.submit()


def test_setting_up_shows_a_qr_code_and_the_key_then_ten_codes_once(app, db, user_factory):
    user_factory("someone@example.com")
    page = logged_in(app, "someone@example.com")
    first = page.get("/account/2fa")
    assert first.html.select_one("#two-factor")["data-state"] == "off"
    enrolment = page.get(form_for(first, "/account/2fa/setup").submit().location)
    assert enrolment.html.select_one("#two-factor")["data-state"] == "enrolling"
    svg = enrolment.html.select_one("svg.qr")
    assert svg is not None and svg["role"] == "img"
    secret = secret_on(enrolment)
    assert len(secret) == 32
    code_field = enrolment.html.select_one("input#otp")
    assert code_field["inputmode"] == "numeric" and code_field["autocomplete"] == "one-time-code"
    # Stored encrypted: the column is not the key the page shows.
    stored = db.scalar(sa.select(TotpCredential.secret_encrypted))
    assert secret not in stored and stored != secret

    form = form_for(enrolment, "/account/2fa/confirm")
    form["otp"] = codes.code_at(secret, steady_now())
    shown = form.submit()
    assert shown.status_int == 200
    recovery = [c.text for c in shown.html.select("#recovery-codes li code")]
    assert len(recovery) == 10 and all(re.fullmatch(r"(\w{4}-){3}\w{4}", c) for c in recovery)
    assert shown.headers["Cache-Control"] == "no-store"
    hashes = set(db.scalars(sa.select(RecoveryCode.code_hash)))
    assert hashes == {codes.recovery_code_hash(c.replace("-", "")) for c in recovery}
    # Never again: the page now says it is on and shows neither key nor codes.
    after = page.get("/account/2fa")
    assert after.html.select_one("#two-factor")["data-state"] == "on"
    assert secret not in after.text and not any(c in after.text for c in recovery)
    assert "10 of 10 recovery codes left" in after.html.select_one("#recovery-left").text
    rows = audit_rows(db, "twofactor.enable")
    assert [(r.actor, r.surface, r.target_id) for r in rows] == [
        ("someone@example.com", "web", str(rows[0].target_id))
    ]


def test_a_wrong_first_code_turns_nothing_on(app, db, user_factory):
    user = user_factory("someone@example.com")
    page = logged_in(app, "someone@example.com")
    start = page.get("/account/2fa")
    enrolment = page.get(form_for(start, "/account/2fa/setup").submit().location)
    form = form_for(enrolment, "/account/2fa/confirm")
    form["otp"] = "12345x"
    refused = form.submit(status=400)
    assert "not right" in refused.html.select_one("#form-error").text
    assert refused.html.select_one("input#otp")["aria-invalid"] == "true"
    # The same key is still shown, to try again.
    assert secret_on(refused) == secret_on(enrolment)
    db.expire_all()
    credential = db.scalar(sa.select(TotpCredential).where(TotpCredential.user_id == user.id))
    assert credential.confirmed_at is None
    assert db.scalar(sa.select(sa.func.count()).select_from(RecoveryCode)) == 0


def test_new_recovery_codes_need_a_good_code_and_replace_the_old(app, db, user_factory):
    user_factory("someone@example.com")
    page = logged_in(app, "someone@example.com")
    secret, shown = set_up(page)
    old = [c.text for c in shown.html.select("#recovery-codes li code")]
    settings = page.get("/account/2fa")
    form = form_for(settings, "/account/2fa/recovery-codes")
    form["otp"] = "000000" if codes.code_at(secret, utcnow()) != "000000" else "111111"
    refused = form.submit(status=400)
    assert refused.html.select_one("#otp-recovery")["aria-invalid"] == "true"
    assert db.scalar(sa.select(sa.func.count()).select_from(RecoveryCode)) == 10
    form = form_for(refused, "/account/2fa/recovery-codes")
    form["otp"] = codes.code_at(secret, steady_now())
    fresh = [c.text for c in form.submit().html.select("#recovery-codes li code")]
    assert len(fresh) == 10 and set(fresh).isdisjoint(old)
    db.expire_all()
    hashes = set(db.scalars(sa.select(RecoveryCode.code_hash)))
    assert hashes == {codes.recovery_code_hash(c.replace("-", "")) for c in fresh}
    assert len(audit_rows(db, "twofactor.recovery_codes")) == 1


def test_turning_it_off_needs_a_good_code(app, db, user_factory):
    user_factory("someone@example.com")
    page = logged_in(app, "someone@example.com")
    _secret, shown = set_up(page)
    recovery = [c.text for c in shown.html.select("#recovery-codes li code")]
    settings = page.get("/account/2fa")
    form = form_for(settings, "/account/2fa/disable")
    refused = form.submit(status=400)
    assert refused.html.select_one("#otp-disable")["aria-invalid"] == "true"
    assert db.scalar(sa.select(sa.func.count()).select_from(TotpCredential)) == 1
    form = form_for(refused, "/account/2fa/disable")
    form["otp"] = recovery[0]
    res = form.submit()
    assert res.status_int == 303 and res.location.endswith("/account/2fa?done=disabled")
    assert page.get(res.location).html.select_one("#two-factor")["data-state"] == "off"
    db.expire_all()
    assert db.scalar(sa.select(sa.func.count()).select_from(TotpCredential)) == 0
    assert db.scalar(sa.select(sa.func.count()).select_from(RecoveryCode)) == 0
    assert len(audit_rows(db, "twofactor.disable")) == 1


def test_the_pages_need_a_login_and_the_csrf_token(app, user_factory):
    anonymous = webtest.TestApp(app.app, extra_environ={"HTTP_HOST": "localhost"})
    res = anonymous.get("/account/2fa")
    assert res.status_int == 303 and "/login?next=%2Faccount%2F2fa" in res.location
    user_factory("someone@example.com")
    page = logged_in(app, "someone@example.com")
    for path in ("/account/2fa/setup", "/account/2fa/confirm", "/account/2fa/disable"):
        assert page.post(path, {"otp": "123456"}, status=403).status_int == 403


def test_the_account_page_links_to_it_and_says_whether_it_is_on(app, user_factory):
    user_factory("someone@example.com")
    page = logged_in(app, "someone@example.com")
    card = page.get("/dashboard").html.select_one("#two-factor-login")
    assert card["data-enabled"] == "false"
    assert card.select_one("a")["href"] == "/account/2fa"
    set_up(page)
    card = page.get("/dashboard").html.select_one("#two-factor-login")
    assert card["data-enabled"] == "true" and "On" in card.text


def test_the_admin_sees_on_a_users_page_whether_it_is_on(app, user_factory, enrol):
    user_factory("admin@example.com", admin=True)
    someone = enrol(user_factory("someone@example.com")).user
    plain = user_factory("plain@example.com")
    admin = AdminBrowser(app).login("admin@example.com")
    on = admin.get(f"/admin/users/{someone.id}").html.select_one("#two-factor")
    assert on["data-enabled"] == "true" and "10 recovery codes left" in on.text
    off = admin.get(f"/admin/users/{plain.id}").html.select_one("#two-factor")
    assert off["data-enabled"] == "false" and off.text.strip() == "off"
