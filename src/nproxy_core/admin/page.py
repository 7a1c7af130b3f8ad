"""What every admin page and action shares: the view decorators, the admin as actor, form
parsing that names the field at fault, flash messages, paging links and the page frame.

Views stay thin: a page reads through :mod:`.queries` and :mod:`.stats`; an action parses the
form, calls the feature's action service (the same one the Telegram bot and the CLI call) with
the admin as actor and surface ``web``, and answers 303 back to the page with a flash message.
A refused action dooms the request's transaction, so nothing it may have touched is kept.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.interfaces import IRoutesMapper
from pyramid.request import Request
from pyramid.view import view_config

from nproxy_core.accounts.security import Permission
from nproxy_core.admin import attention
from nproxy_core.admin.pagination import Page
from nproxy_core.audit import Actor, Surface
from nproxy_core.db import utcnow
from nproxy_core.errors import APIError, NotFound, ValidationError
from nproxy_core.keypool.models import key_name


def admin_page(route_name: str, template: str) -> Callable[[Any], Any]:
    """A GET page of the admin: admins only (see :class:`AdminArea`)."""
    return view_config(
        route_name=route_name,
        request_method="GET",
        renderer=f"admin/{template}",
        permission=Permission.ADMIN,
        admin_area=True,
    )


def admin_action(route_name: str, *, depth: int = 0) -> Callable[[Any], Any]:
    """A POST action of the admin: admins only, CSRF-checked (on by default).

    ``depth``: how many frames above the decorated function's caller the declaring module is
    (for :func:`row_action`, which builds views on behalf of another module).
    """
    return view_config(
        route_name=route_name,
        request_method="POST",
        permission=Permission.ADMIN,
        admin_area=True,
        _depth=depth,
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


#: Flash queues an action may answer with: ``info`` is news that is neither good nor bad (a key
#: check passed, which proves less than it seems).
FLASH_QUEUES = ("success", "info", "error")


def flashes(request: Request) -> list[tuple[str, str]]:
    return [
        (queue, message) for queue in FLASH_QUEUES for message in request.session.pop_flash(queue)
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
    """What every admin page shows: its section in the nav, flash messages, the badges of what
    needs attention (:mod:`.attention`)."""
    needs = attention.of_request(request)
    payments, notifications = needs.review
    return {
        "section": section,
        "flashes": flashes(request),
        "review_badge": payments + notifications,
        "badges": needs.badges,
        "extra_nav": extra_nav(request),
        "page_url": page_url(request),
        "now": utcnow(),
        "key_name": key_name,
        **extra,
    }


def list_error(request: Request, exc: ValidationError) -> str:
    request.response.status = 400
    return exc.message


def empty_page() -> Page[Any]:
    return Page([], None)


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


def row_action(
    route_name: str,
    id_name: str,
    back: Callable[[Request], str],
    change: Callable[..., Any],
    said: Callable[[Any], str],
) -> Callable[[Request], HTTPSeeOther]:
    """The admin action at ``route_name`` that is only :func:`on_row`, declared in one line:
    ``user_block = row_action("admin.user.block", "user_id", back, block_user, said)``."""

    def view(request: Request) -> HTTPSeeOther:
        return on_row(request, id_name, back(request), change, said)

    # The view belongs to the module that declares it, which is the one the scan registers.
    return admin_action(route_name, depth=1)(view)
