"""Mail is sent from the queue, never inside a request (DESIGN 9), through pyramid_mailer, from
templates, and retried when the mail server is down."""

from __future__ import annotations

import contextlib
import os
import queue
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from apiclient import ApiClient
from generation_support import Process, rabbitmq_vhost, write_ini
from nproxy_core.accounts.models import PasswordResetToken
from nproxy_core.notifications import IMailer
from nproxy_core.tasks import CELERY_APP
from nproxy_core.wiring import find_service
from smtp_sink import SMTPSink


def queued_jobs(registry: Any) -> list[tuple[str, list[Any]]]:
    """The jobs waiting on the in-process queue, by task name and arguments (put back)."""
    celery = registry[CELERY_APP]
    found, messages = [], []
    with celery.connection_for_read() as connection:
        jobs = connection.SimpleQueue(celery.conf.task_default_queue)
        while True:
            try:
                message = jobs.get_nowait()
            except queue.Empty:
                break
            messages.append(message)
            found.append((message.headers["task"], message.decode()[0]))
        for message in messages:
            message.requeue()
    return found


def test_a_reset_request_only_queues_a_job_whether_or_not_the_account_exists(
    api, app, db, outbox, user_factory
):
    user_factory("known@example.com")
    mailer = find_service(app.app.registry, IMailer)
    for email in ("known@example.com", "unknown@example.com"):
        assert api.post("/api/v1/auth/password-reset", {"email": email}).status_int == 202
    # Nothing was looked up, written or sent while the requests ran: one identical job each.
    assert queued_jobs(app.app.registry) == [
        ("accounts.send_password_reset", ["known@example.com"]),
        ("accounts.send_password_reset", ["unknown@example.com"]),
    ]
    assert mailer.outbox == []
    assert db.scalar(sa.select(sa.func.count()).select_from(PasswordResetToken)) == 0
    # The worker does the rest: a token and a mail for the account that exists, only.
    assert [m["to"] for m in outbox] == ["known@example.com"]
    assert db.scalar(sa.select(sa.func.count()).select_from(PasswordResetToken)) == 1


def test_mail_bodies_come_from_the_templates(api, outbox, user_factory):
    user_factory("tpl@example.com")
    api.post("/api/v1/auth/password-reset", {"email": "tpl@example.com"})
    message = outbox[-1]
    assert message["subject"] == "Reset your nproxy password"
    template = Path(__file__).resolve().parents[2] / "templates/email/password_reset/body.txt"
    # The template's first sentence, marked for translation: the mail is English by default.
    first_sentence = re.search(r'_\("([^"]+)"\)', template.read_text()).group(1)
    assert message["body"].startswith(first_sentence)
    # Plain text: nothing HTML-escaped in the link.
    assert "&amp;" not in message["body"]
    assert "http://localhost/reset-password?token=" in message["body"]


def test_nothing_is_queued_for_a_change_that_is_rolled_back(app, outbox, registry):
    from nproxy_core.notifications import send_email
    from nproxy_core.wiring import prepare_request

    request = prepare_request(registry)
    with contextlib.suppress(RuntimeError), request.tm:
        send_email(request, "x@example.com", "password_reset", {"link": "http://x"})
        raise RuntimeError("rolled back")
    assert outbox == []


def test_the_development_mailer_writes_each_message_to_a_folder(make_app, tmp_path, user_factory):
    from mail_support import Outbox

    folder = tmp_path / "mail"
    app = make_app(nproxy__mailer="debug", mail__top_level_directory=str(folder))
    user_factory("dev@example.com")
    outbox = Outbox(app.app.registry)
    ApiClient(app).post("/api/v1/auth/password-reset", {"email": "dev@example.com"})
    assert outbox.deliver() == 2  # the reset job, then the mail job it queued
    (written,) = folder.iterdir()
    text = written.read_text()
    assert "To: dev@example.com" in text
    assert "reset-password?token=" in text


def test_an_unknown_mailer_stops_start_up(make_app):
    from nproxy_core.config import ConfigurationError

    with pytest.raises(ConfigurationError, match=r"nproxy\.mailer"):
        make_app(nproxy__mailer="carrier-pigeon")


# --- a real worker, a real broker, a real SMTP server ------------------------------------------


@pytest.fixture(scope="module")
def mail_broker_url() -> Any:
    with rabbitmq_vhost(f"nproxy_test_mail_{os.getpid()}") as url:
        yield url


@pytest.fixture
def mail_worker(base_settings, mail_broker_url, tmp_path, db):
    started: list[Process] = []

    def start(settings: dict[str, Any]) -> Process:
        ini = write_ini(tmp_path, settings, name=f"mail-worker-{len(started)}.ini")
        process = Process(
            ["-c", str(ini), "worker", "--concurrency", "2"], tmp_path / "w.log", tmp_path
        )
        started.append(process)
        process.wait_for_log(" ready.")
        return process

    yield start
    for process in started:
        process.stop()


@pytest.mark.slow
def test_a_worker_sends_the_reset_mail_over_smtp_and_retries_while_the_server_is_down(
    make_app, base_settings, mail_broker_url, mail_worker, user_factory
):
    sink = SMTPSink()
    settings = {**base_settings, **sink.settings(), "celery.broker_url": mail_broker_url}
    app = make_app(**{k.replace(".", "__"): v for k, v in settings.items()})
    user_factory("smtp@example.com")
    worker = mail_worker(settings)
    # The mail server is down when the job first runs...
    assert (
        ApiClient(app).post("/api/v1/auth/password-reset", {"email": "smtp@example.com"}).status_int
        == 202
    )
    worker.wait_for_log("Retry in")
    # ...and up later: the retry delivers it.
    with sink:
        (message,) = sink.wait_for(1, timeout=60)
    assert message["To"] == "smtp@example.com"
    assert message["Subject"] == "Reset your nproxy password"
    assert "http://localhost/reset-password?token=" in message.get_content()
