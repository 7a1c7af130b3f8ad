"""What the customer bot does to accounts and generations, synchronously, on a request made
for the work (``nproxy_core.tasks.run_now``: its own session, transaction and after-commit
hooks). The bot process calls these from a thread; the web's account page calls the linking
ones. Nothing here knows about python-telegram-bot."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import re
import uuid
from typing import Any

import sqlalchemy as sa
from pyramid.request import Request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nproxy_core.accounts import services as accounts
from nproxy_core.accounts.models import User
from nproxy_core.accounts.schemas import check_new_password, normalize_email
from nproxy_core.customerbot.models import (
    TelegramCustomer,
    TelegramDelivery,
    TelegramLinkToken,
    TelegramLoginToken,
)
from nproxy_core.db import utcnow
from nproxy_core.errors import APIError, ValidationError
from nproxy_core.generation import services as generations
from nproxy_core.generation.models import (
    TERMINAL,
    Conversation,
    Generation,
    GenerationImage,
    GenerationStatus,
)
from nproxy_core.i18n import _
from nproxy_core.plugin_registry import IPlugins
from nproxy_core.prompt_templates.models import PromptTemplate, TemplateRun
from nproxy_core.prompt_templates.services import texts_of
from nproxy_core.uploads.services import create_upload

#: Deep links and web login links are good for this long (DESIGN 4.14).
LINK_LIFETIME = dt.timedelta(minutes=15)
#: A Telegram-only account's password hash: no password matches it.
NO_PASSWORD = "!telegram"  # noqa: S105 - not a hash of anything
#: The conversation a Telegram user's images go to (the web library shows them too).
CONVERSATION_TITLE = "Telegram"
#: Generations of one user in progress at once, as many as the web lets a user queue.
MAX_IN_PROGRESS = 8
#: Deep-link payloads: up to 64 characters of A-Za-z0-9_- (Telegram's own rule).
PAYLOAD = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclasses.dataclass(frozen=True)
class TelegramUser:
    """Who sent an update, as Telegram says (never trusted for more than the id)."""

    id: int
    chat_id: int
    username: str | None = None


class Refused(Exception):
    """An answer for the user instead of an action: ``key`` of :mod:`.texts` and its values."""

    def __init__(self, key: str, **values: Any) -> None:
        super().__init__(key)
        self.key = key
        self.values = values


# --- accounts ----------------------------------------------------------------------------------


def find_customer(db: Session, telegram_id: int) -> TelegramCustomer | None:
    return db.scalar(sa.select(TelegramCustomer).where(TelegramCustomer.telegram_id == telegram_id))


def customer_of(db: Session, user_id: int) -> TelegramCustomer | None:
    return db.get(TelegramCustomer, user_id)


def _username(who: TelegramUser) -> str | None:
    return (who.username or None) and who.username[:64]


def _new_customer(user_id: int, who: TelegramUser) -> TelegramCustomer:
    """The Telegram side of account ``user_id`` for this Telegram user, with the defaults."""
    return TelegramCustomer(
        user_id=user_id,
        telegram_id=who.id,
        chat_id=who.chat_id,
        username=_username(who),
        language="en",
        batch_size=1,
    )


def _touch(customer: TelegramCustomer, who: TelegramUser) -> None:
    customer.chat_id = who.chat_id
    if who.username != customer.username:
        customer.username = _username(who)


def open_account(db: Session, who: TelegramUser) -> tuple[TelegramCustomer, bool]:
    """The account of this Telegram user, made (Telegram-only: no email, no password) the first
    time: returns (customer, created). Two first messages at once make one account."""
    customer = find_customer(db, who.id)
    if customer is not None:
        _touch(customer, who)
        return customer, False
    try:
        with db.begin_nested():
            user = User(email=None, password_hash=NO_PASSWORD)
            db.add(user)
            db.flush()
            customer = _new_customer(user.id, who)
            db.add(customer)
            db.flush()
    except IntegrityError:
        # Another update of the same person made it first.
        customer = find_customer(db, who.id)
        if customer is None:
            raise
        return customer, False
    return customer, True


def make_link_token(db: Session, user: User) -> str:
    """A single-use code for ``https://t.me/{bot}?start=link_{code}`` (15 minutes); an earlier
    unused one stops working."""
    db.execute(
        sa.update(TelegramLinkToken)
        .where(TelegramLinkToken.user_id == user.id, TelegramLinkToken.used_at.is_(None))
        .values(used_at=utcnow())
    )
    _row, token = accounts.issue_token(db, TelegramLinkToken, user, LINK_LIFETIME)
    return token


def link_account(db: Session, who: TelegramUser, token: str) -> User:
    """Link the web account whose code this is to this Telegram user. Refused (nothing
    changes) for a code unknown, used or expired, for a Telegram id that belongs to another
    account already, and for an account linked to another Telegram id."""
    row = accounts.claim_token(db, TelegramLinkToken, token)
    now = utcnow()
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise Refused("link_bad")
    user = row.user
    mine = customer_of(db, user.id)
    if mine is not None:
        if mine.telegram_id == who.id:
            row.used_at = now
            return user
        raise Refused("link_other_account")
    if find_customer(db, who.id) is not None:
        raise Refused("link_taken")
    row.used_at = now
    db.add(_new_customer(user.id, who))
    db.flush()
    return user


def unlink(db: Session, user: User) -> bool:
    """Unlink the account's Telegram id (the account page). A Telegram-only account cannot be
    unlinked: it would be left with no way to log in."""
    customer = customer_of(db, user.id)
    if customer is None:
        return False
    if user.email is None:
        raise ValidationError(
            _(
                "Add an email and password to this account before unlinking Telegram: without "
                "them nobody could log in to it."
            )
        )
    db.delete(customer)
    db.flush()
    return True


def add_credentials(db: Session, user: User, email: Any, password: Any) -> User:
    """Give a Telegram-only account an email and a password (the web account page, after a
    /web login link). Refused for an account that has an email already and for an address
    another account uses; nothing changes then."""
    if user.email is not None:
        raise ValidationError(_("This account already has an email address."))
    address = normalize_email(email)
    password = check_new_password(password)
    if accounts.find_user(db, address) is not None:
        raise accounts.EmailTaken()
    try:
        with db.begin_nested():
            user.email = address
            db.flush()
    except IntegrityError:
        raise accounts.EmailTaken() from None
    accounts.set_password(db, user, password)
    return user


def make_login_token(db: Session, user: User) -> str:
    _row, token = accounts.issue_token(db, TelegramLoginToken, user, LINK_LIFETIME)
    return token


def login_token_valid(db: Session, token: object) -> bool:
    """Whether a /web login link would log in now (nothing is claimed)."""
    if not isinstance(token, str) or not accounts._TOKEN_SHAPE.fullmatch(token):
        return False
    row = db.scalar(
        sa.select(TelegramLoginToken).where(
            TelegramLoginToken.token_hash == hashlib.sha256(token.encode()).hexdigest()
        )
    )
    return row is not None and row.used_at is None and row.expires_at > utcnow()


def claim_login_token(db: Session, token: object) -> User | None:
    """The account a /web login link opens, once; None for a bad, used or expired link."""
    row = accounts.claim_token(db, TelegramLoginToken, token)
    now = utcnow()
    if row is None or row.used_at is not None or row.expires_at <= now:
        return None
    row.used_at = now
    if row.user.is_blocked:
        return None
    return row.user


# --- signed button data ------------------------------------------------------------------------


def _mac(secret: str, telegram_id: int, data: str) -> str:
    mac = hmac.new(secret.encode(), f"{telegram_id}|{data}".encode(), hashlib.sha256)
    return mac.hexdigest()[:16]


def sign(secret: str, telegram_id: int, data: str) -> str:
    """``data`` with a short HMAC binding it to the Telegram user it was sent to: a forged
    button, or one of another user's message, fails :func:`verify`. At most 64 bytes."""
    signed = f"{data}|{_mac(secret, telegram_id, data)}"
    if len(signed.encode()) > 64:
        raise ValueError(f"button data too long: {data[:20]!r}")
    return signed


