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
from nproxy_core.db import IDatabase, is_read_only, utcnow
from nproxy_core.developer_api.interfaces import IApiKeyHasher, IApiRateLimiter, IApiSettings
from nproxy_core.developer_api.keys import KEY_CHECK, KeyHasher, authenticate
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
    idempotency_mismatch,
    submit_generation,
)
from nproxy_core.i18n import _
from nproxy_core.plugin_registry import IPlugins
from nproxy_core.quota.services import bucket, current, user_bucket
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


@dataclasses.dataclass(frozen=True)
class Caller:
    key_id: uuid.UUID
    user_id: int
    key_name: str


_KEYS = ApiKey.__table__
_CYCLES = BillingCycle.__table__
_PLANS = Plan.__table__

#: :data:`KEY_CHECK` with the caller's current cycle (its plan's API rate limit and its quota,
#: for ``X-Quota-Bucket``): who is calling, in one round trip.
CALLER_CHECK = (
    KEY_CHECK.add_columns(
        _PLANS.c.api_rate_limit,
        _CYCLES.c.request_limit,
        _CYCLES.c.used,
        _CYCLES.c.reserved,
    )
    .outerjoin(
        _CYCLES,
        _CYCLES.c.id
        == current(sa.select(BillingCycle.id), _KEYS.c.user_id, sa.bindparam("b_now"))
        .correlate(_KEYS)
        .scalar_subquery(),
    )
    .outerjoin(_PLANS, _PLANS.c.id == _CYCLES.c.plan_id)
)


def identify_caller(request: Request) -> Caller:
    """The key of ``Authorization: Bearer``, counted against its rate limit.

    Every answer to the caller carries the rate-limit headers and the quota bucket, errors
    included. Raises InvalidApiKey (401) or RateLimited (429, with Retry-After).
    """
    hasher: KeyHasher = request.find_service(IApiKeyHasher)
    now = utcnow()
    key, rehash = authenticate(
        request.db,
        hasher,
        request.headers.get("Authorization"),
        statement=CALLER_CHECK,
        params={"b_now": now},
    )
    logs.bind(user_id=key.user_id)  # the request's log lines (its access line too) name the user
    rate = request.find_service(IApiRateLimiter).hit(key.id, key.api_rate_limit)
    caller = Caller(key.id, key.user_id, key.name)
    # A read-only request changes no quota: the bucket read with the key is the one to show.
    # Any other may (a submission holds units), so its answer shows the bucket after it.
    read_only = is_read_only(request)
    known = 0 if key.request_limit is None else bucket(_remaining(key), key.request_limit)

    def answer_headers(request: Request, response: Any) -> None:
        response.headers.update(rate.headers())
        if read_only:
            response.headers["X-Quota-Bucket"] = str(known)
            return
        try:
            response.headers["X-Quota-Bucket"] = str(quota_bucket(request, caller.user_id))
        except Exception:
            # A header must not turn an answer (perhaps an accepted job) into an error.
            log.warning("X-Quota-Bucket left out: the database did not answer", exc_info=True)

    request.add_response_callback(answer_headers)
    if not rate.allowed:
        raise RateLimited(
            _(
                "Too many requests for this API key (limit ${limit} per window).",
                mapping={"limit": rate.limit},
            ),
            retry_after=rate.retry_after,
        )
    values: dict[str, Any] = {"secret_hash": rehash} if rehash else {}
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        values["last_used_at"] = now
    if values:
        _note_use(request, key.id, values)
    return caller


def _remaining(cycle: Any) -> int:
    return cycle.request_limit - cycle.used - cycle.reserved


def _note_use(request: Request, key_id: uuid.UUID, values: dict[str, Any]) -> None:
    """Write ``values`` to the key (its last use, a new hash): in the request's transaction, or
    for a read-only request, which has none, in a short one of its own."""
    statement = (
        sa.update(ApiKey)
        .where(ApiKey.id == key_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if is_read_only(request):
        with request.find_service(IDatabase).session_factory.begin() as db:
            db.execute(statement)
    else:
        # On the entity, not its table: the request's transaction then knows it wrote.
        request.db.execute(statement)


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
            _(
                "This API key already has ${count} unfinished generations; wait for one to finish.",
                mapping={"count": settings.max_concurrent_jobs},
            ),
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
        raise idempotency_mismatch()
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
