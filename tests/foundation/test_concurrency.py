"""Registration under concurrency: the database decides, exactly one account wins."""

from __future__ import annotations

import threading

import sqlalchemy as sa
import webtest

from apiclient import ApiClient
from nproxy_core.accounts.models import User


def test_twenty_threads_registering_one_email_make_one_account(app, db):
    wsgi = app.app
    barrier = threading.Barrier(20)
    statuses: list[int] = []
    lock = threading.Lock()

    def register() -> None:
        client = ApiClient(webtest.TestApp(wsgi, extra_environ={"HTTP_HOST": "localhost"}))
        token = client.csrf()
        barrier.wait()
        res = client.app.post_json(
            "/api/v1/auth/register",
            {"email": "race@example.com", "password": "long enough pw"},
            headers={"X-CSRF-Token": token},
            status="*",
        )
        with lock:
            statuses.append(res.status_int)

    threads = [threading.Thread(target=register) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(statuses).count(201) == 1, statuses
    assert all(s in (201, 400) for s in statuses), statuses
    assert db.scalar(sa.select(sa.func.count()).select_from(User)) == 1