def verify(secret: str, telegram_id: int, signed: str) -> str | None:
    """The data of a button pressed by ``telegram_id``, or None for a forged one or one sent
    to someone else."""
    data, _, mac = signed.rpartition("|")
    if not data or not hmac.compare_digest(_mac(secret, telegram_id, data), mac):
        return None
    return data


# --- generating --------------------------------------------------------------------------------


def _conversation(db: Session, user_id: int) -> Conversation:
    found = db.scalar(
        sa.select(Conversation)
        .where(Conversation.user_id == user_id, Conversation.title == CONVERSATION_TITLE)
        .order_by(Conversation.created_at)
        .limit(1)
    )
    return found or generations.create_conversation(db, user_id, CONVERSATION_TITLE)


def in_progress(db: Session, user_id: int) -> int:
    return db.scalar(
        sa.select(sa.func.count())
        .select_from(Generation)
        .where(Generation.user_id == user_id, Generation.status.not_in(TERMINAL))
    )


def settings_body(customer: TelegramCustomer) -> dict[str, Any]:
    body: dict[str, Any] = {"batch_size": customer.batch_size or 1}
    for name in ("provider", "model", "resolution"):
        value = getattr(customer, name)
        if value:
            body[name] = value
    return body


def _check_may_submit(db: Session, customer: TelegramCustomer) -> None:
    """Refused for a blocked account, and for one with too many generations in progress.

    The customer's row is locked until the submission commits: updates are handled side by
    side, and without the lock a burst of prompts would each count the same in-progress
    generations and all be queued."""
    if customer.user.is_blocked:
        raise Refused("blocked")
    db.execute(
        sa.select(TelegramCustomer.user_id)
        .where(TelegramCustomer.user_id == customer.user_id)
        .with_for_update()
    )
    busy = in_progress(db, customer.user_id)
    if busy >= MAX_IN_PROGRESS:
        raise Refused("busy", count=busy)


