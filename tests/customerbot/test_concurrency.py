"""Two first updates of one Telegram user at once make one account (threads, real Postgres)."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from nproxy_core.accounts.models import User
from nproxy_core.customerbot import services
from nproxy_core.customerbot.models import TelegramCustomer
from nproxy_core.tasks import run_now


def test_simultaneous_first_messages_make_one_account(registry, db):
    who = services.TelegramUser(5555, 5555, "twin")
    barrier = threading.Barrier(6)
    made: list[bool] = []

    def first_message() -> None:
        def open_(request):
            barrier.wait(timeout=10)
            return services.open_account(request.db, who)[1]

        made.append(run_now(registry, open_))

    threads = [threading.Thread(target=first_message) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(made) == [False] * 5 + [True]
    assert db.scalar(sa.select(sa.func.count()).select_from(TelegramCustomer)) == 1
    assert db.scalar(sa.select(sa.func.count()).select_from(User)) == 1
