"""Mail and API errors in the reader's language (DESIGN 4.15): a mail follows the account's
saved language, wherever it is sent from; an API error's ``message`` follows the request
(``Accept-Language`` included) while its ``code`` stays English."""

from __future__ import annotations

import datetime as dt

from apiclient import ApiClient
from conftest import monthly_plan_id
from nproxy_core.billing.models import BillingCycle
from nproxy_core.billing.tasks import send_expiry_warnings
from nproxy_core.db import utcnow
from nproxy_core.generation.tasks import run_generation
from nproxy_core.tasks import run_now


def speaking(db, user_factory, email: str, language: str | None):
    user = user_factory(email)
    user.language = language
    db.commit()
    return user


def test_a_russian_accounts_password_reset_mail_is_in_russian(api, db, outbox, user_factory):
    speaking(db, user_factory, "ivan@example.com", "ru")
    # Asked from an English browser: the mail speaks the account's language all the same.
    api.post("/api/v1/auth/password-reset", {"email": "ivan@example.com"})
    [mail] = outbox
    assert mail["subject"] == "Сброс пароля nproxy"  # noqa: RUF001 - Russian, not look-alikes
    assert "Откройте эту ссылку в течение часа" in mail["body"]
    assert "reset-password?token=" in mail["body"]


def test_an_account_with_no_saved_language_gets_its_mail_in_english(api, db, outbox, user_factory):
    speaking(db, user_factory, "anne@example.com", None)
    api.post(
        "/api/v1/auth/password-reset",
        {"email": "anne@example.com"},
        headers={"Accept-Language": "ru"},
    )
    assert outbox[0]["subject"] == "Reset your nproxy password"


def test_an_uzbek_accounts_expiry_warning_is_in_uzbek(db, registry, outbox, user_factory):
    user = speaking(db, user_factory, "aziz@example.com", "uz")
    now = utcnow()
    db.add(
        BillingCycle(
            user_id=user.id,
            starts_at=now - dt.timedelta(days=25),
            ends_at=now + dt.timedelta(days=2, hours=12),
            period_months=1,
            plan_id=monthly_plan_id(db),
            request_limit=300,
        )
    )
    db.commit()
    assert run_now(registry, send_expiry_warnings) == 1
    assert outbox[0]["subject"] == "nproxy tarifingiz 3 kundan keyin tugaydi"
    assert "«Oylik» tarifingiz" in outbox[0]["body"]


def test_an_api_errors_message_follows_accept_language_and_its_code_stays(app):
    client = ApiClient(app)
    answers = {
        language: client.post(
            "/api/v1/auth/login",
            {"email": "nobody@example.com", "password": "not the password"},
            headers={"Accept-Language": language},
        ).json["error"]
        for language in ("en", "ru", "uz")
    }
    assert {answer["code"] for answer in answers.values()} == {"not_authenticated"}
    assert answers["en"]["message"] == "Wrong email or password."
    assert answers["ru"]["message"] == "Неверный адрес почты или пароль."
    assert answers["uz"]["message"] == "Pochta yoki parol noto\u02bbg\u02bbri."


def test_an_api_errors_values_are_filled_in_every_language(app):
    answer = ApiClient(app).post(
        "/api/v1/auth/register",
        {"email": "short@example.com", "password": "short"},
        headers={"Accept-Language": "ru"},
    )
    assert answer.json["error"]["message"] == "Пароль должен содержать не меньше 8 символов."


def messages(ask) -> dict[str, dict]:
    """The error of ``ask(headers)`` in English, Russian and Uzbek."""
    return {
        language: ask({"Accept-Language": language}).json["error"]
        for language in ("en", "ru", "uz")
    }


def test_a_developer_api_errors_message_follows_accept_language_and_its_code_stays(app):
    answers = messages(
        lambda headers: app.post_json(
            "/v1/generate",
            {"prompt": "a cat"},
            headers={"Authorization": "Bearer npx_not_a_key", **headers},
            status=401,
        )
    )
    assert {answer["code"] for answer in answers.values()} == {"invalid_api_key"}
    assert answers["en"]["message"] == "The API key is missing, invalid or revoked."
    assert answers["ru"]["message"] == "Ключ API не указан, неверен или отозван."
    assert answers["uz"]["message"] == (
        "API kaliti ko\u02bbrsatilmagan, noto\u02bbg\u02bbri yoki bekor qilingan."
    )
    # The OpenAI-shaped routes too: type and code stay OpenAI's, the message is the reader's.
    openai = messages(
        lambda headers: app.post_json(
            "/v1/images/generations",
            {"prompt": "a cat"},
            headers={"Authorization": "Bearer npx_not_a_key", **headers},
            status=401,
        )
    )
    assert openai["ru"]["message"] == answers["ru"]["message"]
    assert openai["uz"]["code"] == openai["en"]["code"]
    assert openai["uz"]["type"] == openai["en"]["type"]