def _deliver_to(
    db: Session,
    customer: TelegramCustomer,
    generation: Generation,
    status_message_id: int | None = None,
) -> None:
    """The delivery row that sends ``generation``'s results to the customer's chat."""
    db.add(
        TelegramDelivery(
            generation_id=generation.id,
            user_id=customer.user_id,
            chat_id=customer.chat_id,
            status_message_id=status_message_id,
        )
    )
    db.flush()


def submit(
    request: Request,
    customer: TelegramCustomer,
    prompt: str,
    photos: list[bytes] | None = None,
    *,
    overrides: dict[str, Any] | None = None,
    status_message_id: int | None = None,
) -> Generation:
    """A generation from Telegram, with the same services and checks as the web's, and its
    delivery row in the same transaction. Raises :class:`Refused` or an APIError whose message
    is the web's own."""
    db: Session = request.db
    _check_may_submit(db, customer)
    body = settings_body(customer) | {"mode": "text_to_image", "prompt": prompt}
    if photos:
        uploads = store_photos(request, customer, photos)
        body |= {"mode": "image_to_image", "input_upload_ids": [str(u.id) for u in uploads]}
    body |= overrides or {}
    conversation = _conversation(db, customer.user_id)
    generation, _created = generations.submit_generation(
        request, customer.user_id, conversation.id, body
    )
    _deliver_to(db, customer, generation, status_message_id)
    return generation


def store_photos(request: Request, customer: TelegramCustomer, photos: list[bytes]) -> list[Any]:
    """``photos`` as the customer's uploads, through the web's checks and its per-user limit on
    uploads (``nproxy.limits.uploads``). Raises the web's APIError, nothing stored."""
    limiter = request.find_service(name="ratelimiter")
    for _photo in photos:
        limiter.hit(
            "uploads",
            f"user:{customer.user_id}",
            message="You have reached the limit on uploads for now. Please try again later.",
        )
    return [create_upload(request, customer.user_id, data) for data in photos]


def template_photo(request: Request, telegram_id: int, photo: bytes) -> str:
    """A photo given for a template's image field, stored as an upload when it is given (so
    a photo the checks refuse is refused at once, naming the field): its upload id."""
    customer = find_customer(request.db, telegram_id)
    if customer is None or customer.user.is_blocked:
        raise Refused("blocked")
    return str(store_photos(request, customer, [photo])[0].id)


