"""Updates of one Telegram user at once (threads, real Postgres): two first messages make one
account, and a flood of prompts queues no more than the per-user limit."""

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


def test_one_user_flooding_the_bot_at_once_gets_no_more_than_the_limit_in_progress(
    registry, db, make_cycle
):
    who = services.TelegramUser(5556, 5556, "flood")
    user_id = run_now(registry, lambda request: services.open_account(request.db, who)[0].user_id)
    make_cycle(db.get(User, user_id), request_limit=100)
    db.commit()
    tries = services.MAX_IN_PROGRESS + 4
    barrier = threading.Barrier(tries)
    outcomes: list[str] = []

    def message() -> None:
        def submit(request):
            customer = services.find_customer(request.db, who.id)
            barrier.wait(timeout=10)
            services.submit(request, customer, "a cat")

        try:
            run_now(registry, submit)
            outcomes.append("queued")
        except services.Refused as refused:
            outcomes.append(refused.key)

    threads = [threading.Thread(target=message) for _ in range(tries)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["busy"] * 4 + ["queued"] * services.MAX_IN_PROGRESS
    assert services.in_progress(db, user_id) == services.MAX_IN_PROGRESS
