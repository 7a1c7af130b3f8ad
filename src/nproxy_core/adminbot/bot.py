"""The admin bot on python-telegram-bot 22, long polling.

Every update is untrusted: commands, their arguments and button data are parsed here and
anything unexpected gets a short answer, never an exception out of a handler. Database work
runs in a thread (``asyncio.to_thread``) with a session and transaction of its own per call,
so the event loop never waits on PostgreSQL and no session is shared between updates.

Who may do what is decided per update from the allowlist, never from the button: a button
sent to an admin who was revoked since is answered with pairing instructions like any
stranger's message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

import telegram
from pyramid.registry import Registry
from sqlalchemy.orm import Session
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from nproxy_core.adminbot import commands
from nproxy_core.db import IDatabase, utcnow
from nproxy_core.healthcheck import HeartbeatFile, heartbeat_path
from nproxy_core.plugins import setting
from nproxy_core.telegram import pairing
from nproxy_core.telegram.ptb import application_builder, cancel_tasks
from nproxy_core.wiring import find_service

log = logging.getLogger(__name__)
# httpx (PTB's transport) logs request URLs, which carry the bot token.
logging.getLogger("httpx").setLevel(logging.WARNING)

T = TypeVar("T")

#: How often completed pairings are looked for (DESIGN 4.8: the user is told within 10 s).
NOTIFY_INTERVAL = 2.0


class BotConfigError(Exception):
    pass


class AdminBot:
    """The handlers, bound to one configuration's database."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.session_factory = find_service(registry, IDatabase).session_factory

    # --- database, off the event loop ---------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Session]:
        with self.session_factory() as db, db.begin():
            yield db

    def _in_transaction(self, fn: Callable[[Session], T]) -> T:
        with self._transaction() as db:
            return fn(db)

    async def db(self, fn: Callable[[Session], T]) -> T:
        return await asyncio.to_thread(self._in_transaction, fn)

    # --- handlers ------------------------------------------------------------------------------

    async def on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        user = update.effective_user
        chat = update.effective_chat
        if message is None or user is None or chat is None or user.is_bot:
            return
        if chat.type != "private":
            return  # the bot is for admins in private chats only
        admin = await self.db(lambda db: pairing.allowed_admin(db, user.id))
        if admin is None:
            await self._send(chat.id, await self._pairing_answer(user, chat.id))
            return
        actor = commands.BotActor.of(admin)
        name, args = commands.parse(message.text or "")
        answer = await self.db(lambda db: commands.run(db, self.registry, actor, name, args))
        await self._send(chat.id, answer.text, answer.buttons)

    async def on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        user = update.effective_user
        if query is None or user is None:
            return
        admin = await self.db(lambda db: pairing.allowed_admin(db, user.id))
        if admin is None:
            await self._answer_query(query)
            await self._send(user.id, await self._pairing_answer(user, user.id))
            return
        actor = commands.BotActor.of(admin)
        answer = await self.db(
            lambda db: commands.press(db, self.registry, actor, query.data or "")
        )
        await self._answer_query(query, answer.toast)
        await self._send(user.id, answer.text, answer.buttons)

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        # Never the update's text or the token: the type of error and where is enough.
        log.error(
            "the admin bot could not handle an update: %s",
            type(context.error).__name__,
            exc_info=context.error,
        )

    async def _pairing_answer(self, user: telegram.User, chat_id: int) -> str:
        asker = pairing.Asker(
            telegram_id=user.id,
            chat_id=chat_id,
            username=user.username,
            name=user.full_name,
        )
        code = await self.db(lambda db: pairing.code_for(db, asker))
        if code is None:
            return (
                "Too many pairing codes were asked for from this account today. "
                "Please try again later."
            )
        return (
            "This bot is for nproxy admins. To get access, ask an operator to run this on the "
            f"server within the hour:\n\nnproxy pair {code}"
        )

    async def _answer_query(self, query: telegram.CallbackQuery, text: str | None = None) -> None:
        with contextlib.suppress(telegram.error.TelegramError):
            await query.answer(text[:200] if text else None)

    async def _send(
        self, chat_id: int, text: str, buttons: list[list[tuple[str, str]]] | None = None
    ) -> None:
        markup = None
        if buttons:
            markup = InlineKeyboardMarkup(
                [
                    [InlineKeyboardButton(label, callback_data=data) for label, data in row]
                    for row in buttons
                ]
            )
        bot = self.application.bot
        for start in range(0, max(len(text), 1), 4000):
            chunk = text[start : start + 4000]
            last = start + 4000 >= len(text)
            await bot.send_message(chat_id, chunk, reply_markup=markup if last else None)

    # --- pairing confirmations -----------------------------------------------------------------

    def _take_notifications(self, db: Session) -> list[int]:
        chats = []
        for item in pairing.to_notify(db):
            item.notified_at = utcnow()
            chats.append(item.chat_id)
        return chats

    async def notify_pairings(self) -> None:
        """Tell users whose pairing an operator confirmed that they have access."""
        while True:
            try:
                chats = await self.db(self._take_notifications)
                for chat_id in chats:
                    await self._send(
                        chat_id, "You now have admin access to nproxy. Send /help to begin."
                    )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("could not send pairing confirmations", exc_info=True)
            await asyncio.sleep(NOTIFY_INTERVAL)

    # --- the application ---------------------------------------------------------------------

    def build(self) -> Application:
        settings = self.registry.settings
        token = (setting(settings, "telegram.bot_token", default="") or "").strip()
        if not token:
            raise BotConfigError("missing required setting 'telegram.bot_token'")
        application = (
            application_builder(settings, token)
            .post_init(self._started)
            .post_shutdown(self._stopped)
            .build()
        )
        application.add_handler(MessageHandler(filters.ALL, self.on_message))
        application.add_handler(CallbackQueryHandler(self.on_button))
        application.add_error_handler(self.on_error)
        self.application = application
        return application

    async def _started(self, application: Application) -> None:
        await application.bot.set_my_commands(commands.MENU)
        self._notifier = asyncio.create_task(self.notify_pairings())
        # The container's healthcheck (``nproxy health bot``): beats from this event loop.
        heartbeat = HeartbeatFile(heartbeat_path(self.registry.settings, "bot"))
        self._heartbeat = asyncio.create_task(heartbeat.beat_forever())
        log.info("admin bot started")

    async def _stopped(self, application: Application) -> None:
        await cancel_tasks(getattr(self, "_notifier", None), getattr(self, "_heartbeat", None))


