"""The developer API (DESIGN 4.10): ``/v1/*`` with Bearer keys, the JSON routes that manage keys
(``/api/v1/api-keys``) and the account page where a person makes them."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

from nproxy_core.accounts.security import user_view
from nproxy_core.db import IDatabase, utcnow
from nproxy_core.developer_api import presenters, schemas, services
from nproxy_core.developer_api.interfaces import IApiKeyHasher, IApiSettings
from nproxy_core.developer_api.keys import create_key, live_keys, revoke_key
from nproxy_core.errors import APIError, ValidationError
from nproxy_core.generation.interfaces import ICompletionSignal
from nproxy_core.generation.models import GenerationStatus
from nproxy_core.generation.presenters import models_json
from nproxy_core.generation.schemas import idempotency_key
from nproxy_core.i18n import _
from nproxy_core.jsonbody import json_object

log = logging.getLogger(__name__)

USAGE_MAX_DAYS = 90
CHART_DAYS = 30


# --- /v1: Bearer keys, no cookies, no CSRF ------------------------------------------------------


def _response_format(request: Request) -> str:
    value = request.GET.get("response_format", "url")
    if value not in schemas.RESPONSE_FORMATS:
        raise ValidationError(
            _(
                "response_format must be one of: ${formats}.",
                mapping={"formats": ", ".join(schemas.RESPONSE_FORMATS)},
            ),
            fields={"response_format": "invalid"},
        )
    return value


def _answer(
    request: Request, state: services.GenerationState, response_format: str
) -> dict[str, Any]:
    request.response.headers["Cache-Control"] = "no-store"
    if not state.is_terminal:
        request.response.status = 202
        request.response.headers["Location"] = request.route_url(
            "v1.generation", generation_id=str(state.id)
        )
    return presenters.generation_json(request, state, response_format)


def _wait_for_result(
    request: Request, caller: services.Caller, generation_id: uuid.UUID, waiter: Any, seconds: float
) -> services.GenerationState:
    """Read the job until it is terminal or ``seconds`` pass, woken by its completion signal;
    each read is one short query on a connection of its own (none is held while waiting)."""
    deadline = time.monotonic() + seconds
    sessions = request.find_service(IDatabase).read_only_session_factory

    def read() -> services.GenerationState:
        with sessions() as db:
            return services.generation_state(db, caller.user_id, generation_id)

    state = read()
    while not state.is_terminal and not waiter.closed:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        waiter.wait(remaining)
        state = read()
    return state


@view_config(route_name="v1.generate", request_method="POST", renderer="json", require_csrf=False)
def v1_generate(request: Request) -> dict[str, Any]:
    caller = services.identify_caller(request)
    settings = request.find_service(IApiSettings)
    wait = schemas.prefer_wait(request.headers.get("Prefer"), settings.max_wait_seconds)
    key = idempotency_key(request.headers.get("Idempotency-Key"))
    body = json_object(request)
    generation_id = services.submit(request, caller, body, key)
    response_format = str(body.get("response_format", "url"))
    state = commit_and_wait(request, caller, generation_id, wait, str(body.get("prompt", "")))
    return _answer(request, state, response_format)


def commit_and_wait(
    request: Request,
    caller: services.Caller,
    generation_id: uuid.UUID,
    wait: float,
    prompt: str,
) -> services.GenerationState:
    """Commit the request's submission (the job is queued on that commit) and wait up to
    ``wait`` seconds for it to finish, with no transaction open; its state then, never an
    error (it is accepted: a retry would submit again)."""
    with request.find_service(ICompletionSignal).subscribe(generation_id) as waiter:
        # Committed now rather than when the request ends: the job is sent to the queue on
        # this commit, and this request then waits for it with no transaction open.
        try:
            request.tm.commit()
        finally:
            request.tm.begin()  # pyramid_tm ends the request with a transaction of its own
        try:
            state = _wait_for_result(request, caller, generation_id, waiter, wait)
        except Exception:
            # Accepted and committed: never an error now (a retry would submit again).
            log.exception("generation %s: reading it after its submission failed", generation_id)
            state = services.GenerationState(
                id=generation_id,
                status=GenerationStatus.QUEUED,
                prompt=prompt,
                created_at=utcnow(),
                error_code=None,
                error_message=None,
                images=(),
            )
    return state


@view_config(route_name="v1.generation", request_method="GET", renderer="json")
def v1_generation(request: Request) -> dict[str, Any]:
    caller = services.identify_caller(request)
    response_format = _response_format(request)
    state = services.generation_state(
        request.db, caller.user_id, request.matchdict["generation_id"]
    )
    answer = _answer(request, state, response_format)
    request.response.status = 200  # a GET of the resource: its state is in the body
    return answer


@view_config(route_name="v1.models", request_method="GET", renderer="json")
def v1_models(request: Request) -> dict[str, Any]:
    """The models the key's user can use, with what one image costs in units at each preset:
    the cost of a request is ``n`` times that, known before it is sent (DESIGN 4.12)."""
    caller = services.identify_caller(request)
    return models_json(request, caller.user_id)


@view_config(route_name="v1.usage", request_method="GET", renderer="json")
def v1_usage(request: Request) -> dict[str, Any]:
    caller = services.identify_caller(request)
    raw = request.GET.get("days", "30")
    if not raw.isdigit() or not 1 <= int(raw) <= USAGE_MAX_DAYS:
        raise ValidationError(
            _(
                "days must be a whole number from 1 to ${most}.",
                mapping={"most": USAGE_MAX_DAYS},
            ),
            fields={"days": "invalid"},
        )
    return {
        "api_key": {"id": str(caller.key_id), "name": caller.key_name},
        "days": services.usage(request.db, caller.key_id, int(raw)),
    }


# --- /api/v1/api-keys: the logged-in user's keys (cookie session, CSRF) --------------------------


def _new_key(request: Request, name: Any) -> Any:
    return create_key(
        request.db,
        request.find_service(IApiKeyHasher),
        request.identity.id,
        name,
        max_keys=request.find_service(IApiSettings).max_keys,
    )


@user_view("api.api_keys", "GET", "json")
def api_list_keys(request: Request) -> dict[str, Any]:
    keys = live_keys(request.db, request.identity.id)
    return {"api_keys": [presenters.api_key_json(key) for key in keys]}


@user_view("api.api_keys", "POST", "json")
def api_create_key(request: Request) -> dict[str, Any]:
    new = _new_key(request, json_object(request).get("name"))
    request.response.status = 201
    request.response.headers["Cache-Control"] = "no-store"
    return {
        "id": str(new.key.id),
        "name": new.key.name,
        "prefix": new.key.prefix,
        "key": new.secret,
    }


@user_view("api.api_key", "DELETE")
def api_revoke_key(request: Request) -> Response:
    revoke_key(request.db, request.identity.id, request.matchdict["key_id"])
    return Response(status=204)


# --- /account/api-keys: the page ------------------------------------------------------------------


def _page(request: Request, **extra: Any) -> dict[str, Any]:
    user_id = request.identity.id
    keys = live_keys(request.db, user_id)
    charts = {str(key.id): services.usage(request.db, key.id, CHART_DAYS) for key in keys}
    peak = max(
        (day["images"] + day["failures"] for days in charts.values() for day in days), default=0
    )
    return {
        "keys": keys,
        "charts": charts,
        "chart_peak": max(peak, 1),
        "max_keys": request.find_service(IApiSettings).max_keys,
        "api_base": request.registry.settings["nproxy.public_url"],
        "new_key": None,
        "error": None,
        **extra,
    }


@user_view("account.api_keys", "GET", "developer_api/api_keys.html")
def api_keys_page(request: Request) -> dict[str, Any]:
    request.response.headers["Cache-Control"] = "no-store"
    return _page(request, revoked=request.GET.get("revoked") == "1")


@user_view("account.api_keys", "POST", "developer_api/api_keys.html")
def api_keys_create(request: Request) -> dict[str, Any]:
    # The secret is shown on this answer only: rendered, not redirected (a redirect would have
    # to carry it in the session cookie), and never cached.
    request.response.headers["Cache-Control"] = "no-store"
    try:
        new = _new_key(request, request.POST.get("name"))
    except APIError as exc:
        request.response.status = exc.status
        return _page(request, error=exc.message, name=request.POST.get("name", ""))
    return _page(request, new_key=new)


@user_view("account.api_key_revoke", "POST")
def api_keys_revoke(request: Request) -> HTTPSeeOther:
    revoke_key(request.db, request.identity.id, request.matchdict["key_id"])
    return HTTPSeeOther(request.route_path("account.api_keys", _query={"revoked": "1"}))
