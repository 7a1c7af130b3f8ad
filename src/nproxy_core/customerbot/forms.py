"""Prompt templates in the customer bot (DESIGN 4.17): ``/templates`` lists the active ones, and
picking one asks its fields one at a time in the chat (a select as buttons, a text as a reply,
an image as a photo; Skip on the optional ones), then submits ``{template, inputs}`` through
the same generation path as a typed prompt.

An unfinished form lives in this process's memory (:class:`Forms`), per chat, for
:data:`FORM_LIFETIME`: the bot runs as one process, and a restart losing a half-answered form
costs the customer nothing but answering again (no units are held, nothing is made, and a
photo already given is an ordinary unused upload). A form's buttons carry its token and the
question they answer, so a button of an earlier question or an ended form changes nothing.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

import sqlalchemy as sa
import telegram
from pyramid.request import Request

from nproxy_core.customerbot import services
from nproxy_core.customerbot.services import Refused, TelegramUser
from nproxy_core.customerbot.texts import text
from nproxy_core.errors import APIError
from nproxy_core.i18n import localize
from nproxy_core.i18n.fields import localized
from nproxy_core.i18n.localizers import catalog_localizer
from nproxy_core.prompt_templates import schemas
from nproxy_core.prompt_templates import services as templates
from nproxy_core.prompt_templates.models import PromptTemplate

if TYPE_CHECKING:
    from nproxy_core.customerbot.bot import CustomerBot

#: How long an unanswered form waits for its next answer.
FORM_LIFETIME = 30 * 60.0
#: Forms kept at once; past this the oldest goes (its chat starts again with /templates).
MAX_FORMS = 10_000
#: Telegram's limit on a button's text.
BUTTON_MAX_CHARS = 60


@dataclasses.dataclass(frozen=True)
class Question:
    """One field of a template, in the reader's language (``options`` stay the English values
    a submission sends; ``option_labels`` are what the buttons say)."""

    name: str
    kind: str
    label: str
    required: bool
    options: tuple[str, ...] = ()
    option_labels: tuple[str, ...] = ()


@dataclasses.dataclass
class Form:
    """A template being filled in by one chat."""

    slug: str
    title: str
    questions: tuple[Question, ...]
    language: str
    token: str = dataclasses.field(default_factory=lambda: secrets.token_hex(3))
    answers: dict[str, str] = dataclasses.field(default_factory=dict)
    at: int = 0
    expires: float = 0.0
    #: The album last refused (its photos arrive one by one: one message says no).
    album: str | None = None

    @property
    def question(self) -> Question | None:
        return self.questions[self.at] if self.at < len(self.questions) else None


class Forms:
    """Unfinished forms by chat, bounded in number (:data:`MAX_FORMS`) and age
    (:data:`FORM_LIFETIME`)."""

    def __init__(
        self,
        lifetime: float = FORM_LIFETIME,
        limit: int = MAX_FORMS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lifetime, self.limit, self.clock = lifetime, limit, clock
        self._forms: OrderedDict[int, Form] = OrderedDict()

    def start(self, chat_id: int, form: Form) -> Form:
        self._forms.pop(chat_id, None)
        self.touch(form)
        self._forms[chat_id] = form
        now = self.clock()
        while self._forms:
            oldest_chat, oldest = next(iter(self._forms.items()))
            if len(self._forms) <= self.limit and oldest.expires > now:
                break
            del self._forms[oldest_chat]
        return form

    def touch(self, form: Form) -> None:
        form.expires = self.clock() + self.lifetime

    def get(self, chat_id: int) -> Form | None:
        form = self._forms.get(chat_id)
        if form is not None and form.expires <= self.clock():
            del self._forms[chat_id]
            return None
        return form

    def drop(self, chat_id: int) -> Form | None:
        form = self.get(chat_id)
        self._forms.pop(chat_id, None)
        return form

    def __len__(self) -> int:
        return len(self._forms)


# --- the rules of an answer, as plain functions -----------------------------------------------


def shown_label(question: Question, language: str) -> str:
    if question.required:
        return question.label
    return text("optional_label", language, label=question.label)


def typed_answer(question: Question, typed: str, language: str) -> str:
    """The value a typed reply gives ``question``, or Refused naming the field."""
    value = typed.strip()
    if question.kind == "select":
        wanted = value.casefold()
        for option, shown in zip(question.options, question.option_labels, strict=True):
            if wanted in (option.casefold(), shown.casefold()):
                return option
    if question.kind != "text" or not value or "\x00" in value:
        raise wrong_kind(question, language)
    if len(value) > schemas.INPUT_MAX_CHARS:
        label = shown_label(question, language)
        raise Refused("form_too_long", label=label, limit=schemas.INPUT_MAX_CHARS)
    return value


def wrong_kind(question: Question, language: str) -> Refused:
    """What a message that is not an answer of ``question``'s kind is told (a photo for a
    text, a sticker, ...)."""
    label = shown_label(question, language)
    if question.kind == "image":
        return Refused("form_want_photo", label=label)
    if question.kind == "select":
        return Refused("form_pick_option", label=label, options=", ".join(question.option_labels))
    return Refused("form_want_text", label=label)


def form_of(template: PromptTemplate, language: str) -> Form:
    localizer = catalog_localizer(language)
    fields = schemas.localized_fields(template.fields, template.translations, language)
    return Form(
        slug=template.slug,
        title=localized(template, "title", localizer),
        questions=tuple(
            Question(
                name=f["name"],
                kind=f["kind"],
                label=f["label"],
                required=f.get("required", True),
                options=tuple(f["options"]),
                option_labels=tuple(f["option_labels"]),
            )
            for f in fields
        ),
        language=language,
    )


# --- the bot's side ----------------------------------------------------------------------------


async def list_templates(bot: CustomerBot, who: TelegramUser) -> None:
    language = await bot.speaks(who.id)
    localizer = catalog_localizer(language)

    def read(request: Request) -> list[tuple[int, str]]:
        return [(t.id, localized(t, "title", localizer)) for t in templates.gallery(request.db)]

    rows = await bot.work(read)
    if not rows:
        await bot.say(who.chat_id, "templates_none")
        return
    buttons = [[(title[:BUTTON_MAX_CHARS], f"t:{template_id}")] for template_id, title in rows]
    await bot.say(who.chat_id, "templates_pick", buttons=buttons, telegram_id=who.id)


async def pick(bot: CustomerBot, who: TelegramUser, arg: str) -> None:
    """A template chosen from the list: its form starts with the first question."""
    language = await bot.speaks(who.id)
    if not arg.isdigit():
        raise Refused("template_gone")

    def read(request: Request) -> tuple[Form, str]:
        template = request.db.scalar(
            sa.select(PromptTemplate).where(
                PromptTemplate.id == int(arg), PromptTemplate.active.is_(True)
            )
        )
        if template is None:
            raise Refused("template_gone")
        description = localized(template, "description", catalog_localizer(language))
        return form_of(template, language), description

    form, description = await bot.work(read)
    bot.forms.start(who.chat_id, form)
    said = text("template_start", language, title=form.title, description=description)
    await bot.bot.send_message(who.chat_id, re.sub(r"\n{3,}", "\n\n", said)[:4096])
    await ask(bot, who, form)


async def ask(bot: CustomerBot, who: TelegramUser, form: Form) -> None:
    """The form's next question, or, when every field is answered, its submission."""
    question = form.question
    if question is None:
        bot.forms.drop(who.chat_id)
        await submit(bot, who, form)
        return
    language = form.language
    label = shown_label(question, language)
    step = f"f:{form.token}:{form.at}"
    buttons: list[list[tuple[str, str]]] = []
    if question.kind == "select":
        buttons = [
            [(shown[:BUTTON_MAX_CHARS], f"{step}:{n}")]
            for n, shown in enumerate(question.option_labels)
        ]
        key = "ask_select"
    elif question.kind == "image":
        key = "ask_image"
    else:
        key = "ask_text"
    if not question.required:
        buttons.append([(text("btn_skip", language), f"{step}:-")])
    await bot.say(
        who.chat_id,
        key,
        buttons=buttons or None,
        telegram_id=who.id,
        label=label,
        limit=schemas.INPUT_MAX_CHARS,
    )


