"""The web admin (DESIGN 4.7): server-rendered pages for admins, and their actions.

Views stay thin: a page reads through :mod:`.queries` and :mod:`.stats`; an action parses the
form, calls the feature's action service (the same one the Telegram bot and the CLI call) with
the admin as actor and surface ``web``, and answers 303 back to the page with a flash message.
A refused action dooms the request's transaction, so nothing it may have touched is kept.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from typing import Any

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.interfaces import IRoutesMapper
from pyramid.request import Request
from pyramid.view import view_config

from nproxy_core.accounts import actions as accounts
from nproxy_core.accounts.models import Role
from nproxy_core.accounts.security import Permission
from nproxy_core.admin import charts, queries, stats
from nproxy_core.admin.pagination import Page
from nproxy_core.audit import Actor, Surface
from nproxy_core.billing import grants, review
from nproxy_core.billing.interfaces import IPlan
from nproxy_core.db import parse_uuid, utcnow
from nproxy_core.errors import APIError, NotFound, ValidationError
from nproxy_core.health import probes
from nproxy_core.health.heartbeat import interval_seconds
from nproxy_core.keypool import services as pool
from nproxy_core.keypool.interfaces import IKeyPoolRouter, ISecretBox
from nproxy_core.keypool.models import IN_SERVICE
from nproxy_core.plugin_registry import IPlugins
from nproxy_core.telegram import IAlertNotifier, pairing

#: Audit actions the filter suggests (any action can be typed).
KNOWN_ACTIONS = (
    "user.create",
    "user.block",
    "user.unblock",
    "user.role",
    "user.grant_cycle",
    "payment.resolve",
    "payment.review_reopened",
    "payment_notification.dismiss",
    "billing.payment_refunded",
    "billing.cycle_ended_by_refund",
    "key.add",
    "key.edit",
    "key.restore",
    "key.disable",
    "key.test",
    "proxy.add",
    "proxy.enable",
    "proxy.disable",
    "proxy.test",
    "telegram.pair",
    "telegram.revoke",
)

IMAGE_SERIES = (
    ("images", "images made", "s-success"),
    ("content_policy", "failed: content policy", "s-policy"),
    ("invalid_input", "failed: invalid input", "s-input"),
    ("provider_unavailable", "failed: provider unavailable", "s-unavailable"),
)
ATTEMPT_SERIES = (
    ("success", "success", "s-success"),
    ("user_caused", "user-caused", "s-policy"),
    ("retryable", "retryable", "s-retryable"),
    ("transport", "transport", "s-transport"),
    ("out_of_funds", "out of funds", "s-funds"),
    ("key_rejected", "key rejected", "s-unavailable"),
)


def admin_page(route_name: str, template: str) -> Callable[[Any], Any]:
    """A GET page of the admin: admins only (see :class:`AdminArea`)."""
    return view_config(
        route_name=route_name,
        request_method="GET",
        renderer=f"admin/{template}",
        permission=Permission.ADMIN,
        admin_area=True,
    )


def admin_action(route_name: str) -> Callable[[Any], Any]:
    """A POST action of the admin: admins only, CSRF-checked (on by default)."""
    return view_config(
        route_name=route_name, request_method="POST", permission=Permission.ADMIN, admin_area=True
    )


def actor(request: Request) -> Actor:
    return Actor.of_user(request.identity, Surface.WEB)


def act(request: Request, back: str, action: Callable[[], str | tuple[str, str]]) -> HTTPSeeOther:
    """Run ``action``; 303 to ``back`` either way, with a flash message.

    ``action`` returns its message (a success), or ``(queue, message)`` when it ran but found
    a problem to show (a key test that failed: recorded, yet not good news).
    """
    try:
        said = action()
    except APIError as exc:
        # Refused: whatever the action may have flushed is rolled back with the transaction.
        request.tm.doom()
        request.session.flash(exc.message, "error")
    else:
        queue, message = said if isinstance(said, tuple) else ("success", said)
        request.session.flash(message, queue)
    return HTTPSeeOther(back)


def int_id(request: Request, name: str) -> int:
    raw = request.matchdict[name]
    if not raw.isdigit() or len(raw) > 18:
        raise NotFound("Not found.")
    return int(raw)


def form(request: Request, name: str) -> str:
    value = request.POST.get(name, "")
    return value if isinstance(value, str) else ""


def optional_int(value: str, field: str) -> int | None:
    value = value.strip()
    if not value:
        return None
    if not value.isdigit() or len(value) > 18:
        raise ValidationError(f"{field} must be a number")
    return int(value)


def parse_moment(value: str, field: str) -> dt.datetime | None:
    """A date or date-time typed in a filter (``2026-01-31`` or ``2026-01-31T13:45``), UTC."""
    value = value.strip()
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(
            f"{field} must be a date like 2026-01-31 or 2026-01-31T13:45 (UTC)"
        ) from None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def flashes(request: Request) -> list[tuple[str, str]]:
    return [
        (queue, message)
        for queue in ("success", "error")
        for message in request.session.pop_flash(queue)
    ]


#: Sections other features add to the admin's navigation, when their route exists:
#: (section, label, route name). The Telegram bot's page is one.
EXTRA_SECTIONS = (("telegram", "Telegram", "admin.telegram"),)


def extra_nav(request: Request) -> list[tuple[str, str, str]]:
    mapper = request.registry.getUtility(IRoutesMapper)
    return [
        (section, label, request.route_path(route))
        for section, label, route in EXTRA_SECTIONS
        if mapper.get_route(route) is not None
    ]


def page_url(request: Request) -> Callable[[str | None], str]:
    """The URL of this list with its filters and another page cursor (None: the first page)."""

    def url(cursor: str | None) -> str:
        query = [(k, v) for k, v in request.GET.items() if k != "after"]
        if cursor is not None:
            query.append(("after", cursor))
        return request.current_route_path(_query=query)

    return url


def base(request: Request, section: str, **extra: Any) -> dict[str, Any]:
    """What every admin page shows: its section in the nav, flash messages, the queue badge."""
    payments, notifications = queries.awaiting_review(request.db)
    return {
        "section": section,
        "flashes": flashes(request),
        "review_badge": payments + notifications,
        "extra_nav": extra_nav(request),
        "page_url": page_url(request),
        "now": utcnow(),
        **extra,
    }


def list_error(request: Request, exc: ValidationError) -> str:
    request.response.status = 400
    return exc.message


def empty_page() -> Page[Any]:
    return Page([], None)


# --- overview and health -----------------------------------------------------------------------


@admin_page("admin.overview", "overview.html")
def overview(request: Request) -> dict[str, Any]:
    db, now = request.db, utcnow()
    images = stats.image_activity(db, now)
    attempts = stats.attempt_activity(db, now)
    labels = {key.id: key.label or f"key {key.id}" for key in pool.list_keys(db)}
    payments, notifications = queries.awaiting_review(db)
    workers = probes.worker_statuses(db, now)
    return base(
        request,
        "overview",
        pool=queries.key_pool_by_state(db),
        last_hour=images.hour,
        last_day=images.day,
        queue=probes.queue_depth(request.registry),
        workers=workers,
        workers_alive=sum(1 for w in workers if w.alive),
        heartbeat_seconds=interval_seconds(request.registry.settings),
        awaiting_payments=payments,
        awaiting_notifications=notifications,
        images_chart=charts.stacked_hours(
            "chart-images", "Images per hour, and failures by class", images.chart, IMAGE_SERIES
        ),
        attempts_chart=charts.stacked_hours(
            "chart-attempts", "Key attempts per hour, by outcome", attempts.chart, ATTEMPT_SERIES
        ),
        latency_chart=charts.latency_bars(
            "chart-latency",
            "Latency per key over the last 24 hours",
            [
                (labels.get(key_id, f"key {key_id}"), s.day.p50_ms, s.day.p95_ms)
                for key_id, s in sorted(attempts.keys.items())
                if s.day.attempts
            ],
        ),
    )


@admin_page("admin.health", "health.html")
def health(request: Request) -> dict[str, Any]:
    db, now = request.db, utcnow()
    queue = probes.queue_depth(request.registry)
    images = stats.image_activity(db, now)
    attempts = stats.attempt_activity(db, now)
    return base(
        request,
        "health",
        services=probes.check_services(request.registry, queue),
        queue=queue,
        workers=probes.worker_statuses(db, now),
        stale_after=int(probes.STALE_AFTER.total_seconds()),
        heartbeat_seconds=interval_seconds(request.registry.settings),
        outcomes_hour={name: attempts.hour[name] for name in stats.OUTCOMES},
        outcomes_day={name: attempts.day[name] for name in stats.OUTCOMES},
        images_hour=images.hour,
        images_day=images.day,
    )


# --- users -------------------------------------------------------------------------------------


@admin_page("admin.users", "users.html")
def users(request: Request) -> dict[str, Any]:
    q = request.params.get("q", "").strip()[:254]
    error = None
    try:
        page = queries.search_users(request.db, q, request.params.get("after"))
    except ValidationError as exc:
        page, error = empty_page(), list_error(request, exc)
    return base(request, "users", q=q, page=page, error=error)


@admin_page("admin.user", "user.html")
def user(request: Request) -> dict[str, Any]:
    now = utcnow()
    detail = queries.user_detail(request.db, int_id(request, "user_id"), now)
    if detail is None:
        raise NotFound("No such user.")
    return base(request, "users", detail=detail, roles=[str(r) for r in Role])


def _user_back(request: Request) -> str:
    return request.route_path("admin.user", user_id=request.matchdict["user_id"])


def on_row(
    request: Request,
    id_name: str,
    back: str,
    change: Callable[..., Any],
    said: Callable[[Any], str],
) -> HTTPSeeOther:
    """An action that only names its target: ``change(db, id, actor=...)``, then ``said``."""
    row_id = int_id(request, id_name)
    return act(request, back, lambda: said(change(request.db, row_id, actor=actor(request))))


@admin_action("admin.user.block")
def user_block(request: Request) -> HTTPSeeOther:
    return on_row(
        request,
        "user_id",
        _user_back(request),
        accounts.block_user,
        lambda u: f"Blocked {u.email}.",
    )


@admin_action("admin.user.unblock")
def user_unblock(request: Request) -> HTTPSeeOther:
    return on_row(
        request,
        "user_id",
        _user_back(request),
        accounts.unblock_user,
        lambda u: f"Unblocked {u.email}.",
    )


@admin_action("admin.user.role")
def user_role(request: Request) -> HTTPSeeOther:
    user_id = int_id(request, "user_id")

    def change() -> str:
        user = accounts.set_role(request.db, user_id, form(request, "role"), actor=actor(request))
        return f"{user.email} is now {user.role}."

    return act(request, _user_back(request), change)


@admin_action("admin.user.grant_cycle")
def user_grant_cycle(request: Request) -> HTTPSeeOther:
    user_id = int_id(request, "user_id")

    def grant() -> str:
        cycle = grants.grant_cycle(
            request.db,
            request.find_service(IPlan),
            user_id,
            reason=form(request, "reason"),
            actor=actor(request),
        )
        return (
            f"Granted a free cycle from {cycle.starts_at:%Y-%m-%d %H:%M} to "
            f"{cycle.ends_at:%Y-%m-%d %H:%M} UTC ({cycle.request_limit} requests)."
        )

    return act(request, _user_back(request), grant)


# --- payments ----------------------------------------------------------------------------------


@admin_page("admin.payments", "payments.html")
def payments(request: Request) -> dict[str, Any]:
    state = request.params.get("state", "all") or "all"
    user_ref = request.params.get("user", "").strip()[:254]
    error = None
    page: Page[Any] = empty_page()
    try:
        if state not in queries.PAYMENT_FILTERS:
            raise ValidationError(f"state must be one of {', '.join(queries.PAYMENT_FILTERS)}")
        user_id = None
        if user_ref:
            found = queries.find_user_ref(request.db, user_ref)
            if found is None:
                raise ValidationError(f"no user {user_ref!r}")
            user_id = found.id
        page = queries.list_payments(request.db, state, user_id, request.params.get("after"))
    except ValidationError as exc:
        error = list_error(request, exc)
    unmatched = queries.unmatched_notifications(request.db) if state == queries.REVIEW else []
    return base(
        request,
        "payments",
        state=state,
        states=queries.PAYMENT_FILTERS,
        user_ref=user_ref,
        page=page,
        unmatched=unmatched,
        error=error,
    )


@admin_page("admin.payment", "payment.html")
def payment(request: Request) -> dict[str, Any]:
    found = queries.payment_detail(request.db, int_id(request, "payment_id"))
    if found is None:
        raise NotFound("No such payment.")
    return base(request, "payments", payment=found)


@admin_action("admin.payment.resolve")
def payment_resolve(request: Request) -> HTTPSeeOther:
    payment_id = int_id(request, "payment_id")

    def resolve() -> str:
        done = review.resolve_payment(
            request.db,
            request.find_service(IPlan),
            payment_id,
            decision=form(request, "decision"),
            note=form(request, "note"),
            actor=actor(request),
            alerts=request.find_service(IAlertNotifier),
        )
        if done.cycle is not None and str(done.resolution) == "activated":
            return (
                f"Payment {done.id} activated: {done.user.email} has a cycle until "
                f"{done.cycle.ends_at:%Y-%m-%d %H:%M} UTC."
            )
        return f"Payment {done.id} dismissed; no cycle was granted."

    return act(request, request.route_path("admin.payment", payment_id=payment_id), resolve)


@admin_action("admin.notification.dismiss")
def notification_dismiss(request: Request) -> HTTPSeeOther:
    notification_id = int_id(request, "notification_id")

    def dismiss() -> str:
        review.dismiss_notification(
            request.db, notification_id, note=form(request, "note"), actor=actor(request)
        )
        return f"Notification {notification_id} dismissed."

    return act(request, request.route_path("admin.payments", _query={"state": "review"}), dismiss)


# --- generations -------------------------------------------------------------------------------


@admin_page("admin.generations", "generations.html")
def generations(request: Request) -> dict[str, Any]:
    params = request.params
    filters = {
        "status": params.get("status", "").strip(),
        "user": params.get("user", "").strip()[:254],
        "provider": params.get("provider", "").strip()[:64],
        "since": params.get("since", "").strip()[:40],
        "until": params.get("until", "").strip()[:40],
    }
    enabled = list(request.find_service(IPlugins).providers)
    providers = queries.providers_seen(request.db, enabled)
    error = None
    page: Page[Any] = empty_page()
    try:
        if filters["status"] and filters["status"] not in queries.GENERATION_STATUSES:
            raise ValidationError(f"status must be one of {', '.join(queries.GENERATION_STATUSES)}")
        if filters["provider"] and filters["provider"] not in providers:
            # A provider no longer enabled still has its old jobs.
            providers.append(filters["provider"])
        user_id = None
        if filters["user"]:
            found = queries.find_user_ref(request.db, filters["user"])
            if found is None:
                raise ValidationError(f"no user {filters['user']!r}")
            user_id = found.id
        page = queries.list_generations(
            request.db,
            status=filters["status"] or None,
            user_id=user_id,
            provider=filters["provider"] or None,
            since=parse_moment(filters["since"], "from"),
            until=parse_moment(filters["until"], "until"),
            cursor=params.get("after"),
        )
    except ValidationError as exc:
        error = list_error(request, exc)
    return base(
        request,
        "generations",
        filters=filters,
        statuses=queries.GENERATION_STATUSES,
        providers=providers,
        page=page,
        error=error,
    )


@admin_page("admin.generation", "generation.html")
def generation(request: Request) -> dict[str, Any]:
    generation_id = parse_uuid(request.matchdict["generation_id"])
    detail = None if generation_id is None else queries.generation_detail(request.db, generation_id)
    if detail is None:
        raise NotFound("No such generation.")
    return base(request, "generations", detail=detail)


# --- keys --------------------------------------------------------------------------------------


@admin_page("admin.keys", "keys.html")
def keys(request: Request) -> dict[str, Any]:
    now = utcnow()
    return base(
        request,
        "keys",
        rows=queries.keys_with_stats(request.db, now),
        providers=list(request.find_service(IPlugins).providers),
        proxies=pool.list_proxies(request.db),
    )


@admin_action("admin.keys")
def key_add(request: Request) -> HTTPSeeOther:
    def add() -> str:
        key = pool.add_key(
            request.db,
            request.find_service(ISecretBox),
            provider=form(request, "provider"),
            secret=form(request, "secret"),
            enabled_providers=list(request.find_service(IPlugins).providers),
            actor=actor(request),
            label=form(request, "label"),
            proxy_id=optional_int(form(request, "proxy_id"), "proxy"),
            project=form(request, "project"),
            billing_group=form(request, "billing_group"),
        )
        return f"Added {key.provider} key {key.id} ({key.secret_mask})."

    return act(request, request.route_path("admin.keys"), add)


@admin_page("admin.key", "key.html")
def key(request: Request) -> dict[str, Any]:
    key_id = int_id(request, "key_id")
    found = pool.get_key(request.db, key_id)
    now = utcnow()
    error = None
    try:
        attempts = queries.key_attempts(request.db, key_id, request.params.get("after"))
    except ValidationError as exc:
        attempts, error = empty_page(), list_error(request, exc)
    return base(
        request,
        "keys",
        key=found,
        stats=stats.attempt_activity(request.db, now, [key_id]).keys.get(key_id, stats.KeyStats()),
        attempts=attempts,
        proxies=pool.list_proxies(request.db),
        error=error,
    )


def _key_back(request: Request) -> str:
    return request.route_path("admin.key", key_id=request.matchdict["key_id"])


@admin_action("admin.key.edit")
def key_edit(request: Request) -> HTTPSeeOther:
    key_id = int_id(request, "key_id")

    def edit() -> str:
        pool.edit_key(
            request.db,
            key_id,
            actor=actor(request),
            label=form(request, "label"),
            proxy_id=optional_int(form(request, "proxy_id"), "proxy"),
            project=form(request, "project"),
            billing_group=form(request, "billing_group"),
        )
        return f"Key {key_id} saved."

    return act(request, _key_back(request), edit)


@admin_action("admin.key.restore")
def key_restore(request: Request) -> HTTPSeeOther:
    return on_row(
        request,
        "key_id",
        _key_back(request),
        functools.partial(pool.restore_key, alerts=request.find_service(IAlertNotifier)),
        lambda key: f"Key {key.id} is back in service.",
    )


@admin_action("admin.key.disable")
def key_disable(request: Request) -> HTTPSeeOther:
    return on_row(
        request,
        "key_id",
        _key_back(request),
        pool.disable_key,
        lambda k: f"Key {k.id} is disabled.",
    )


@admin_action("admin.key.test")
def key_test(request: Request) -> HTTPSeeOther:
    key_id = int_id(request, "key_id")
    generate = form(request, "generate") in ("1", "on", "true")

    def test() -> str | tuple[str, str]:
        result = pool.test_key(
            request.db,
            request.find_service(IKeyPoolRouter),
            key_id,
            generate=generate,
            actor=actor(request),
        )
        what = "one real image" if generate else "free check"
        status = f"HTTP {result.http_status}, " if result.http_status else ""
        message = (
            f"Key {key_id} test ({what}, {result.path}): {result.outcome} "
            f"({status}{result.latency_ms} ms). {result.detail}."
        )
        state = pool.get_key(request.db, key_id).state
        if str(result.outcome) == "success" and state not in IN_SERVICE:
            message += f" The key stays {str(state).replace('_', ' ')} until it is restored."
        # A failed test is shown as a problem, but it ran and is recorded: no rollback.
        return message if str(result.outcome) == "success" else ("error", message)

    return act(request, _key_back(request), test)


# --- proxies -----------------------------------------------------------------------------------


@admin_page("admin.proxies", "proxies.html")
def proxies(request: Request) -> dict[str, Any]:
    return base(
        request,
        "proxies",
        rows=queries.proxies_with_keys(request.db),
        display_proxy_url=pool.display_proxy_url,
    )


@admin_action("admin.proxies")
def proxy_add(request: Request) -> HTTPSeeOther:
    def add() -> str:
        proxy = pool.add_proxy(
            request.db, form(request, "url"), label=form(request, "label"), actor=actor(request)
        )
        return f"Added proxy {proxy.id} ({pool.display_proxy_url(proxy.url)})."

    return act(request, request.route_path("admin.proxies"), add)


@admin_action("admin.proxy.enable")
def proxy_enable(request: Request) -> HTTPSeeOther:
    back = request.route_path("admin.proxies")
    return on_row(
        request, "proxy_id", back, pool.enable_proxy, lambda p: f"Proxy {p.id} is enabled."
    )


@admin_action("admin.proxy.disable")
def proxy_disable(request: Request) -> HTTPSeeOther:
    back = request.route_path("admin.proxies")
    return on_row(
        request, "proxy_id", back, pool.disable_proxy, lambda p: f"Proxy {p.id} is disabled."
    )


@admin_action("admin.proxy.test")
def proxy_test(request: Request) -> HTTPSeeOther:
    proxy_id = int_id(request, "proxy_id")

    def test() -> str | tuple[str, str]:
        checks = pool.test_proxy(
            request.db, request.find_service(IKeyPoolRouter), proxy_id, actor=actor(request)
        )
        said = "; ".join(
            f"{c.provider}: {'ok' if c.ok else 'failed'} ({c.latency_ms} ms) {c.detail}"
            for c in checks
        )
        message = f"Proxy {proxy_id} test: {said or 'no provider is enabled'}."
        return message if any(c.ok for c in checks) else ("error", message)

    return act(request, request.route_path("admin.proxies"), test)


# --- audit -------------------------------------------------------------------------------------


# --- Telegram ----------------------------------------------------------------------------------


@admin_page("admin.telegram", "telegram.html")
def telegram(request: Request) -> dict[str, Any]:
    db, now = request.db, utcnow()
    return base(
        request,
        "telegram",
        admins=queries.telegram_admins(db),
        pending=pairing.pending(db, now),
        alerts=queries.recent_alerts(db),
        bot_configured=bool((request.registry.settings.get("telegram.bot_token") or "").strip()),
    )


@admin_action("admin.telegram.revoke")
def telegram_revoke(request: Request) -> HTTPSeeOther:
    telegram_id = int_id(request, "telegram_id")

    def revoke() -> str:
        admin = pairing.revoke(request.db, telegram_id, actor=actor(request))
        who = f"@{admin.username}" if admin.username else f"Telegram id {admin.telegram_id}"
        return f"{who} no longer has access to the admin bot."

    return act(request, request.route_path("admin.telegram"), revoke)


@admin_page("admin.audit", "audit.html")
def audit(request: Request) -> dict[str, Any]:
    params = request.params
    filters = {
        "actor": params.get("actor", "").strip()[:320],
        "action": params.get("action", "").strip()[:64],
        "target": params.get("target", "").strip()[:130],
    }
    error = None
    try:
        page = queries.list_audit(request.db, **filters, cursor=params.get("after"))
    except ValidationError as exc:
        page, error = empty_page(), list_error(request, exc)
    return base(request, "audit", filters=filters, page=page, actions=KNOWN_ACTIONS, error=error)


__all__ = ["act", "actor"]
