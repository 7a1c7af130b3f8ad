"""The generation JSON API (DESIGN 6): models, conversations, submissions and polling.

Every route needs a logged-in user and answers 404 for anything that is not theirs.
"""

from __future__ import annotations

import time
from typing import Any

from pyramid.request import Request
from pyramid.response import Response

from nproxy_core.accounts.security import user_view
from nproxy_core.db import hand_back_connection, parse_uuid
from nproxy_core.generation import library, polls, presenters, schemas, services
from nproxy_core.generation.interfaces import ICompletionSignal
from nproxy_core.jsonbody import json_object
from nproxy_core.ratelimit import user_limit

#: Where a held poll keeps its start, so that a retried request (pyramid_retry reuses the
#: environ) does not wait longer than the client asked.
_POLL_STARTED = "nproxy.poll_started"


def _user_id(request: Request) -> int:
    return request.identity.id


@user_view("api.models", "GET", "json")
def api_models(request: Request) -> dict[str, Any]:
    return presenters.models_json(request)


@user_view("api.conversations", "POST", "json")
def api_create_conversation(request: Request) -> dict[str, Any]:
    user_limit(request, "conversations")
    title = schemas.conversation_title(json_object(request, empty_ok=True))
    conversation = services.create_conversation(request.db, _user_id(request), title)
    request.response.status = 201
    return presenters.conversation_summary_json(conversation)


@user_view("api.conversations", "GET", "json")
def api_list_conversations(request: Request) -> dict[str, Any]:
    conversations = services.list_conversations(request.db, _user_id(request))
    return {"conversations": [presenters.conversation_summary_json(c) for c in conversations]}


@user_view("api.conversation", "GET", "json")
def api_get_conversation(request: Request) -> dict[str, Any]:
    conversation = services.conversation_with_history(
        request.db, _user_id(request), request.matchdict["conversation_id"]
    )
    return presenters.conversation_json(request, conversation)


@user_view("api.conversation", "PATCH", "json")
def api_rename_conversation(request: Request) -> dict[str, Any]:
    title = schemas.rename(json_object(request))
    conversation = services.rename_conversation(
        request.db, _user_id(request), request.matchdict["conversation_id"], title
    )
    return presenters.conversation_summary_json(conversation)


@user_view("api.conversation", "DELETE")
def api_delete_conversation(request: Request) -> Response:
    services.delete_conversation(request, _user_id(request), request.matchdict["conversation_id"])
    return Response(status=204)


@user_view("api.generation.retry", "POST", "json")
def api_retry_generation(request: Request) -> dict[str, Any]:
    key = schemas.idempotency_key(request.headers.get("Idempotency-Key"))
    generation, _created = services.retry_generation(
        request, _user_id(request), request.matchdict["generation_id"], key
    )
    # 202 for a replayed Idempotency-Key too, as for a submit.
    return presenters.accepted_json(request, generation)


@user_view("api.images", "GET", "json")
def api_library(request: Request) -> dict[str, Any]:
    limit = schemas.library_limit(request.GET.get("limit"))
    images, cursor = library.library_page(
        request.db,
        _user_id(request),
        request.GET.get("before") or None,
        limit,
        q=library.search_text(request.GET.get("q")),
        favorite=library.favorite_filter(request.GET.get("favorite")),
    )
    return {
        "images": [presenters.library_image_json(request, image) for image in images],
        "next": cursor,
    }


@user_view("api.conversation.generations", "POST", "json")
def api_submit_generation(request: Request) -> dict[str, Any]:
    key = schemas.idempotency_key(request.headers.get("Idempotency-Key"))
    generation, _created = services.submit_generation(
        request,
        _user_id(request),
        request.matchdict["conversation_id"],
        json_object(request, empty_ok=True),
        key,
    )
    # 202 for a replayed Idempotency-Key too: the client sees the answer it missed.
    request.response.status = 202
    return {"id": str(generation.id), "status": str(generation.status)}


@user_view("api.generation", "GET", "json")
def api_get_generation(request: Request) -> dict[str, Any]:
    """One generation; with ``?wait=N`` held until it is terminal or N seconds pass."""
    wait = schemas.poll_wait(request.GET.get("wait"))
    started = request.environ.setdefault(_POLL_STARTED, time.monotonic())
    # A poll must never be cached: the state changes under it.
    request.response.headers["Cache-Control"] = "no-store"
    # The id alone: the poll never needs the ORM user (polls.py).
    user_id = request.authenticated_userid
    generation_id = request.matchdict["generation_id"]
    if wait <= 0:
        state = polls.poll_state(request, user_id, generation_id)
        return presenters.generation_json(request, state)

    deadline = started + wait
    key = parse_uuid(generation_id) or generation_id
    # Subscribed before the first read: an end that commits in between still wakes us.
    with request.find_service(ICompletionSignal).subscribe(key) as waiter:
        state = polls.poll_state(request, user_id, generation_id)
        while not state.is_terminal and not waiter.closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            # No connection is held while waiting: hundreds of polls wait on one pool.
            hand_back_connection(request)
            waiter.wait(remaining)
            state = services.generation_state(request.db, user_id, generation_id)
    return presenters.generation_json(request, state)