async def submit(bot: CustomerBot, who: TelegramUser, form: Form) -> None:
    status = await bot.say(who.chat_id, "working")

    def send(request: Request) -> None:
        customer = services.find_customer(request.db, who.id)
        if customer is None:  # the account went away while the form was open
            raise Refused("error")
        services.submit_template(
            request, customer, form.slug, dict(form.answers), status_message_id=status.message_id
        )

    await bot._submitting(who, status, send)


def _answer(bot: CustomerBot, who: TelegramUser, form: Form, at: int, value: str | None) -> bool:
    """Record ``value`` (None: skipped) as the answer of question ``at``, if the form is still
    the chat's and still asks it (an answer that took a while, a photo, may have been
    overtaken)."""
    if bot.forms.get(who.chat_id) is not form or form.at != at:
        return False
    question = form.questions[at]
    if value is None:
        form.answers.pop(question.name, None)
    else:
        form.answers[question.name] = value
    form.at += 1
    bot.forms.touch(form)
    return True


async def on_button(bot: CustomerBot, who: TelegramUser, arg: str) -> None:
    """``{token}:{question}:{option number or -}``: a select's option or Skip."""
    form = bot.forms.get(who.chat_id)
    question = None if form is None else form.question
    if form is None or question is None:
        raise Refused("form_gone")
    token, _, rest = arg.partition(":")
    at, _, choice = rest.partition(":")
    current = token == form.token and at == str(form.at)
    value: str | None
    if current and choice == "-" and not question.required:
        value = None
    elif current and question.kind == "select" and choice.isdigit():
        if int(choice) >= len(question.options):
            raise Refused("form_button_stale", label=shown_label(question, form.language))
        value = question.options[int(choice)]
    else:
        # A button of an earlier question, or of an earlier form.
        raise Refused("form_button_stale", label=shown_label(question, form.language))
    if _answer(bot, who, form, form.at, value):
        await ask(bot, who, form)