def submit_template(
    request: Request,
    customer: TelegramCustomer,
    slug: str,
    inputs: dict[str, str],
    *,
    status_message_id: int | None = None,
) -> Generation:
    """A generation from a template filled in in the chat: the ``{template, inputs}``
    submission the web's chat and ``/v1/generate`` send, with the same checks, charges and
    refusals as a typed prompt, and its delivery row in the same transaction. The template
    decides the model and size; the customer's batch is kept as far as that model allows."""
    db: Session = request.db
    _check_may_submit(db, customer)
    providers = request.find_service(IPlugins).providers
    body: dict[str, Any] = {
        "template": slug,
        "inputs": inputs,
        "batch_size": min(customer.batch_size or 1, _template_max_batch(db, slug, providers)),
    }
    conversation = _conversation(db, customer.user_id)
    generation, _created = generations.submit_generation(
        request, customer.user_id, conversation.id, body
    )
    _deliver_to(db, customer, generation, status_message_id)
    return generation


def _template_max_batch(db: Session, slug: str, providers: Any) -> int:
    """The largest batch of the model template ``slug`` makes with (1 when unknown: the
    submission then says what is wrong)."""
    template = db.scalar(sa.select(PromptTemplate).where(PromptTemplate.slug == slug))
    every = [caps for plugin in providers.values() for caps in plugin.capabilities()]
    if template is None or not every:
        return 1
    if template.model is None:
        return every[0].max_batch
    for caps in every:
        if template.model == caps.model or template.model in caps.aliases:
            return caps.max_batch
    return 1


def again(
    request: Request, customer: TelegramCustomer, generation_id: str, *, vary: bool = False
) -> Generation:
    """Regenerate (the same prompt and controls) or vary (the first image as the input)."""
    db: Session = request.db
    original = db.get(Generation, uuid.UUID(generation_id))
    if original is None or original.user_id != customer.user_id:
        raise Refused("button_not_yours")
    message = original.message
    body = generations.submission_body(message)
    if vary:
        first = _first_image(db, original)
        if first is None:
            raise Refused("button_bad")
        body = body | {"mode": "image_to_image", "input_image_ids": [str(first.id)]}
        body.pop("input_upload_ids", None)
        body["prompt"] = f"A variation of this image: {message.prompt}"[:4000]
    generation = _resubmit(request, customer, body)
    run = None if vary else db.get(TemplateRun, original.id)
    if run is not None:
        # A template's regeneration asks the model for its words again too (as the web's retry).
        db.add(
            TemplateRun(
                generation_id=generation.id,
                template_id=run.template_id,
                inputs=dict(run.inputs or {}),
                with_text=run.with_text,
            )
        )
    return generation


def larger(request: Request, customer: TelegramCustomer, image_id: str) -> Generation:
    """The image again at the model's next larger preset of the same shape (image-to-image)."""
    db: Session = request.db
    image = db.get(GenerationImage, uuid.UUID(image_id))
    if image is None or image.user_id != customer.user_id:
        raise Refused("button_not_yours")
    message = image.generation.message
    bigger = larger_preset(request, message.provider, message.model, message.resolution)
    if bigger is None:
        raise Refused("no_larger")
    body = {
        "mode": "image_to_image",
        "prompt": message.prompt,
        "resolution": bigger,
        "batch_size": 1,
        "provider": message.provider,
        "model": message.model,
        "input_image_ids": [str(image.id)],
    }
    return _resubmit(request, customer, body)


def _resubmit(request: Request, customer: TelegramCustomer, body: dict[str, Any]) -> Generation:
    db: Session = request.db
    _check_may_submit(db, customer)
    conversation = _conversation(db, customer.user_id)
    generation, _ = generations.submit_generation(request, customer.user_id, conversation.id, body)
    _deliver_to(db, customer, generation)
    return generation


def _first_image(db: Session, generation: Generation) -> GenerationImage | None:
    return db.scalar(
        sa.select(GenerationImage)
        .where(GenerationImage.generation_id == generation.id)
        .order_by(GenerationImage.n)
        .limit(1)
    )


