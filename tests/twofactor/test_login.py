"""Logging in to an account with two-factor login, through the real app: the JSON API answers
401 ``otp_required`` without a good code; the login page asks for the code in a second step
that keeps where the person was going. Wrong codes count as failed logins."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
import webtest

from apiclient import PASSWORD, ApiClient
from nproxy_core.accounts.models import User

from .conftest import steady_now


def login(api: ApiClient, email: str, password: str = PASSWORD, **extra: Any) -> Any:
    return api.post("/api/v1/auth/login", {"email": email, "password": password, **extra})


def error(res: Any) -> dict[str, Any]:
    return res.json["error"]


def last_login(db: Any, user: Any) -> Any:
    db.expire_all()
    return db.scalar(sa.select(User.last_login_at).where(User.id == user.id))


def test_the_password_alone_gets_401_otp_required(api, db, user_factory, enrol):
    enrolled = enrol(user_factory("admin@example.com", admin=True))
    res = login(api, "admin@example.com")
    assert res.status_int == 401
    assert error(res)["code"] == "otp_required"
    assert error(res)["fields"] == {"otp": "required"}
    assert "code" in error(res)["message"]
    assert api.get("/api/v1/session").json["user"] is None
    assert last_login(db, enrolled.user) is None


def test_the_password_and_a_good_code_log_in(api, db, user_factory, enrol):
    enrolled = enrol(user_factory("admin@example.com", admin=True))
    steady_now()
    res = login(api, "admin@example.com", otp=enrolled.code())
    assert res.status_int == 200, res.text
    assert res.json["user"]["email"] == "admin@example.com"
    assert api.get("/api/v1/session").json["user"]["email"] == "admin@example.com"
    assert last_login(db, enrolled.user) is not None


def test_a_wrong_password_says_nothing_about_two_factor(api, user_factory, enrolled_admin):
    for otp in (None, "123456"):
        extra = {} if otp is None else {"otp": otp}
        res = login(api, "admin@example.com", "not the password", **extra)
        assert res.status_int == 401
        assert error(res) == {"code": "not_authenticated", "message": "Wrong email or password."}
    # An unknown address answers the same.
    res = login(api, "nobody@example.com", "not the password", otp="123456")
    assert error(res) == {"code": "not_authenticated", "message": "Wrong email or password."}


@pytest.fixture
def enrolled_admin(user_factory, enrol) -> Any:
    return enrol(user_factory("admin@example.com", admin=True))


def test_a_wrong_code_is_refused_and_nothing_logs_in(api, enrolled_admin):
    now = steady_now()
    window = {enrolled_admin.code(k, at=now) for k in (-1, 0, 1)}
    wrong = next(c for c in ("000000", "111111", "222222") if c not in window)
    for bad in (wrong, "12345", "abc", "x" * 100, ["123456"], 123456):
        res = login(api, "admin@example.com", otp=bad)
        assert res.status_int == 401, bad
        assert error(res)["code"] == "otp_required"
        assert error(res)["fields"] == {"otp": "invalid"}
    assert api.get("/api/v1/session").json["user"] is None


def test_a_code_used_once_is_refused_the_second_time(api, enrolled_admin):
    steady_now()
    code = enrolled_admin.code()
    assert login(api, "admin@example.com", otp=code).status_int == 200
    api.logout()
    again = login(api, "admin@example.com", otp=code)
    assert again.status_int == 401 and error(again)["fields"] == {"otp": "invalid"}
    # The next step's code (one step of drift) still works.
    assert login(api, "admin@example.com", otp=enrolled_admin.code(1)).status_int == 200


def test_a_recovery_code_logs_in_once(api, enrolled_admin):
    code = enrolled_admin.recovery_codes[0]
    assert login(api, "admin@example.com", otp=code).status_int == 200
    api.logout()
    res = login(api, "admin@example.com", otp=code)
    assert res.status_int == 401 and error(res)["code"] == "otp_required"
    assert login(api, "admin@example.com", otp=enrolled_admin.recovery_codes[1]).status_int == 200


def test_accounts_without_two_factor_log_in_as_before(api, user_factory):
    user_factory("plain@example.com")
    assert login(api, "plain@example.com").status_int == 200
    api.logout()
    # An otp sent to an account without two-factor login is not looked at.
    assert login(api, "plain@example.com", otp="123456").status_int == 200


def from_ip(api: ApiClient, ip: str, **body: Any) -> Any:
    body = {"email": "admin@example.com", "password": PASSWORD, **body}
    return api.post("/api/v1/auth/login", body, extra_environ={"REMOTE_ADDR": ip})


@pytest.fixture
def ceiling_of_three(make_app: Any) -> ApiClient:
    """Three failed logins of an account from addresses it never used, then no more."""
    return ApiClient(
        make_app(nproxy__ratelimit__login="1000/minute", nproxy__ratelimit__login_account="3/hour")
    )


def test_wrong_codes_count_as_failed_logins(ceiling_of_three, enrolled_admin):
    api = ceiling_of_three
    now = steady_now()
    window = {enrolled_admin.code(k, at=now) for k in (-1, 0, 1)}
    wrong = next(c for c in ("000000", "111111", "222222") if c not in window)
    for n in range(3):
        assert from_ip(api, f"10.0.0.{n}", otp=wrong).status_int == 401
    # The account is throttled from new addresses now, even with the right code.
    res = from_ip(api, "10.0.1.1", otp=enrolled_admin.code())
    assert res.status_int == 429 and error(res)["code"] == "rate_limited"


def test_wrong_codes_from_elsewhere_never_lock_the_owner_out_at_home(
    ceiling_of_three, enrolled_admin
):
    api = ceiling_of_three
    now = steady_now()
    assert from_ip(api, "192.0.2.10", otp=enrolled_admin.code(at=now)).status_int == 200
    api.logout()
    window = {enrolled_admin.code(k, at=now) for k in (-1, 0, 1)}
    wrong = next(c for c in ("000000", "111111", "222222") if c not in window)
    answers = {from_ip(api, f"10.0.0.{n}", otp=wrong).status_int for n in range(6)}
    assert answers == {401, 429}
    # The owner, from the address they logged in from before, gets in with the next code.
    assert from_ip(api, "192.0.2.10", otp=enrolled_admin.code(1, at=now)).status_int == 200


def test_asking_for_the_code_is_not_a_failed_login(ceiling_of_three, enrolled_admin):
    api = ceiling_of_three
    for n in range(3):
        assert error(from_ip(api, f"10.0.0.{n}"))["fields"] == {"otp": "required"}
    steady_now()
    assert from_ip(api, "10.0.1.1", otp=enrolled_admin.code()).status_int == 200


# --- the login page ---------------------------------------------------------------------------


def browser(app: webtest.TestApp) -> webtest.TestApp:
    return webtest.TestApp(app.app, extra_environ={"HTTP_HOST": "localhost"})


def form_login(page: webtest.TestApp, email: str, next_path: str = "/admin") -> Any:
    form = page.get(f"/login?next={next_path}").forms[0]
    form["email"], form["password"] = email, PASSWORD
    return form.submit()


def test_the_login_page_focuses_the_email_field(app):
    page = browser(app).get("/login")
    email = page.html.select_one("input#email")
    assert email.has_attr("autofocus")
    assert not page.html.select_one("input#password").has_attr("autofocus")


def test_the_login_page_asks_for_the_code_in_a_second_step_and_keeps_next(app, db, enrolled_admin):
    page = browser(app)
    res = form_login(page, "admin@example.com", "/admin/users")
    assert res.status_int == 303
    assert res.location == "http://localhost/login/otp?next=%2Fadmin%2Fusers"
    assert page.get("/api/v1/session").json["user"] is None
    assert last_login(db, enrolled_admin.user) is None
    step = page.get(res.location)
    code_field = step.html.select_one("input#otp")
    assert code_field["inputmode"] == "numeric"
    assert code_field["autocomplete"] == "one-time-code"
    assert code_field.has_attr("autofocus")
    assert step.html.select_one("#otp-account").text == "Logging in as admin@example.com."
    # The password is neither on the page nor asked again.
    assert step.html.select_one("input#password") is None and PASSWORD not in step.text
    form = step.forms[0]
    steady_now()
    form["otp"] = enrolled_admin.code()
    done = form.submit()
    assert done.status_int == 303 and done.location == "http://localhost/admin/users"
    assert page.get("/api/v1/session").json["user"]["email"] == "admin@example.com"


def test_a_wrong_code_on_the_page_says_so_and_keeps_the_step(app, enrolled_admin):
    page = browser(app)
    step = page.get(form_login(page, "admin@example.com").location)
    form = step.forms[0]
    form["otp"] = "abcdef"
    refused = form.submit(status=401)
    assert "not right" in refused.html.select_one("#form-error").text
    assert refused.html.select_one("input#otp")["aria-invalid"] == "true"
    # A recovery code on the same step works.
    form = refused.forms[0]
    form["otp"] = enrolled_admin.recovery_codes[2]
    assert form.submit().location == "http://localhost/admin"


def test_the_code_step_without_a_password_first_goes_back_to_the_login(app, enrolled_admin):
    page = browser(app)
    res = page.get("/login/otp?next=/admin")
    assert res.status_int == 303
    assert res.location.startswith("http://localhost/login?")
    assert "otp=expired" in res.location and "next=%2Fadmin" in res.location
    # Posting a code without having given the password logs nobody in.
    csrf = page.get("/api/v1/session").json["csrf_token"]
    posted = page.post("/login/otp", {"otp": enrolled_admin.code(), "csrf_token": csrf})
    assert posted.status_int == 303 and "/login?" in posted.location
    assert page.get("/api/v1/session").json["user"] is None


def test_the_code_step_ends_when_the_password_changes(app, db, enrolled_admin):
    page = browser(app)
    step = page.get(form_login(page, "admin@example.com").location)
    db.execute(
        sa.update(User)
        .where(User.id == enrolled_admin.user.id)
        .values(session_version=User.session_version + 1)
    )
    db.commit()
    form = step.forms[0]
    steady_now()
    form["otp"] = enrolled_admin.code()
    res = form.submit()
    assert res.status_int == 303 and "otp=expired" in res.location
    assert page.get("/api/v1/session").json["user"] is None


def test_the_code_step_expires(app, enrolled_admin, monkeypatch):
    from nproxy_core.accounts import views

    page = browser(app)
    location = form_login(page, "admin@example.com").location
    monkeypatch.setattr(views, "PENDING_SECONDS", -1)
    res = form_login(page, "admin@example.com")
    monkeypatch.undo()
    assert res.location == location
    assert page.get(location).status_int == 303


def test_a_user_without_two_factor_logs_in_on_the_first_step(app, user_factory):
    user_factory("plain@example.com")
    page = browser(app)
    res = form_login(page, "plain@example.com", "/dashboard")
    assert res.status_int == 303 and res.location == "http://localhost/dashboard"


def test_concurrent_logins_with_the_same_code_exactly_one_logs_in(app, enrolled_admin):
    import threading

    clients = [ApiClient(browser(app)) for _ in range(6)]
    tokens = [client.csrf() for client in clients]
    steady_now()
    code = enrolled_admin.code()
    barrier = threading.Barrier(len(clients))
    answers: list[int] = []
    lock = threading.Lock()

    def attempt(client: ApiClient, token: str) -> None:
        body = {"email": "admin@example.com", "password": PASSWORD, "otp": code}
        barrier.wait(timeout=30)
        res = client.app.post_json(
            "/api/v1/auth/login", body, headers={"X-CSRF-Token": token}, status="*"
        )
        with lock:
            answers.append(res.status_int)

    threads = [
        threading.Thread(target=attempt, args=pair) for pair in zip(clients, tokens, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(answers) == [200] + [401] * (len(clients) - 1)


def test_wrong_codes_on_the_login_page_count_as_failed_logins(ceiling_of_three, enrolled_admin):
    page = browser(ceiling_of_three.app)
    first = {"REMOTE_ADDR": "10.0.0.1"}
    form = page.get("/login?next=/admin", extra_environ=first).forms[0]
    form["email"], form["password"] = "admin@example.com", PASSWORD
    step = page.get(form.submit(extra_environ=first).location, extra_environ=first)
    now = steady_now()
    window = {enrolled_admin.code(k, at=now) for k in (-1, 0, 1)}
    wrong = next(c for c in ("000000", "111111", "222222") if c not in window)
    for n in range(3):
        form = step.forms[0]
        form["otp"] = wrong
        step = form.submit(extra_environ={"REMOTE_ADDR": f"10.0.0.{n}"}, status=401)
    form = step.forms[0]
    form["otp"] = enrolled_admin.code(at=now)
    refused = form.submit(extra_environ={"REMOTE_ADDR": "10.0.1.1"}, status=429)
    assert "Too many failed attempts" in refused.html.select_one("#form-error").text
    assert page.get("/api/v1/session").json["user"] is None