async def remind(bot: CustomerBot, who: TelegramUser) -> None:
    """After a forged button: the form, if one is open, still waits for its question."""
    form = bot.forms.get(who.chat_id)
    if form is not None and form.question is not None:
        label = shown_label(form.question, form.language)
        await bot.say(who.chat_id, "form_button_stale", label=label)


async def on_message(bot: CustomerBot, who: TelegramUser, message: telegram.Message) -> bool:
    """A message to a chat with an open form is its answer (False: no form is open)."""
    form = bot.forms.get(who.chat_id)
    if form is None or form.question is None:
        return False
    question, at, language = form.question, form.at, form.language
    try:
        if message.media_group_id:
            if form.album == message.media_group_id:
                return True  # the rest of an album already answered
            form.album = message.media_group_id
            raise Refused("form_one_photo", label=shown_label(question, language))
        if question.kind == "image" and (message.photo or message.document is not None):
            value = await _photo(bot, who, form, message)
        elif message.text:
            value = typed_answer(question, message.text, language)
        else:
            raise wrong_kind(question, language)
    except Refused as refusal:
        await bot.say(who.chat_id, refusal.key, **refusal.values)
        return True
    if _answer(bot, who, form, at, value):
        await ask(bot, who, form)
    return True


async def _photo(bot: CustomerBot, who: TelegramUser, form: Form, message: telegram.Message) -> str:
    """The upload id of the photo answering ``form``'s image question, through the bot's
    download and the web's upload checks; Refused naming the field when it does not do."""
    from nproxy_core.customerbot.bot import MAX_DOWNLOAD, image_file

    question = form.question
    assert question is not None
    label = shown_label(question, form.language)
    file = image_file(message)
    if file is None:
        raise Refused("form_want_photo", label=label)
    if (file.file_size or 0) > MAX_DOWNLOAD:
        raise Refused("form_photo_too_big", label=label)
    try:
        handle = await bot.bot.get_file(file.file_id)
        data = bytes(await handle.download_as_bytearray())
    except telegram.error.BadRequest:
        raise Refused("form_photo_too_big", label=label) from None
    try:
        return await bot.heavy_work(lambda request: services.template_photo(request, who.id, data))
    except APIError as error:
        reason = localize(catalog_localizer(form.language), services.refusal_text(error))
        raise Refused("form_photo_refused", label=label, reason=reason) from None
