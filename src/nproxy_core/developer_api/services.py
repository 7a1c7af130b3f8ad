"""The developer API's work: who is calling, submitting through the chat's own submission (same
quota holds, same rules), reading a generation for a client, and usage per key and day."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import uuid
from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from pyramid.request import Request
from sqlalchemy.orm import Session

from nproxy_core import logs
from nproxy_core.billing.models import BillingCycle, Plan
from nproxy_core.db import IDatabase, utcnow
from nproxy_core.developer_api.interfaces import IApiKeyHasher, IApiRateLimiter, IApiSettings
from nproxy_core.developer_api.keys import KeyHasher, authenticate
from nproxy_core.developer_api.models import ApiGeneration, ApiKey
from nproxy_core.developer_api.schemas import ApiRequest, parse_api_request
from nproxy_core.errors import APIError, RateLimited, ValidationError
from nproxy_core.generation.models import (
    TERMINAL,
    Conversation,
    Generation,
    GenerationImage,
    GenerationStatus,
    Message,
)
from nproxy_core.generation.services import (
    GenerationState,
    find_by_idempotency_key,
    generation_state,
    submit_generation,
)
from nproxy_core.plugin_registry import IPlugins
from nproxy_core.quota.services import current, user_bucket
from nproxy_core.uploads.services import create_upload

log = logging.getLogger(__name__)

#: ``last_used_at`` is written at most this often per key: not one write per request.
LAST_USED_RESOLUTION = dt.timedelta(seconds=60)
UNFINISHED = (GenerationStatus.QUEUED, GenerationStatus.RUNNING)
#: The chat's field names, as the API calls them in its errors.
API_FIELD_NAMES = {
    "batch_size": "n",
    "input_upload_ids": "input_images",
    "resolution": "size",
    "file": "input_images",
}


class IdempotencyMismatch(APIError):
    status = 422
    code = "idempotency_mismatch"


@dataclasses.dataclass(frozen=True)
class Caller:
    key_id: uuid.UUID
    user_id: int
    key_name: str


def identify_caller(request: Request) -> Caller:
    """The key of ``Authorization: Bearer``, counted against its rate limit.

    Every answer to the caller carries the rate-limit headers and the quota bucket, errors
    included. Raises InvalidApiKey (401) or RateLimited (429, with Retry-After).
    """
    hasher: KeyHasher = request.find_service(IApiKeyHasher)
    key = authenticate(request.db, hasher, request.headers.get("Authorization"))
    logs.bind(user_id=key.user_id)  # the request's log lines (its access line too) name the user
    rate = request.find_service(IApiRateLimiter).hit(
        key.id, plan_rate_limit(request.db, key.user_id)
    )
    caller = Caller(key.id, key.user_id, key.name)

    def answer_headers(request: Request, response: Any) -> None:
        response.headers.update(rate.headers())
        try:
            response.headers["X-Quota-Bucket"] = str(quota_bucket(request, caller.user_id))
        except Exception:
            # A header must not turn an answer (perhaps an accepted job) into an error.
            log.warning("X-Quota-Bucket left out: the database did not answer", exc_info=True)

    request.add_response_callback(answer_headers)
    if not rate.allowed:
        raise RateLimited(
            f"Too many requests for this API key (limit {rate.limit} per window).",
            retry_after=rate.retry_after,
        )
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        key.last_used_at = now
    return caller


def plan_rate_limit(db: Session, user_id: int) -> str | None:
    """The ``api_rate_limit`` of the plan of the user's current cycle (DESIGN 4.12), or None
    for the default (no cycle, or a plan without one)."""
    return db.scalar(
        current(
            sa.select(Plan.api_rate_limit).join(BillingCycle, BillingCycle.plan_id == Plan.id),
            user_id,
            utcnow(),
        )
    )


def quota_bucket(request: Request, user_id: int) -> int:
    # Read after the request's own transaction, so it shows what the request changed.
    with request.find_service(IDatabase).read_only_session_factory() as db:
        return user_bucket(db, user_id)


def _api_error(exc: APIError) -> APIError:
    """The chat's error with the API's field names."""
    exc.fields = {API_FIELD_NAMES.get(k, k): v for k, v in exc.fields.items()}
    return exc


def _key_conversation(db: Session, key: ApiKey) -> uuid.UUID:
    """The conversation the key's generations are filed under, made on first use."""
    if key.conversation_id is not None and db.get(Conversation, key.conversation_id):
        return key.conversation_id
    conversation = Conversation(user_id=key.user_id, title=f"API · {key.name}"[:200])
    db.add(conversation)
    db.flush()
    key.conversation_id = conversation.id
    return conversation.id


