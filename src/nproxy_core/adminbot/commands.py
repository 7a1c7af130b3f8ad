"""What the admin bot answers: commands and buttons of paired admins (DESIGN 4.8).

Plain functions of a session, so each runs in one transaction (the bot runs them in a thread).
Every change goes through the admin services the web admin and the CLI call
(``keypool.services``, ``billing.grants``, ``billing.review``), with an :class:`Actor` of
surface ``telegram``: the service writes the one audit row, whatever the surface.

Button data is at most 64 bytes and comes back from Telegram unverified: it is parsed strictly
(``k:<action>:<id>``, ``p:<decision>:<id>``, ``g:<user id>:<latest cycle id>``) and the action
is checked again by the service as if typed. A grant's button names the user's latest cycle,
so pressing it twice (or after another admin's grant) grants nothing the second time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

import sqlalchemy as sa
from pyramid.registry import Registry
from sqlalchemy.orm import Session

from nproxy_core.accounts import actions as accounts
from nproxy_core.accounts.models import User
from nproxy_core.admin import queries
from nproxy_core.admin.stats import image_activity
from nproxy_core.alerts import IAlertNotifier
from nproxy_core.alerts.models import Alert, AlertState
from nproxy_core.audit import Actor, Surface
from nproxy_core.billing import grants, refunds, review
from nproxy_core.billing.interfaces import IPlan, IPlans
from nproxy_core.billing.models import BillingCycle, Payment
from nproxy_core.db import utcnow
from nproxy_core.errors import APIError, Conflict, ValidationError
from nproxy_core.health import probes
from nproxy_core.keypool import services as pool
from nproxy_core.keypool.interfaces import IKeyPoolRouter
from nproxy_core.keypool.models import KeyState, ProviderKey
from nproxy_core.plugin_registry import IPlugins
from nproxy_core.telegram.models import TelegramAdmin
from nproxy_core.templating import money
from nproxy_core.wiring import find_service

MENU = [
    ("status", "Key pool, queue, images and payments at a glance"),
    ("keys", "Keys with their state, and buttons"),
    ("restore", "Put a key back in service: /restore KEY_ID"),
    ("disable", "Take a key out of service: /disable KEY_ID"),
    ("test", "Test a key with the provider's free check: /test KEY_ID"),
    ("user", "One account: /user EMAIL"),
    ("grant", "A free cycle, after a confirm button: /grant EMAIL"),
    ("payments", "Payments awaiting review, with buttons; /payments refund ID"),
    ("help", "What this bot can do"),
]

HELP = """nproxy admin bot

/status — key pool by state, queue depth, images and failures in the last hour,
payments awaiting review, open alerts
/keys — every key with its state, with restore, disable and test buttons
/restore KEY_ID — put a key back in service
/disable KEY_ID — take a key out of service
/test KEY_ID — the provider's free check of a key (never restores it)
/user EMAIL — role, blocked, current cycle with exact numbers
/grant EMAIL — one free cycle of the plan, after you confirm
/payments — the review queue, with activate and dismiss buttons
/payments refund PAYMENT_ID — refund a paid payment (Telegram Stars), after you confirm
/help — this message

