"""The customer bot on python-telegram-bot 22, long polling (DESIGN 4.14).

Every update is untrusted. Database work runs in a thread on a request made for it
(:func:`nproxy_core.tasks.run_now`: its own session and transaction, and a generation's job
is queued only after that commits), so the event loop never waits on PostgreSQL; updates are
handled concurrently, so one user's slow download never delays another's command.

Results are not sent by the handler that asked for them: a generation's delivery row is
written with it, and :meth:`CustomerBot.deliver_forever` sends each chat's finished results
in order, marking a row sent only once Telegram took it. A 429 or an outage postpones a
delivery; a restart of this process resumes it.

Buttons carry signed data (:func:`services.sign`): a forged button, or one pressed by someone
other than the user it was sent to, does nothing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import datetime as dt
import functools
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
import telegram
from pyramid.registry import Registry
from pyramid.request import Request
from telegram import (
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    LinkPreviewOptions,
    Update,
)
from telegram.constants import ChatAction
from telegram.ext import (
    Application,
    BaseRateLimiter,
    CallbackQueryHandler,
    ContextTypes,
    ExtBot,
    MessageHandler,
    PreCheckoutQueryHandler,
    filters,
)

from nproxy_core.accounts.interfaces import ISubscriptionSummary
from nproxy_core.billing.models import CreditPack, Plan
from nproxy_core.customerbot import forms, services, stars
from nproxy_core.customerbot.models import TelegramCustomer
from nproxy_core.customerbot.services import Refused, TelegramUser
from nproxy_core.customerbot.texts import LANGUAGES, text
from nproxy_core.errors import APIError
from nproxy_core.generation.models import Generation, GenerationImage
from nproxy_core.generation.schemas import PROMPT_MAX_CHARS
from nproxy_core.i18n import DEFAULT, localize
from nproxy_core.i18n.fields import localized
from nproxy_core.i18n.localizers import catalog_localizer
from nproxy_core.plugin_registry import IPlugins
from nproxy_core.plugins import setting
from nproxy_core.storage import IStorage
from nproxy_core.tasks import run_now
from nproxy_core.telegram.ptb import application_builder, cancel_tasks
from nproxy_core.templating import money

log = logging.getLogger(__name__)
logging.getLogger("httpx").setLevel(logging.WARNING)

T = TypeVar("T")

#: Threads for the database work of commands, buttons and payments (each holds a pooled
#: connection while it runs; with HEAVY_THREADS fewer than the pool's 30).
THREADS = 16
#: Threads for the heavy work: submitting generations, and reading results from storage and
#: marking them sent. Apart and few, so that fifty prompts or results at once queue behind
#: each other, never in front of another user's /help.
HEAVY_THREADS = 8
#: Tries of a result that fails for a reason other than Telegram's before it is given up.
MAX_ATTEMPTS = 5
#: Seconds between looks for finished results.
DELIVERY_INTERVAL = 0.5
#: An album's photos arrive as separate updates: this long after the last one, it is complete.
ALBUM_WAIT = 1.0
#: Telegram's own limits: 20 MB through getFile, 10 items in a media group.
MAX_DOWNLOAD = 20 * 1024 * 1024
MAX_ALBUM = 10
#: Telegram's limit on a photo's caption.
CAPTION_MAX_CHARS = 1024
#: Image types a document may be to count as a photo.
IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")

COMMANDS = (
    "start",
    "help",
    "templates",
    "balance",
    "buy",
    "settings",
    "history",
    "invite",
    "language",
    "web",
    "paysupport",
)

#: How long in all a reply Telegram answers with 429 waits before it is given up.
REPLY_PATIENCE = 60.0
#: ``rate_limit_args`` of the sends that deliver a result: the outbox tries those again.
OUTBOX = "outbox"

POLLING = {
    "allowed_updates": ["message", "callback_query", "pre_checkout_query"],
    "poll_interval": 0.0,
    "timeout": 10,
}


#: The languages read while handling one update (Telegram id -> code): an update reads the
#: account's choice once however many messages it sends, and a choice made on the web counts
#: from the next update. Each update is handled in a task of its own, so each has its own.
_SPOKEN: contextvars.ContextVar[dict[int, str] | None] = contextvars.ContextVar(
    "customerbot_spoken", default=None
)


def _new_update() -> None:
    _SPOKEN.set({})


def customer_token(settings: Any) -> str:
    return (setting(settings, "telegram.customer_bot_token", default="") or "").strip()


def _retry_seconds(error: telegram.error.RetryAfter) -> float:
    value = error.retry_after
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return float(value)


class WaitOutFloodLimits(BaseRateLimiter[str]):
    """A reply Telegram refuses with 429 (its flood limits, hit when many users write at once)
    is sent again after ``retry_after`` instead of being lost, for up to
    :data:`REPLY_PATIENCE` seconds in all. The sends of a result (``rate_limit_args`` =
    :data:`OUTBOX`) are not repeated here: their delivery row is postponed and tried again,
    across restarts too."""

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def process_request(
        self,
        callback: Callable[..., Any],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: str | None,
    ) -> Any:
        waited = 0.0
        while True:
            try:
                return await callback(*args, **kwargs)
            except telegram.error.RetryAfter as error:
                delay = _retry_seconds(error)
                if rate_limit_args == OUTBOX or waited + delay > REPLY_PATIENCE:
                    raise
                waited += delay
                await asyncio.sleep(delay)


def image_file(message: telegram.Message) -> Any | None:
    """The image ``message`` carries: its photo (the largest size Telegram made) or a document
    of an image type; None for anything else (a PDF, a sticker, text)."""
    if message.photo:
        return message.photo[-1]
    document = message.document
    if document is not None and (document.mime_type or "") in IMAGE_TYPES:
        return document
    return None


class CustomerBot:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.secret = registry.settings["nproxy.secret"]
        self.public_url = registry.settings["nproxy.public_url"].rstrip("/")
        self._albums: dict[str, list[telegram.Message]] = {}
        self._heavy: concurrent.futures.ThreadPoolExecutor | None = None
        self._album_timers: dict[str, asyncio.Task[None]] = {}
        #: Template forms being filled in, by chat (see :mod:`.forms`).
        self.forms = forms.Forms()
        self.username = (
            setting(registry.settings, "telegram.customer_bot_username", default="") or ""
        ).strip()

    # --- database, off the event loop ---------------------------------------------------------

    async def work(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(request, *args)`` in a thread, in a transaction of its own."""
        return await asyncio.to_thread(run_now, self.registry, fn, *args)

    async def heavy(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the threads of heavy work (:data:`HEAVY_THREADS`)."""
        call = functools.partial(fn, *args)
        return await asyncio.get_running_loop().run_in_executor(self._heavy, call)

    async def heavy_work(self, fn: Callable[..., T], *args: Any) -> T:
        """:meth:`work` on the threads of heavy work."""
        return await self.heavy(run_now, self.registry, fn, *args)

    # --- sending ------------------------------------------------------------------------------

    @property
    def bot(self) -> ExtBot[str]:
        return self.application.bot

    def _markup(self, telegram_id: int, rows: list[list[tuple[str, str]]] | None) -> Any:
        if not rows:
            return None
        return InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(
                        label,
                        url=data[4:] if data.startswith("url:") else None,
                        callback_data=None
                        if data.startswith("url:")
                        else services.sign(self.secret, telegram_id, data),
                    )
                    for label, data in row
                ]
                for row in rows
            ]
        )

    async def say(
        self,
        chat_id: int,
        key: str,
        *,
        buttons: list[list[tuple[str, str]]] | None = None,
        telegram_id: int | None = None,
        **values: Any,
    ) -> telegram.Message:
        markup = self._markup(telegram_id or chat_id, buttons)
        said = text(key, await self.speaks(telegram_id or chat_id), **values)
        return await self.bot.send_message(chat_id, said[:4096], reply_markup=markup)

    async def speaks(self, telegram_id: int) -> str:
        """The language the bot writes to ``telegram_id`` in: the account's choice (made with
        /language or on the web), else English. Read each time: a choice made on the web
        counts from the next update (read once per update: :data:`_SPOKEN`)."""
        known = _SPOKEN.get()
        if known is not None and telegram_id in known:
            return known[telegram_id]

        def chosen(request: Request) -> str | None:
            customer = services.find_customer(request.db, telegram_id)
            return None if customer is None else _language_of(customer)

        language = await self.work(chosen) or "en"
        if known is not None:
            known[telegram_id] = language
        return language

    # --- updates ------------------------------------------------------------------------------

    async def on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        _new_update()
        message = update.effective_message
        user = update.effective_user
        chat = update.effective_chat
        if message is None or user is None or chat is None or user.is_bot:
            return
        if chat.type != "private":
            return
        who = TelegramUser(user.id, chat.id, user.username)
        if message.successful_payment is not None:
            await self._paid(who, message)
            return
        raw = message.text or ""
        if raw.startswith("/"):
            head, _, rest = raw.partition(" ")
            name = head[1:].split("@", 1)[0].lower()
            await self.command(who, name, rest.strip())
            return
        # An open template form takes the message as its answer.
        if await forms.on_message(self, who, message):
            return
        if message.media_group_id:
            self._collect_album(who, message)
            return
        created = await self._ensure_account(who)
        if created:
            await self.say(who.chat_id, "welcome_new")
        if message.sticker is not None:
            await self.say(who.chat_id, "sticker")
            return
        if message.photo or message.document is not None:
            await self._image_to_image(who, [message], message.caption or "")
            return
        if message.text:
            await self._generate(who, message.text)
            return
        await self.say(who.chat_id, "unsupported")

    async def _ensure_account(self, who: TelegramUser) -> bool:
        def open_(request: Request) -> tuple[bool, str]:
            customer, created = services.open_account(request.db, who)
            return created, _language_of(customer)

        # The account's language comes with it: one trip to the database fewer per update.
        created, language = await self.work(open_)
        known = _SPOKEN.get()
        if known is not None:
            known[who.id] = language
        return created

    # --- commands -----------------------------------------------------------------------------

    async def command(self, who: TelegramUser, name: str, args: str) -> None:
        # Any command closes an open template form.
        closed = self.forms.drop(who.chat_id)
        if name == "start":
            await self.start(who, args)
            return
        created = await self._ensure_account(who)
        if created:
            await self.say(who.chat_id, "welcome_new")
        if name == "cancel":  # not in the menu: it only closes an open template form
            await self.say(who.chat_id, "form_cancelled" if closed else "nothing_to_cancel")
            return
        handler = getattr(self, f"cmd_{name}", None) if name in COMMANDS else None
        if handler is None:
            await self.say(who.chat_id, "unknown_command")
            return
        await handler(who)

    async def start(self, who: TelegramUser, payload: str) -> None:
        if payload and not services.PAYLOAD.fullmatch(payload):
            await self._ensure_account(who)
            await self.say(who.chat_id, "start_bad")
            return
        if payload.startswith("link_"):
            token = payload[len("link_") :]

            def link(request: Request) -> str:
                user = services.link_account(request.db, who, token)
                return user.email or f"#{user.id}"

            try:
                account = await self.work(link)
            except Refused as refusal:
                await self.say(who.chat_id, refusal.key, **refusal.values)
                return
            await self.say(who.chat_id, "linked", account=account)
            return
        created = await self._ensure_account(who)
        if payload.startswith("ref_") and created:
            code = payload[len("ref_") :]
            recorded = await self.work(lambda request: stars.record_referral(request, who, code))
            if recorded:
                await self.say(who.chat_id, "referral_recorded")
        elif payload and not payload.startswith("ref_"):
            await self.say(who.chat_id, "start_bad")
            return
        await self.say(who.chat_id, "welcome_new" if created else "welcome_back")

    async def cmd_help(self, who: TelegramUser) -> None:
        await self.say(who.chat_id, "help")

    async def cmd_templates(self, who: TelegramUser) -> None:
        await forms.list_templates(self, who)

    async def cmd_balance(self, who: TelegramUser) -> None:
        language = await self.speaks(who.id)

        def read(request: Request) -> dict[str, Any]:
            customer = services.find_customer(request.db, who.id)
            summary = request.find_service(ISubscriptionSummary)
            # The plan's and the packs' names in the customer's language.
            return summary.summary(request, customer.user, localizer=catalog_localizer(language))

        summary = await self.work(read)
        packs = "\n".join(
            text(
                "balance_pack",
                language,
                label=p["label"],
                units=p["units_left"],
                expires=_day(p["expires_at"]),
            )
            for p in summary.get("packs") or []
        ) or text("balance_no_packs", language)
        sub = summary["subscription"]
        if sub["status"] == "active":
            await self.say(
                who.chat_id,
                "balance",
                plan=sub["plan"]["name"],
                bucket=summary["quota"]["bucket"],
                ends=_day(sub["current_period_end"]),
                packs=packs,
            )
        else:
            await self.say(who.chat_id, "balance_none", packs=packs)

    async def cmd_buy(self, who: TelegramUser) -> None:
        language = await self.speaks(who.id)
        localizer = catalog_localizer(language)

        def offers(request: Request) -> list[tuple[str, str, str, str, bool]]:
            """(kind, code, name in the customer's language, price, sold for Stars)."""
            db = request.db
            rows: list[tuple[str, Any]] = [
                ("plan", plan)
                for plan in db.scalars(
                    sa.select(Plan)
                    .where(Plan.public.is_(True), Plan.active.is_(True), Plan.free.is_(False))
                    .order_by(Plan.price, Plan.id)
                )
            ] + [
                ("pack", pack)
                for pack in db.scalars(
                    sa.select(CreditPack)
                    .where(CreditPack.public.is_(True), CreditPack.active.is_(True))
                    .order_by(CreditPack.price, CreditPack.id)
                )
            ]
            return [
                (
                    kind,
                    row.code,
                    localized(row, "name", localizer),
                    _price(row, language),
                    bool(row.price_stars),
                )
                for kind, row in rows
            ]

        items = await self.work(offers)
        lines = [text("buy_intro", language)] + [
            text("buy_item", language, name=name, price=price) for _, _, name, price, _ in items
        ]
        buttons = [
            [(text("btn_buy_stars", language, name=name), f"b:{kind}:{code}")]
            for kind, code, name, _, stars in items
            if stars
        ]
        buttons.append([(text("btn_buy_web", language), f"url:{self.public_url}/pricing")])
        await self.bot.send_message(
            who.chat_id, "\n".join(lines), reply_markup=self._markup(who.id, buttons)
        )

    async def cmd_settings(self, who: TelegramUser) -> None:
        current = await self.work(lambda request: self._settings_view(request, who))
        language = await self.speaks(who.id)
        await self.say(
            who.chat_id,
            "settings",
            buttons=[
                [(text("btn_model", language, model=current["model"]), "s:m")],
                [(text("btn_resolution", language, resolution=current["resolution"]), "s:r")],
                [(text("btn_batch", language, batch=current["batch"]), "s:b")],
            ],
            telegram_id=who.id,
            **current,
        )

    def _settings_view(self, request: Request, who: TelegramUser) -> dict[str, Any]:
        customer = services.find_customer(request.db, who.id)
        _provider, caps = self._model_of(request, customer)
        return {
            "model": caps.display_name,
            "resolution": customer.resolution
            if customer.resolution in caps.resolutions
            else caps.resolutions[0],
            "batch": min(customer.batch_size or 1, caps.max_batch),
        }

    def _models(self, request: Request) -> list[tuple[str, Any]]:
        return [
            (name, caps)
            for name, plugin in request.find_service(IPlugins).providers.items()
            for caps in plugin.capabilities()
        ]

    def _model_of(self, request: Request, customer: TelegramCustomer) -> tuple[str, Any]:
        models = self._models(request)
        for name, caps in models:
            if name == customer.provider and caps.model == customer.model:
                return name, caps
        return models[0]

    async def cmd_history(self, who: TelegramUser) -> None:
        def recent(request: Request) -> list[tuple[str, str, str]]:
            customer = services.find_customer(request.db, who.id)
            rows = request.db.execute(
                sa.select(GenerationImage.id, GenerationImage.created_at, Generation.message_id)
                .join(Generation, Generation.id == GenerationImage.generation_id)
                .where(GenerationImage.user_id == customer.user_id)
                .order_by(GenerationImage.created_at.desc())
                .limit(10)
            ).all()
            out = []
            for image_id, created, _message in rows:
                image = request.db.get(GenerationImage, image_id)
                prompt = image.generation.message.prompt
                out.append((image_id.hex, f"{created:%Y-%m-%d %H:%M}", prompt[:60]))
            return out

        items = await self.work(recent)
        if not items:
            await self.say(who.chat_id, "history_empty")
            return
        language = await self.speaks(who.id)
        lines = [
            text("history_item", language, when=when, prompt=prompt) for _, when, prompt in items
        ]
        buttons = [
            [(f"{text('btn_original', language)} {i + 1}", f"o:{image}")]
            for i, (image, _, _) in enumerate(items)
        ]
        await self.bot.send_message(
            who.chat_id,
            "\n".join(f"{i + 1}. {line}" for i, line in enumerate(lines))[:4096],
            reply_markup=self._markup(who.id, buttons),
        )

    async def cmd_invite(self, who: TelegramUser) -> None:
        link = await self.work(lambda request: stars.invite_link(request, who, self.username))
        if link is None:
            await self.say(who.chat_id, "invite_unavailable")
        else:
            await self.say(who.chat_id, "invite", link=link)

    async def cmd_language(self, who: TelegramUser) -> None:
        await self.say(
            who.chat_id,
            "language_pick",
            buttons=[[(label, f"g:{code}")] for code, label in LANGUAGES.items()],
            telegram_id=who.id,
        )

    async def cmd_web(self, who: TelegramUser) -> None:
        def login(request: Request) -> str:
            customer = services.find_customer(request.db, who.id)
            return services.make_login_token(request.db, customer.user)

        token = await self.work(login)
        link = f"{self.public_url}/telegram/login/{token}"
        # No preview: nothing should open the link but its owner.
        await self.bot.send_message(
            who.chat_id,
            text("web_link", await self.speaks(who.id), link=link),
            link_preview_options=LinkPreviewOptions(is_disabled=True),
        )

    async def cmd_paysupport(self, who: TelegramUser) -> None:
        await self.say(who.chat_id, "paysupport", link=self.public_url)

    # --- generating ---------------------------------------------------------------------------

    async def _generate(
        self, who: TelegramUser, prompt: str, photos: list[bytes] | None = None
    ) -> None:
        if len(prompt) > PROMPT_MAX_CHARS:
            await self.say(who.chat_id, "caption_too_long", limit=PROMPT_MAX_CHARS)
            return
        with contextlib.suppress(telegram.error.TelegramError):
            await self.bot.send_chat_action(who.chat_id, ChatAction.UPLOAD_PHOTO)
        status = await self.say(who.chat_id, "working")

        def submit(request: Request) -> None:
            customer = services.find_customer(request.db, who.id)
            services.submit(request, customer, prompt, photos, status_message_id=status.message_id)

        await self._submitting(who, status, submit)

    async def _submitting(
        self, who: TelegramUser, status: telegram.Message | None, submit: Callable[[Request], Any]
    ) -> None:
        try:
            await self.heavy_work(submit)
        except Refused as refusal:
            language = await self.speaks(who.id)
            await self._refuse(who, status, text(refusal.key, language, **refusal.values))
        except APIError as error:
            # The web's own words (quota, plan, the checks of an upload), in the same language.
            language = await self.speaks(who.id)
            reason = localize(catalog_localizer(language), services.refusal_text(error))
            await self._refuse(who, status, text("refused", language, reason=reason))

    async def _refuse(self, who: TelegramUser, status: telegram.Message | None, said: str) -> None:
        if status is None:
            await self.bot.send_message(who.chat_id, said)
        else:
            await self.bot.edit_message_text(
                said, chat_id=who.chat_id, message_id=status.message_id
            )

    def _collect_album(self, who: TelegramUser, message: telegram.Message) -> None:
        group = f"{who.chat_id}:{message.media_group_id}"
        self._albums.setdefault(group, []).append(message)
        timer = self._album_timers.pop(group, None)
        if timer is not None:
            timer.cancel()

        async def later() -> None:
            _new_update()
            await asyncio.sleep(ALBUM_WAIT)
            self._album_timers.pop(group, None)
            messages = sorted(self._albums.pop(group, []), key=lambda m: m.message_id)
            try:
                created = await self._ensure_account(who)
                if created:
                    await self.say(who.chat_id, "welcome_new")
                caption = next((m.caption for m in messages if m.caption), "")
                await self._image_to_image(who, messages, caption)
            except Exception:
                # This task is no update's handler: the error handler never hears of it.
                log.exception("the customer bot could not handle an album")
                with contextlib.suppress(Exception):
                    await self.say(who.chat_id, "error")

        self._album_timers[group] = asyncio.create_task(later())

    async def _image_to_image(
        self, who: TelegramUser, messages: list[telegram.Message], caption: str
    ) -> None:
        if len(messages) > MAX_ALBUM:
            await self.say(who.chat_id, "album_too_big", limit=MAX_ALBUM)
            return
        files = [file for file in map(image_file, messages) if file is not None]
        if len(files) < len(messages):
            await self.say(who.chat_id, "bad_file")
            return
        if any((f.file_size or 0) > MAX_DOWNLOAD for f in files):
            await self.say(who.chat_id, "photo_too_big")
            return
        if not caption.strip():
            await self.say(who.chat_id, "no_caption")
            return
        if len(caption) > PROMPT_MAX_CHARS:
            await self.say(who.chat_id, "caption_too_long", limit=PROMPT_MAX_CHARS)
            return
        limit = await self.work(lambda request: self._input_limit(request, who))
        if len(files) > limit:
            await self.say(who.chat_id, "album_too_big", limit=limit)
            return
        photos = []
        for item in files:
            try:
                handle = await self.bot.get_file(item.file_id)
                photos.append(bytes(await handle.download_as_bytearray()))
            except telegram.error.BadRequest:
                await self.say(who.chat_id, "photo_too_big")
                return
        await self._generate(who, caption, photos)

    def _input_limit(self, request: Request, who: TelegramUser) -> int:
        customer = services.find_customer(request.db, who.id)
        _name, caps = self._model_of(request, customer)
        return min(MAX_ALBUM, caps.max_input_images)

    # --- buttons ------------------------------------------------------------------------------

    async def on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        _new_update()
        query = update.callback_query
        user = update.effective_user
        if query is None or user is None:
            return
        chat_id = query.message.chat.id if query.message is not None else user.id
        who = TelegramUser(user.id, chat_id, user.username)
        data = services.verify(self.secret, user.id, query.data or "")
        if data is None:
            await self._answer(query, text("button_bad", await self.speaks(user.id)))
            if chat_id == user.id:  # pressed in the user's own chat: an open form still waits
                await forms.remind(self, who)
            return
        await self._answer(query)
        kind, _, arg = data.partition(":")
        try:
            if kind in ("r", "v"):
                await self._again(who, arg, vary=kind == "v")
            elif kind == "l":
                await self._larger(who, arg)
            elif kind == "o":
                await self._original(who, arg)
            elif kind == "s":
                await self._setting(who, arg)
            elif kind == "g":
                await self._language(who, arg)
            elif kind == "b":
                await stars.send_invoice(self, who, arg)
            elif kind == "t":
                await forms.pick(self, who, arg)
            elif kind == "f":
                await forms.on_button(self, who, arg)
            else:
                await self.say(who.chat_id, "button_bad")
        except Refused as refusal:
            await self.say(who.chat_id, refusal.key, **refusal.values)

    async def _answer(self, query: telegram.CallbackQuery, said: str | None = None) -> None:
        with contextlib.suppress(telegram.error.TelegramError):
            await query.answer(said[:200] if said else None)

    async def _again(self, who: TelegramUser, generation_hex: str, *, vary: bool) -> None:
        status = await self.say(who.chat_id, "working")

        def submit(request: Request) -> None:
            customer = services.find_customer(request.db, who.id)
            generation = services.again(request, customer, generation_hex, vary=vary)
            services.set_status_message(request.db, str(generation.id), status.message_id)

        await self._submitting(who, status, submit)

    async def _larger(self, who: TelegramUser, image_hex: str) -> None:
        status = await self.say(who.chat_id, "working")

        def submit(request: Request) -> None:
            customer = services.find_customer(request.db, who.id)
            generation = services.larger(request, customer, image_hex)
            services.set_status_message(request.db, str(generation.id), status.message_id)

        await self._submitting(who, status, submit)

    async def _original(self, who: TelegramUser, image_hex: str) -> None:
        def read(request: Request) -> tuple[bytes, str]:
            import uuid

            customer = services.find_customer(request.db, who.id)
            image = request.db.get(GenerationImage, uuid.UUID(image_hex))
            if customer is None or image is None or image.user_id != customer.user_id:
                raise Refused("button_not_yours")
            extension = image.mime.rpartition("/")[2]
            data = request.find_service(IStorage).get(image.storage_key)
            return data, f"image-{image.id.hex[:8]}.{extension}"

        data, filename = await self.work(read)
        await self.bot.send_document(who.chat_id, data, filename=filename)

    async def _setting(self, who: TelegramUser, arg: str) -> None:
        what, _, value = arg.partition(":")

        def choices(request: Request) -> list[list[tuple[str, str]]] | None:
            customer = services.find_customer(request.db, who.id)
            models = self._models(request)
            provider, caps = self._model_of(request, customer)
            if what == "m" and not value:
                return [[(c.display_name, f"s:m:{i}")] for i, (_n, c) in enumerate(models)]
            if what == "r" and not value:
                return [[(r, f"s:r:{i}")] for i, r in enumerate(caps.resolutions)]
            if what == "b" and not value:
                return [[(str(n), f"s:b:{n}") for n in range(1, caps.max_batch + 1)]]
            if not value.isdigit():
                raise Refused("button_bad")
            index = int(value)
            if what == "m" and index < len(models):
                customer.provider, customer.model = models[index][0], models[index][1].model
                customer.resolution = None
                customer.batch_size = min(customer.batch_size, models[index][1].max_batch)
            elif what == "r" and index < len(caps.resolutions):
                customer.provider, customer.model = provider, caps.model
                customer.resolution = caps.resolutions[index]
            elif what == "b" and 1 <= index <= caps.max_batch:
                customer.provider, customer.model = provider, caps.model
                customer.batch_size = index
            else:
                raise Refused("button_bad")
            return None

        rows = await self.work(choices)
        if rows is not None:
            await self.say(who.chat_id, "settings_choose", buttons=rows, telegram_id=who.id)
            return
        await self.say(who.chat_id, "settings_saved")
        await self.cmd_settings(who)

    async def _language(self, who: TelegramUser, code: str) -> None:
        if code not in LANGUAGES:
            raise Refused("button_bad")

        def save(request: Request) -> None:
            # One language for the account: the web speaks it too from now on.
            customer = services.find_customer(request.db, who.id)
            customer.language = customer.user.language = code

        await self.work(save)
        known = _SPOKEN.get()
        if known is not None:
            known[who.id] = code
        await self.say(who.chat_id, "language_set", language=LANGUAGES[code])

    # --- payments (the ``stars`` plugin's services, see :mod:`.stars`) ------------------------

    async def on_pre_checkout(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.pre_checkout_query
        if query is not None:
            await stars.pre_checkout(self, query)

    async def _paid(self, who: TelegramUser, message: telegram.Message) -> None:
        await stars.successful_payment(self, who, message)

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error(
            "the customer bot could not handle an update: %s",
            type(context.error).__name__,
            exc_info=context.error,
        )
        chat = getattr(update, "effective_chat", None)
        if chat is not None:
            with contextlib.suppress(Exception):
                await self.say(chat.id, "error")

    # --- deliveries ---------------------------------------------------------------------------

    async def deliver_forever(self) -> None:
        while True:
            try:
                await self.deliver_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("could not deliver results", exc_info=True)
            await asyncio.sleep(DELIVERY_INTERVAL)

    async def deliver_once(self) -> int:
        ready = await self.heavy_work(services.ready_deliveries)
        # One chat's results in order; chats side by side.
        await asyncio.gather(*(self._deliver(item) for item in ready))
        return len(ready)

    async def _deliver(self, item: services.Ready) -> None:
        delay: float | None = None
        reason = ""
        try:
            await self._send_result(item)
        except telegram.error.RetryAfter as error:
            delay, reason = _retry_seconds(error), "429"
        except telegram.error.Forbidden as error:
            # The user blocked the bot: nothing can reach them.
            log.info("delivery %s refused: %s", item.delivery_id, type(error).__name__)
        except telegram.error.TelegramError as error:
            delay, reason = 5.0, type(error).__name__
        except Exception as error:
            # Not Telegram's doing (storage, database): tried again later, and given up on
            # after many tries so that one broken result never holds up the chat for good.
            log.warning("delivery %s failed", item.delivery_id, exc_info=True)
            if item.attempts < MAX_ATTEMPTS:
                delay, reason = 5.0 * 2**item.attempts, type(error).__name__
            else:
                with contextlib.suppress(telegram.error.TelegramError):
                    language = await self.speaks(item.telegram_id or item.chat_id)
                    await self._status(item, text("error", language))
        if delay is not None:
            await self.heavy_work(
                lambda r: services.postpone(r.db, item.delivery_id, delay, reason)
            )
            return
        await self.heavy_work(lambda r: services.mark_sent(r.db, item.delivery_id))

    async def _send_result(self, item: services.Ready) -> None:
        chat_id = item.chat_id
        telegram_id = item.telegram_id or chat_id
        if not item.images:
            language = await self.speaks(telegram_id)
            # The product's own failure messages are kept in English and read in the customer's.
            failed = item.error_message
            localizer = catalog_localizer(language)
            reason = localize(localizer, failed) if failed else text("no_image", language)
            said = text("failed", language, reason=reason)
            await self._status(item, said)
            return
        storage_get = self.registry_storage().get
        datas = await asyncio.gather(
            *(self.heavy(storage_get, key) for _id, key, _mime in item.images)
        )
        gid = item.generation_id.replace("-", "")
        language = await self.speaks(telegram_id)
        rows: list[list[tuple[str, str]]] = [
            [
                (text("btn_regenerate", language), f"r:{gid}"),
                (text("btn_vary", language), f"v:{gid}"),
            ]
        ]
        first = item.images[0][0].replace("-", "")
        if item.larger:
            rows.append([(text("btn_larger", language, resolution=item.larger), f"l:{first}")])
        rows += [
            [
                (
                    f"{text('btn_original', language)} {n + 1}"
                    if len(item.images) > 1
                    else text("btn_original", language),
                    f"o:{image_id.replace('-', '')}",
                )
            ]
            for n, (image_id, _k, _m) in enumerate(item.images)
        ]
        markup = self._markup(telegram_id, rows)
        done = text("done", language, count=len(datas))
        # The model's words (a template that asks for them) go under a single photo; an album,
        # or words too long for a caption, have them on the status message.
        words = (item.text or "").strip()
        caption = words if len(datas) == 1 and len(words) <= CAPTION_MAX_CHARS else ""
        if words and not caption:
            done = f"{done}\n\n{words}"[:4096]
        # A delivery that fails part way is sent again from the start, so the pictures go
        # last: a 429 or an outage on the status message then repeats only the status edit,
        # never a photo or an album. An album cannot carry buttons: the status has them.
        if len(datas) == 1:
            await self._status(item, done)
            await self.bot.send_photo(
                chat_id,
                datas[0],
                caption=caption or None,
                reply_markup=markup,
                rate_limit_args=OUTBOX,
            )
        else:
            await self._status(item, done, markup)
            await self.bot.send_media_group(
                chat_id, [InputMediaPhoto(d) for d in datas], rate_limit_args=OUTBOX
            )

    async def _status(
        self, item: services.Ready, said: str, markup: InlineKeyboardMarkup | None = None
    ) -> None:
        if item.status_message_id is None:
            await self.bot.send_message(
                item.chat_id, said, reply_markup=markup, rate_limit_args=OUTBOX
            )
            return
        try:
            await self.bot.edit_message_text(
                said,
                chat_id=item.chat_id,
                message_id=item.status_message_id,
                reply_markup=markup,
                rate_limit_args=OUTBOX,
            )
        except telegram.error.BadRequest as error:
            if "not modified" in error.message.lower():
                return  # edited already, by an earlier try of this delivery
            # The status message is gone (deleted by the user): say it anew.
            await self.bot.send_message(
                item.chat_id, said, reply_markup=markup, rate_limit_args=OUTBOX
            )

    def registry_storage(self) -> Any:
        from nproxy_core.wiring import find_service

        return find_service(self.registry, IStorage)

    # --- the application ----------------------------------------------------------------------

    def build(self) -> Application:
        settings = self.registry.settings
        application = (
            application_builder(settings, customer_token(settings))
            .concurrent_updates(64)
            .rate_limiter(WaitOutFloodLimits())
            .post_init(self._started)
            .post_shutdown(self._stopped)
            .build()
        )
        application.add_handler(MessageHandler(filters.ALL, self.on_message))
        application.add_handler(CallbackQueryHandler(self.on_button))
        application.add_handler(PreCheckoutQueryHandler(self.on_pre_checkout))
        application.add_error_handler(self.on_error)
        self.application = application
        return application

    async def _started(self, application: Application) -> None:
        # Database work runs in threads, the heavy work on threads of its own (see THREADS).
        asyncio.get_running_loop().set_default_executor(
            concurrent.futures.ThreadPoolExecutor(THREADS, thread_name_prefix="customerbot")
        )
        self._heavy = concurrent.futures.ThreadPoolExecutor(
            HEAVY_THREADS, thread_name_prefix="customerbot-heavy"
        )
        # The menu in each offered language, for Telegram apps set to it; English for the rest.
        for language in LANGUAGES:
            await application.bot.set_my_commands(
                [BotCommand(name, text(f"cmd_{name}", language)) for name in COMMANDS],
                language_code=None if language == DEFAULT else language,
            )
        if not self.username:
            self.username = application.bot.username or ""
        self._deliverer = asyncio.create_task(self.deliver_forever())
        if getattr(self, "heartbeat", False):
            from nproxy_core.healthcheck import HeartbeatFile, heartbeat_path

            beating = HeartbeatFile(heartbeat_path(self.registry.settings, "bot"))
            self._heartbeat = asyncio.create_task(beating.beat_forever())
        log.info("customer bot started")

    async def _stopped(self, application: Application) -> None:
        await cancel_tasks(getattr(self, "_deliverer", None), getattr(self, "_heartbeat", None))
        if self._heavy is not None:
            self._heavy.shutdown(wait=False)


def _language_of(customer: TelegramCustomer) -> str:
    """The account's language (chosen in the bot or on the web)."""
    return customer.user.language or customer.language


def _day(value: str | None) -> str:
    return (value or "")[:10] or "-"


def _price(row: Any, language: str = "en") -> str:
    price = f"{money(row.price)} {row.currency}"
    if row.price_stars:
        price = text("price_stars", language, price=price, stars=row.price_stars)
    return price


def run_together(
    applications: list[Application],
    *,
    signals: bool = True,
    until: threading.Event | None = None,
) -> None:
    """Run several bots' long polling in one event loop until SIGINT or SIGTERM (``signals``),
    or until another thread sets ``until``; with neither, until the process ends. Either way
    they stop as on SIGTERM: polling ends, the updates in hand are finished, then shutdown."""
    import signal

    from nproxy_core.adminbot.bot import POLLING as ADMIN_POLLING

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM) if signals else ():
            loop.add_signal_handler(signum, stop.set)
        if until is not None:

            def relay() -> None:
                until.wait()
                with contextlib.suppress(RuntimeError):  # the loop ended by itself
                    loop.call_soon_threadsafe(stop.set)

            threading.Thread(target=relay, name="nproxy-bot-stop", daemon=True).start()
        started: list[Application] = []
        try:
            for application in applications:
                await application.initialize()
                if application.post_init is not None:
                    await application.post_init(application)
                polling = POLLING if application.concurrent_updates > 1 else ADMIN_POLLING
                await application.updater.start_polling(**polling)
                await application.start()
                started.append(application)
            await stop.wait()
        finally:
            for application in reversed(started):
                with contextlib.suppress(Exception):
                    await application.updater.stop()
                with contextlib.suppress(Exception):
                    await application.stop()
                if application.post_shutdown is not None:
                    with contextlib.suppress(Exception):
                        await application.post_shutdown(application)
                with contextlib.suppress(Exception):
                    await application.shutdown()

    asyncio.run(main())