def test_an_upload_error_is_said_in_the_readers_language(app, user_factory):
    user_factory("reader@example.com")
    client = ApiClient(app)
    client.login("reader@example.com")
    answers = messages(
        lambda headers: client.post(
            "/api/v1/uploads",
            upload_files=[("file", "a.gif", b"GIF89a not really an image")],
            headers=headers,
        )
    )
    assert len({answer["code"] for answer in answers.values()}) == 1
    assert answers["en"]["message"] == "The file is not a PNG, JPEG or WebP image."
    assert answers["ru"]["message"] == "Файл не является изображением PNG, JPEG или WebP."
    assert answers["uz"]["message"] == "Fayl PNG, JPEG yoki WebP rasmi emas."


def test_a_quota_error_is_said_in_the_readers_language(app, user_factory):
    # No plan and no pack: nothing to generate with.
    user_factory("reader@example.com")
    client = ApiClient(app)
    client.login("reader@example.com")
    conversation = client.post("/api/v1/conversations", {}).json["id"]
    answers = messages(
        lambda headers: client.post(
            f"/api/v1/conversations/{conversation}/generations",
            {"mode": "text_to_image", "prompt": "a cat", "resolution": "square"},
            headers=headers,
        )
    )
    assert {answer["code"] for answer in answers.values()} == {"no_active_subscription"}
    assert answers["en"]["message"].startswith("You have no active plan.")
    assert answers["ru"]["message"].startswith("У вас нет активного тарифа.")  # noqa: RUF001
    assert answers["uz"]["message"].startswith("Sizda faol tarif yo\u02bbq.")


def test_a_refusals_values_are_filled_in_in_the_readers_language(app, user_factory):
    user_factory("reader@example.com")
    client = ApiClient(app)
    client.login("reader@example.com")
    conversation = client.post("/api/v1/conversations", {}).json["id"]
    answers = messages(
        lambda headers: client.post(
            f"/api/v1/conversations/{conversation}/generations",
            {"mode": "text_to_image", "prompt": "a cat", "resolution": "no-such-size"},
            headers=headers,
        )
    )
    assert {answer["code"] for answer in answers.values()} == {"validation_error"}
    assert "'no-such-size'" in answers["en"]["message"]
    assert answers["ru"]["message"].startswith("Неизвестное разрешение «no-such-size» (одно из: ")
    assert answers["uz"]["message"].startswith("Noma\u02bclum o\u02bblcham «no-such-size»")


def test_a_failed_generations_message_is_read_in_the_readers_language(
    app, user_factory, make_cycle
):
    # No key in the pool: the job fails as provider_unavailable, its message kept in English.
    make_cycle(user_factory("reader@example.com"))
    client = ApiClient(app)
    client.login("reader@example.com")
    conversation = client.post("/api/v1/conversations", {}).json["id"]
    submitted = client.post(
        f"/api/v1/conversations/{conversation}/generations",
        {"mode": "text_to_image", "prompt": "a cat", "resolution": "square"},
    )
    assert run_now(app.app.registry, run_generation, submitted.json["id"]) == "failed"
    answers = messages(
        lambda headers: app.get(f"/api/v1/generations/{submitted.json['id']}", headers=headers)
    )
    assert {answer["code"] for answer in answers.values()} == {"provider_unavailable"}
    assert answers["en"]["message"].startswith("Image generation is temporarily unavailable.")
    assert answers["ru"]["message"].startswith("Создание изображений временно недоступно.")
    assert answers["uz"]["message"].startswith("Rasm yaratish vaqtincha mavjud emas.")


def test_a_request_refused_before_any_view_is_answered_in_the_readers_language(app):
    # The gate refuses a query string that does not decode, before routing.
    answers = messages(lambda headers: app.get("/api/v1/plans?q=%FF", headers=headers, status=400))
    assert {answer["code"] for answer in answers.values()} == {"validation_error"}
    assert answers["en"]["message"].startswith("The query string holds a percent-escape")
    assert answers["ru"]["message"].startswith("В строке запроса есть %-последовательность")  # noqa: RUF001
    assert answers["uz"]["message"].startswith("So\u02bbrov satrida yaroqli UTF-8")