You also get an alert here when something needs an admin."""

MAX_ARGUMENT = 320
#: Keys and payments listed in one answer (each with a row of buttons).
LISTED = 20
#: The reason kept with a cycle granted from Telegram (the web admin asks for one).
GRANT_REASON = "granted from Telegram with /grant"


@dataclasses.dataclass(frozen=True)
class BotActor:
    """A paired admin acting through Telegram, as the audit log names them."""

    telegram_id: int
    name: str
    user_id: int | None

    @classmethod
    def of(cls, admin: TelegramAdmin) -> BotActor:
        who = f"@{admin.username}" if admin.username else str(admin.telegram_id)
        return cls(admin.telegram_id, f"telegram:{who}"[:320], admin.user_id)

    @property
    def actor(self) -> Actor:
        """The actor every admin service takes: surface ``telegram``, the linked account."""
        return Actor(self.name, Surface.TELEGRAM, self.user_id)


@dataclasses.dataclass(frozen=True)
class Answer:
    text: str
    buttons: list[list[tuple[str, str]]] | None = None
    #: The short notice shown on the button press (answerCallbackQuery).
    toast: str | None = None


Command = Callable[[Session, Registry, BotActor, list[str]], Answer]
Button = Callable[[Session, Registry, BotActor, list[str]], Answer]


def parse(text: str) -> tuple[str, list[str]]:
    """``("/restore@bot 12")`` → ``("restore", ["12"])``; text that is not a command → ("", [])."""
    words = text.strip().split()
    if not words or not words[0].startswith("/"):
        return "", []
    name = words[0][1:].split("@", 1)[0].lower()[:32]
    return name, [w[:MAX_ARGUMENT] for w in words[1:4]]


def run(db: Session, registry: Registry, actor: BotActor, name: str, args: list[str]) -> Answer:
    handler = COMMANDS.get(name)
    if handler is None:
        if not name:
            return Answer("Send /help to see what I can do.")
        return Answer(f"Unknown command /{name[:32]}. Send /help for the list.")
    try:
        return handler(db, registry, actor, args)
    except APIError as exc:
        return Answer(exc.message)


def press(db: Session, registry: Registry, actor: BotActor, data: str) -> Answer:
    parts = data.split(":")
    handler = BUTTONS.get(parts[0]) if len(parts) >= 2 else None
    # Every button ends with a row id; ids over 12 digits are no row's.
    if handler is None or not all(
        part.isascii() and part.isdigit() and len(part) <= 12 for part in parts[2:]
    ):
        return Answer("That button is no longer valid. Send /help.", toast="Not a valid button")
    try:
        answer = handler(db, registry, actor, parts[1:])
    except APIError as exc:
        return Answer(exc.message, toast="Refused")
    return answer if answer.toast else dataclasses.replace(answer, toast="Done")


def _stale() -> ValidationError:
    return ValidationError("That button is no longer valid. Send /help.")


def _number(text: str, usage: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        raise ValidationError(f"Usage: {usage}")
    return int(text)


# --- overview ----------------------------------------------------------------------------------


def _help(db: Session, registry: Registry, actor: BotActor, args: list[str]) -> Answer:
    return Answer(HELP)


def _status(db: Session, registry: Registry, actor: BotActor, args: list[str]) -> Answer:
    now = utcnow()
    lines = []
    pool_states = queries.key_pool_by_state(db)
    if not pool_states:
        lines.append("Keys: none yet")
    for provider, states in pool_states.items():
        counts = ", ".join(f"{state}: {count}" for state, count in states.items())
        lines.append(f"Keys ({provider}) — {counts}")
    depth = probes.queue_depth(registry)
    lines.append(
        f"Queue depth: {depth.total}"
        if depth.error is None
        else "Queue depth: unknown (the broker did not answer)"
    )
    hour = image_activity(db, now).hour
    failed = ", ".join(f"{name}: {count}" for name, count in hour.failed.items() if count)
    lines.append(f"Last hour: {hour.made} images, {hour.failed_total} failed ({failed or 'none'})")
    payments, notifications = queries.awaiting_review(db)
    lines.append(f"Payments awaiting review: {payments}")
    if notifications:
        lines.append(f"Notifications for no known payment: {notifications}")
    alerts = db.scalars(
        sa.select(Alert).where(Alert.state == AlertState.OPEN).order_by(Alert.last_seen.desc())
    ).all()
    lines.append(f"Open alerts: {len(alerts)}")
    lines += [f"• {a.kind}: {a.subject} (x{a.count})" for a in alerts[:10]]
    return Answer("\n".join(lines))


# --- keys --------------------------------------------------------------------------------------


def _key_line(key: ProviderKey, now: dt.datetime) -> str:
    state = str(key.state)
    if key.state == KeyState.COOLDOWN and key.cooldown_until and key.cooldown_until > now:
        state += f" until {key.cooldown_until:%H:%M} UTC"
    return f"{key.provider} {key.name} {key.secret_mask} — {state}"


def _key_buttons(key: ProviderKey) -> list[tuple[str, str]]:
    buttons = []
    if key.state != KeyState.ACTIVE:
        buttons.append((f"Restore #{key.id}", f"k:restore:{key.id}"))
    if key.state != KeyState.DISABLED:
        buttons.append((f"Disable #{key.id}", f"k:disable:{key.id}"))
    buttons.append((f"Test #{key.id}", f"k:test:{key.id}"))
    return buttons


def _keys(db: Session, registry: Registry, actor: BotActor, args: list[str]) -> Answer:
    keys = pool.list_keys(db)
    if not keys:
        return Answer("No provider keys yet.")
    now = utcnow()
    shown = keys[:LISTED]
    text = "\n".join(_key_line(key, now) for key in shown)
    if len(keys) > len(shown):
        text += f"\n… and {len(keys) - len(shown)} more (see /admin/keys)"
    return Answer(text, [_key_buttons(k) for k in shown])


def _restore(db: Session, registry: Registry, actor: BotActor, key_id: int) -> Answer:
    key = pool.restore_key(
        db, key_id, actor=actor.actor, alerts=find_service(registry, IAlertNotifier)
    )
    return Answer(f"Restored: {_key_line(key, utcnow())}")


def _disable(db: Session, registry: Registry, actor: BotActor, key_id: int) -> Answer:
    key = pool.disable_key(db, key_id, actor=actor.actor)
    return Answer(f"Disabled: {_key_line(key, utcnow())}")


def _test(db: Session, registry: Registry, actor: BotActor, key_id: int) -> Answer:
    router = find_service(registry, IKeyPoolRouter)
    _result, report = pool.test_key_report(db, router, key_id, generate=False, actor=actor.actor)
    return Answer(report.text)


KEY_ACTIONS: dict[str, Callable[[Session, Registry, BotActor, int], Answer]] = {
    "restore": _restore,
    "disable": _disable,
    "test": _test,
}


def _key_command(action: str) -> Command:
    def command(db: Session, registry: Registry, actor: BotActor, args: list[str]) -> Answer:
        usage = f"/{action} KEY_ID"
        if len(args) != 1:
            raise ValidationError(f"Usage: {usage}")
        return KEY_ACTIONS[action](db, registry, actor, _number(args[0], usage))

    return command


def _key_button(db: Session, registry: Registry, actor: BotActor, parts: list[str]) -> Answer:
    if len(parts) != 2 or parts[0] not in KEY_ACTIONS:
        raise _stale()
    return KEY_ACTIONS[parts[0]](db, registry, actor, int(parts[1]))


# --- users -------------------------------------------------------------------------------------


def _email(args: list[str], usage: str) -> str:
    if len(args) != 1:
        raise ValidationError(f"Usage: {usage}")
    return args[0]


def _cycle_line(cycle: BillingCycle | None) -> str:
    if cycle is None:
        return "Current cycle: none"
    left = cycle.request_limit - cycle.used - cycle.reserved
    free = f", granted: {cycle.grant_reason}" if cycle.grant_reason else ""
    return (
        f"Current cycle: {cycle.starts_at:%Y-%m-%d %H:%M} to {cycle.ends_at:%Y-%m-%d %H:%M} UTC"
        f" — limit {cycle.request_limit}, used {cycle.used}, reserved {cycle.reserved},"
        f" left {left}{free}"
    )


def _user(db: Session, registry: Registry, actor: BotActor, args: list[str]) -> Answer:
    user = accounts.user_by_email(db, _email(args, "/user EMAIL"))
    detail = queries.user_detail(db, user.id, utcnow())
    assert detail is not None  # the row was just read
    lines = [
        f"User #{user.id} {user.email}",
        f"Role: {user.role}; blocked: {'yes' if user.is_blocked else 'no'}",
        _cycle_line(detail.current_cycle),
    ]
    flagged = [p for p in detail.payments if p.awaiting_review]
    if flagged:
        lines.append(f"Payments awaiting review: {', '.join(f'#{p.id}' for p in flagged)}")
    return Answer("\n".join(lines))


def _latest_cycle_id(db: Session, user_id: int) -> int:
    latest = db.scalar(
        sa.select(sa.func.max(BillingCycle.id)).where(BillingCycle.user_id == user_id)
    )
    return int(latest or 0)


def _grant(db: Session, registry: Registry, actor: BotActor, args: list[str]) -> Answer:
    user = accounts.user_by_email(db, _email(args, "/grant EMAIL"))
    plan = find_service(registry, IPlans).default(db)
    detail = queries.user_detail(db, user.id, utcnow())
    current = _cycle_line(detail.current_cycle if detail else None)
    return Answer(
        f"Grant {user.email} one free cycle of {plan.name} ({plan.request_limit} units)?\n"
        f"{current}",
        [[(f"Grant to #{user.id}", f"g:{user.id}:{_latest_cycle_id(db, user.id)}")]],
    )


def _grant_button(db: Session, registry: Registry, actor: BotActor, parts: list[str]) -> Answer:
    if len(parts) != 2 or not (parts[0].isascii() and parts[0].isdigit()):
        raise _stale()
    user_id, seen = int(parts[0]), int(parts[1])
    # Locked, so two presses at once are decided one after the other.
    user = db.scalar(sa.select(User).where(User.id == user_id).with_for_update())
    if user is None:
        raise _stale()
    if _latest_cycle_id(db, user_id) != seen:
        raise Conflict(
            f"{user.email} got a cycle since this button was sent: nothing granted. "
            "Send /grant again if another one is meant."
        )
    cycle = grants.grant_cycle(
        db,
        find_service(registry, IPlans).default(db),
        user_id,
        reason=GRANT_REASON,
        actor=actor.actor,
    )
    return Answer(
        f"Granted {user.email} a free cycle from {cycle.starts_at:%Y-%m-%d %H:%M} to "
        f"{cycle.ends_at:%Y-%m-%d %H:%M} UTC ({cycle.request_limit} units)."
    )


# --- payments ----------------------------------------------------------------------------------


def _payment_line(payment: Payment) -> str:
    amount = money(payment.amount)
    return (
        f"#{payment.id} {payment.order_id} — user {payment.user_id}, {amount} "
        f"{payment.currency}, {payment.status}: {payment.review_reason or 'flagged'}"
    )


def _payments(db: Session, registry: Registry, actor: BotActor, args: list[str]) -> Answer:
    if args and args[0].lower() == "refund":
        return _refund_prompt(db, registry, args[1:])
    waiting = db.scalars(
        sa.select(Payment).where(Payment.awaiting_review).order_by(Payment.id).limit(LISTED + 1)
    ).all()
    if not waiting:
        return Answer("No payments await review.")
    shown = waiting[:LISTED]
    text = "Payments awaiting review:\n" + "\n".join(_payment_line(p) for p in shown)
    if len(waiting) > len(shown):
        text += "\n… and more (see /admin/payments?state=review)"
    buttons = [
        [
            (f"Activate #{p.id}", f"p:{review.Decision.ACTIVATE}:{p.id}"),
            (f"Dismiss #{p.id}", f"p:{review.Decision.DISMISS}:{p.id}"),
        ]
        for p in shown
    ]
    return Answer(text, buttons)


def _payment_button(db: Session, registry: Registry, actor: BotActor, parts: list[str]) -> Answer:
    if len(parts) != 2 or parts[0] not in set(review.Decision):
        raise _stale()
    decision = review.Decision(parts[0])
    payment = review.resolve_payment(
        db,
        find_service(registry, IPlan),
        int(parts[1]),
        decision=decision,
        note=f"{decision} from Telegram",
        actor=actor.actor,
        alerts=find_service(registry, IAlertNotifier),
    )
    done = (
        "activated: its cycle is granted"
        if decision == review.Decision.ACTIVATE
        else ("dismissed: no cycle")
    )
    return Answer(f"Payment #{payment.id} {done}.")


#: The note kept with a refund made from Telegram (the web admin asks for one).
REFUND_NOTE = "refunded from Telegram with /payments refund"


def _refund_prompt(db: Session, registry: Registry, args: list[str]) -> Answer:
    """``/payments refund ID``: what would be refunded, with a confirm button."""
    raw = args[0] if args else ""
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 12):
        raise ValidationError("Usage: /payments refund PAYMENT_ID")
    payment = db.get(Payment, int(raw))
    if payment is None:
        raise ValidationError(f"No payment #{raw}.")
    if str(payment.status) != "finished":
        raise Conflict(
            f"Payment #{payment.id} is {payment.status}: only a paid payment is refunded."
        )
    processor = find_service(registry, IPlugins).processor(payment.processor)
    if not refunds.can_refund(processor):
        raise ValidationError(
            f"{payment.processor} payments are refunded in the processor's own dashboard."
        )
    amount = money(payment.amount)
    return Answer(
        f"Refund payment #{payment.id} ({amount} {payment.currency} through "
        f"{payment.processor}, user {payment.user.email or payment.user_id})? What it gave "
        "ends now.",
        [[(f"Refund #{payment.id}", f"r:refund:{payment.id}")]],
    )


def _refund_button(db: Session, registry: Registry, actor: BotActor, parts: list[str]) -> Answer:
    if len(parts) != 2 or parts[0] != "refund":
        raise _stale()
    payment = refunds.refund_payment(
        db,
        find_service(registry, IPlan),
        find_service(registry, IPlugins),
        int(parts[1]),
        actor=actor.actor,
        note=REFUND_NOTE,
    )
    return Answer(f"Payment #{payment.id} refunded: what it gave has ended.")


COMMANDS: dict[str, Command] = {
    "start": _help,
    "help": _help,
    "status": _status,
    "keys": _keys,
    "restore": _key_command("restore"),
    "disable": _key_command("disable"),
    "test": _key_command("test"),
    "user": _user,
    "grant": _grant,
    "payments": _payments,
}

BUTTONS: dict[str, Button] = {
    "k": _key_button,
    "g": _grant_button,
    "p": _payment_button,
    "r": _refund_button,
}

__all__ = ["MENU", "Answer", "BotActor", "parse", "press", "run"]