def larger_preset(request: Request, provider: str, model: str, resolution: str) -> str | None:
    """The next larger preset of the model with the same aspect ratio, or None."""
    plugin = request.find_service(IPlugins).providers.get(provider)
    if plugin is None:
        return None
    for caps in plugin.capabilities():
        if caps.model != model:
            continue
        sizes = dict(caps.sizes)
        ratios = dict(caps.aspect_ratios)
        if resolution not in sizes:
            return None
        width, height = sizes[resolution]
        shape = ratios.get(resolution)
        options = [
            (w * h, name)
            for name, (w, h) in sizes.items()
            if w * h > width * height
            and (shape is None or ratios.get(name) == shape)
            and (shape is not None or w * height == h * width)
        ]
        return min(options)[1] if options else None
    return None


def refusal_text(error: APIError) -> str:
    """The web's own message for a refused submission (quota, plan, checks)."""
    return error.message


# --- deliveries --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Ready:
    """A finished generation to send: what the bot process needs, read in one go."""

    delivery_id: int
    chat_id: int
    telegram_id: int | None
    status_message_id: int | None
    generation_id: str
    status: GenerationStatus
    error_message: str | None
    images: tuple[tuple[str, str, str], ...]  # (image id, storage key, mime)
    larger: str | None
    attempts: int = 0
    #: The model's words beside the picture (a template that asks for them, the fursona).
    text: str | None = None


def ready_deliveries(request: Request, limit: int = 20) -> list[Ready]:
    """The oldest unsent delivery of each chat whose generation is done and whose next attempt
    is due: a chat's later result never overtakes an earlier one still running."""
    db: Session = request.db
    now = utcnow()
    first = (
        sa.select(sa.func.min(TelegramDelivery.id))
        .where(TelegramDelivery.sent_at.is_(None))
        .group_by(TelegramDelivery.chat_id)
    )
    rows = db.execute(
        sa.select(TelegramDelivery, Generation)
        .join(Generation, Generation.id == TelegramDelivery.generation_id)
        .where(
            TelegramDelivery.id.in_(first),
            TelegramDelivery.next_attempt_at <= now,
            Generation.status.in_(TERMINAL),
        )
        .order_by(TelegramDelivery.id)
        .limit(limit)
    ).all()
    ready = []
    for delivery, generation in rows:
        images = db.execute(
            sa.select(GenerationImage.id, GenerationImage.storage_key, GenerationImage.mime)
            .where(GenerationImage.generation_id == generation.id)
            .order_by(GenerationImage.n)
        ).all()
        message = generation.message
        customer = customer_of(db, delivery.user_id)
        ready.append(
            Ready(
                delivery_id=delivery.id,
                chat_id=delivery.chat_id,
                telegram_id=customer.telegram_id if customer else None,
                status_message_id=delivery.status_message_id,
                generation_id=str(generation.id),
                status=generation.status,
                error_message=generation.error_message,
                images=tuple((str(i), key, mime) for i, key, mime in images),
                larger=larger_preset(request, message.provider, message.model, message.resolution),
                attempts=delivery.attempts,
                text=texts_of(db, [generation.id]).get(generation.id),
            )
        )
    return ready


def mark_sent(db: Session, delivery_id: int) -> None:
    db.execute(
        sa.update(TelegramDelivery)
        .where(TelegramDelivery.id == delivery_id)
        .values(sent_at=utcnow(), last_error=None)
    )


def postpone(db: Session, delivery_id: int, seconds: float, error: str) -> None:
    """Try again later (a 429's retry_after, an outage): never dropped."""
    db.execute(
        sa.update(TelegramDelivery)
        .where(TelegramDelivery.id == delivery_id)
        .values(
            next_attempt_at=utcnow() + dt.timedelta(seconds=seconds),
            attempts=TelegramDelivery.attempts + 1,
            last_error=error[:255],
        )
    )


def set_status_message(db: Session, generation_id: str, message_id: int) -> None:
    db.execute(
        sa.update(TelegramDelivery)
        .where(TelegramDelivery.generation_id == uuid.UUID(generation_id))
        .values(status_message_id=message_id)
    )
