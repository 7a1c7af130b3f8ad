"""The server-rendered pages a person uses, with their forms and CSRF."""

from __future__ import annotations

import re

from apiclient import PASSWORD


def test_landing_page(app):
    page = app.get("/")
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert "Make images from words" in page.text
    assert 'href="/register"' in page.text


def test_register_log_out_and_log_in_with_forms(app):
    form = app.get("/register").forms[0]
    form["email"] = "Person@Example.com"
    form["password"] = PASSWORD
    # A new account has no plan: sign-up lands on the plans (issue 26).
    assert form.submit().location.endswith("/pricing")
    dashboard = app.get("/dashboard")
    assert "person@example.com" in dashboard.text
    assert "No subscription yet" in dashboard.text
    assert 'data-bucket="0"' in dashboard.text

    home = dashboard.forms[0].submit().follow()  # the log-out button in the top bar
    assert "Sign up" in home.text
    assert app.get("/dashboard").status_int == 303

    form = app.get("/login").forms[0]
    form["email"] = "person@example.com"
    form["password"] = PASSWORD
    assert "person@example.com" in form.submit().follow().text


def test_register_form_shows_errors_and_keeps_the_email(app, db):
    form = app.get("/register").forms[0]
    form["email"] = "x@example.com"
    form["password"] = "short"
    page = form.submit(status=400)
    assert "at least 8 characters" in page.text
    assert 'value="x@example.com"' in page.text


def test_login_form_with_wrong_password(app, user_factory):
    user_factory("p@example.com")
    form = app.get("/login").forms[0]
    form["email"] = "p@example.com"
    form["password"] = "not it at all"
    page = form.submit(status=401)
    assert "Wrong email or password" in page.text


def test_form_without_csrf_token_is_refused(app, db):
    res = app.post("/register", {"email": "x@example.com", "password": PASSWORD}, status=403)
    assert "CSRF" in res.text


def test_dashboard_needs_login_and_comes_back(app, user_factory):
    res = app.get("/dashboard", status=303)
    assert "/login?next=%2Fdashboard" in res.location
    user_factory("back@example.com")
    form = res.follow().forms[0]
    form["email"] = "back@example.com"
    form["password"] = PASSWORD
    assert form.submit().location.endswith("/dashboard")


def test_login_does_not_redirect_off_site(app, user_factory):
    user_factory("n@example.com")
    form = app.get("/login?next=//evil.example/").forms[0]
    form["email"] = "n@example.com"
    form["password"] = PASSWORD
    assert form.submit().location == "http://localhost/dashboard"


def test_forgot_and_reset_password_pages(app, outbox, user_factory):
    user_factory("f@example.com")
    form = app.get("/forgot-password").forms[0]
    form["email"] = "f@example.com"
    page = form.submit().follow()
    assert "valid for one hour" in page.text
    token = re.search(r"token=([\w-]+)", outbox[-1]["body"]).group(1)
    form = app.get(f"/reset-password?token={token}").forms[0]
    form["password"] = "the new password"
    page = form.submit().follow()
    assert "Your password was changed" in page.text


def test_unknown_page_is_html_404_and_api_is_json_404(app):
    page = app.get("/no/such/page", status=404)
    assert "Page not found" in page.text
    res = app.get("/api/v1/nothing", status=404)
    assert res.json["error"]["code"] == "not_found"


def test_healthz(app):
    res = app.get("/healthz")
    assert res.json == {"status": "ok", "database": "ok"}


def test_no_stack_trace_reaches_a_user(make_app):
    # A database that does not answer makes every query fail inside the app.
    app = make_app(sqlalchemy__url="postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    assert app.get("/healthz", status=503).json == {"status": "unavailable", "database": "down"}
    token = app.get("/api/v1/session").json["csrf_token"]
    res = app.post_json(
        "/api/v1/auth/login",
        {"email": "a@example.com", "password": PASSWORD},
        headers={"X-CSRF-Token": token},
        status=500,
    )
    assert res.json["error"]["code"] == "internal_error"
    assert "Traceback" not in res.text and "psycopg" not in res.text
    page = app.get("/login")
    form = page.forms[0]
    form["email"] = "a@example.com"
    form["password"] = PASSWORD
    res = form.submit(status=500)
    assert "Something went wrong" in res.text
    assert "Traceback" not in res.text and "psycopg" not in res.text