def submit(
    request: Request, caller: Caller, body: dict[str, Any], idempotency_key: str | None
) -> uuid.UUID:
    """Accept a generation for the caller's key; its id. Written in the request's
    transaction, sent to the queue once that commits (as the chat's submissions are)."""
    try:
        api = parse_api_request(body, request.find_service(IPlugins).providers)
    except ValidationError as exc:
        raise _api_error(exc) from None
    return submit_checked(request, caller, api, idempotency_key)


def submit_checked(
    request: Request, caller: Caller, api: ApiRequest, idempotency_key: str | None
) -> uuid.UUID:
    """:func:`submit` of a request already read (``/v1/generate``'s or the OpenAI-compatible
    routes'): the key's limits, idempotency, the input images as uploads, the submission."""
    db: Session = request.db
    # One submission per key at a time: the count of unfinished jobs below stays true.
    key = db.scalar(sa.select(ApiKey).where(ApiKey.id == caller.key_id).with_for_update())
    assert key is not None  # identified in this request
    if idempotency_key is not None:
        existing = find_by_idempotency_key(db, caller.user_id, idempotency_key)
        if existing is not None:
            return _replay(db, existing, api)
    settings = request.find_service(IApiSettings)
    unfinished = db.scalar(
        sa.select(sa.func.count())
        .select_from(ApiGeneration)
        .join(Generation, Generation.id == ApiGeneration.generation_id)
        .where(ApiGeneration.api_key_id == key.id, Generation.status.in_(UNFINISHED))
    )
    if unfinished >= settings.max_concurrent_jobs:
        raise RateLimited(
            f"This API key already has {settings.max_concurrent_jobs} unfinished generations; "
            "wait for one to finish.",
            retry_after=5,
        )
    conversation_id = _key_conversation(db, key)
    try:
        uploads = [create_upload(request, caller.user_id, data) for data in api.input_images]
        body = {**api.submission, "input_upload_ids": [str(u.id) for u in uploads]}
        if "template" in api.submission:
            # A template's images are its fields' values: each sent image becomes an upload.
            inputs = dict(api.submission.get("inputs") or {})
            for name, data in api.input_fields:
                inputs[name] = str(create_upload(request, caller.user_id, data).id)
            body = {**api.submission, "inputs": inputs}
        generation, created = submit_generation(
            request, caller.user_id, conversation_id, body, idempotency_key
        )
    except APIError as exc:
        raise _api_error(exc) from None
    if not created:  # the same Idempotency-Key, committed by a concurrent request
        return _replay(db, generation, api)
    db.add(
        ApiGeneration(generation_id=generation.id, api_key_id=key.id, request_hash=api.fingerprint)
    )
    db.flush()
    return generation.id


def _replay(db: Session, existing: Generation, api: ApiRequest) -> uuid.UUID:
    row = db.get(ApiGeneration, existing.id)
    if row is None or row.request_hash != api.fingerprint:
        raise IdempotencyMismatch(
            "This Idempotency-Key was used for a different request. "
            "Use a new key for a new request.",
            fields={"Idempotency-Key": "mismatch"},
        )
    return existing.id


def usage(db: Session, key_id: uuid.UUID, days: int, today: dt.date | None = None) -> list[dict]:
    """Images made and images failed per day (UTC) for the key's last ``days`` days, oldest
    first; never the plan's limit or the quota's counts."""
    today = today or utcnow().date()
    first_day = today - dt.timedelta(days=days - 1)
    since = dt.datetime.combine(first_day, dt.time(), tzinfo=dt.UTC)
    made = (
        sa.select(sa.func.count())
        .where(GenerationImage.generation_id == Generation.id)
        .correlate(Generation)
        .scalar_subquery()
    )
    rows = db.execute(
        sa.select(Generation.created_at, Generation.status, Message.batch_size, made.label("made"))
        .join(ApiGeneration, ApiGeneration.generation_id == Generation.id)
        .join(Message, Message.id == Generation.message_id)
        .where(ApiGeneration.api_key_id == key_id, Generation.created_at >= since)
    ).all()
    per_day: dict[dt.date, dict[str, int]] = defaultdict(lambda: {"images": 0, "failures": 0})
    for row in rows:
        day = per_day[row.created_at.astimezone(dt.UTC).date()]
        day["images"] += row.made
        if row.status in TERMINAL:
            day["failures"] += max(0, row.batch_size - row.made)
    dates = [first_day + dt.timedelta(days=n) for n in range(days)]
    return [{"date": day.isoformat(), **per_day[day]} for day in dates]


__all__ = [
    "Caller",
    "GenerationState",
    "generation_state",
    "identify_caller",
    "submit",
    "submit_checked",
    "usage",
]