POLLING = {"allowed_updates": ["message", "callback_query"], "poll_interval": 0.0, "timeout": 10}


def run(registry: Registry) -> None:
    """Run the bots until interrupted (SIGINT/SIGTERM stop them cleanly): the admin bot when
    ``telegram.bot_token`` is set, the customer bot (DESIGN 4.14) when
    ``telegram.customer_bot_token`` is; both in one event loop when both are."""
    from nproxy_core.customerbot.bot import customer_token, run_together

    if not customer_token(registry.settings):
        application = AdminBot(registry).build()
        # Updates left from before a restart are handled once (the offset is confirmed).
        application.run_polling(**POLLING)
        return
    run_together(build_applications(registry))


def build_applications(registry: Registry) -> list[Application]:
    """The bots whose token is set: the admin bot, the customer bot, or both. A customer bot
    alone beats for the container's healthcheck (``nproxy health bot``)."""
    from nproxy_core.customerbot.bot import CustomerBot, customer_token

    applications = []
    admin_token = (setting(registry.settings, "telegram.bot_token", default="") or "").strip()
    if admin_token:
        applications.append(AdminBot(registry).build())
    if customer_token(registry.settings):
        customer = CustomerBot(registry)
        customer.heartbeat = not admin_token
        applications.append(customer.build())
    return applications


def start_in_thread(registry: Registry, until: threading.Event | None = None) -> threading.Thread:
    """The bots whose token is set in a daemon thread with an event loop of its own (``nproxy
    dev``), until the process ends or another thread sets ``until``; they then stop as on
    SIGTERM, and the thread ends."""
    from nproxy_core.customerbot.bot import run_together

    applications = build_applications(registry)

    def polling() -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        # Signals belong to the main thread (the web server's).
        run_together(applications, signals=False, until=until)

    thread = threading.Thread(target=polling, name="nproxy-bot", daemon=True)
    thread.start()
    return thread
