"""Conversations and generation submissions.

Submission (DESIGN 4.4): check the controls against the provider's capabilities, write the
message and the generation, reserve the quota, all in the request's transaction; the job is
sent to the queue only after that transaction commits.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import uuid
from typing import Any

import sqlalchemy as sa
from pyramid.request import Request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from nproxy_core.db import parse_uuid, utcnow
from nproxy_core.errors import IdempotencyMismatch, NotFound, ValidationError
from nproxy_core.generation.models import (
    TERMINAL,
    Conversation,
    Generation,
    GenerationImage,
    GenerationStatus,
    Message,
)
from nproxy_core.generation.schemas import Submission, parse_submission
from nproxy_core.generation.tasks import run_generation
from nproxy_core.plugin_registry import IPlugins
from nproxy_core.quota import services as quota
from nproxy_core.uploads.models import Upload
from nproxy_core.uploads.services import load_user_uploads

#: Conversations listed at most; the newest come first.
LIST_LIMIT = 200
#: Characters of the first prompt that name an untitled conversation.
AUTO_TITLE_CHARS = 60


def _not_found() -> NotFound:
    # The same answer for a malformed id, an unknown one and another user's.
    return NotFound("Not found.")


# --- conversations -----------------------------------------------------------------------------


def create_conversation(db: Session, user_id: int, title: str | None) -> Conversation:
    conversation = Conversation(user_id=user_id, title=title)
    db.add(conversation)
    db.flush()
    return conversation


def owned_conversation(db: Session, user_id: int, conversation_id: Any) -> Conversation:
    """The user's conversation, or NotFound."""
    cid = parse_uuid(conversation_id)
    conversation = None if cid is None else db.get(Conversation, cid)
    if conversation is None or conversation.user_id != user_id:
        raise _not_found()
    return conversation


def list_conversations(db: Session, user_id: int) -> list[Conversation]:
    return list(
        db.scalars(
            sa.select(Conversation)
            .where(Conversation.user_id == user_id)
            .order_by(Conversation.updated_at.desc(), Conversation.created_at.desc())
            .limit(LIST_LIMIT)
        )
    )


def conversation_with_history(db: Session, user_id: int, conversation_id: Any) -> Conversation:
    conversation = owned_conversation(db, user_id, conversation_id)
    # Three queries in all, however long the thread.
    db.scalars(
        sa.select(Message)
        .where(Message.conversation_id == conversation.id)
        .options(selectinload(Message.generations).selectinload(Generation.images))
    ).all()
    return conversation


# --- submission --------------------------------------------------------------------------------


def _check_inputs(submission: Submission, uploads: list[Upload]) -> None:
    caps = submission.capabilities
    for upload in uploads:
        problem = None
        if upload.mime not in caps.input_mime_types:
            problem = f"is a {upload.mime} image, which {caps.model} does not accept"
        elif upload.size_bytes > caps.max_input_bytes:
            problem = f"is larger than {caps.model} accepts"
        elif max(upload.width, upload.height) > caps.max_input_side:
            problem = f"is larger than {caps.max_input_side} px a side"
        if problem:
            raise ValidationError(
                f"The input image {upload.id} {problem}.", fields={"input_upload_ids": "invalid"}
            )


def request_fingerprint(conversation_id: uuid.UUID, body: dict[str, Any]) -> str:
    """What an ``Idempotency-Key`` was used for: the conversation and the body, canonically."""
    canonical = json.dumps(
        {"conversation": str(conversation_id), "body": body},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _replay(generation: Generation, conversation_id: uuid.UUID, fingerprint: str) -> Generation:
    """The generation a retried submit asks for, or 422 if the key was used for another one."""
    if generation.conversation_id != conversation_id or (
        # Jobs submitted before fingerprints were kept match on the conversation alone.
        generation.idempotency_fingerprint not in (None, fingerprint)
    ):
        raise IdempotencyMismatch(
            "This Idempotency-Key was already used for a different request. Use a new key "
            "for a new generation.",
            fields={"Idempotency-Key": "mismatch"},
        )
    return generation


def find_by_idempotency_key(db: Session, user_id: int, key: str) -> Generation | None:
    return db.scalar(
        sa.select(Generation).where(
            Generation.user_id == user_id, Generation.idempotency_key == key
        )
    )


def submit_generation(
    request: Request,
    user_id: int,
    conversation_id: Any,
    body: dict[str, Any],
    idempotency_key: str | None = None,
) -> tuple[Generation, bool]:
    """Accept a generation: returns (generation, created).

    ``created`` is False when ``idempotency_key`` names a generation the user already
    submitted with the same conversation and body; that one is returned unchanged. The same
    key with anything else is IdempotencyMismatch (422). Raises ValidationError, NotFound,
    NoActiveSubscription or QuotaExhausted with nothing written.
    """
    db: Session = request.db
    conversation = owned_conversation(db, user_id, conversation_id)
    fingerprint = None
    if idempotency_key is not None:
        fingerprint = request_fingerprint(conversation.id, body)
        existing = find_by_idempotency_key(db, user_id, idempotency_key)
        if existing is not None:
            return _replay(existing, conversation.id, fingerprint), False

    submission = parse_submission(body, request.find_service(IPlugins).providers)
    uploads = load_user_uploads(db, user_id, submission.input_upload_ids, lock=True)
    _check_inputs(submission, uploads)

    now = utcnow()
    for upload in uploads:
        # Used: the clean-up of uploads nobody used leaves it alone from now on.
        upload.used_at = upload.used_at or now
    message = Message(
        id=uuid.uuid4(),
        conversation_id=conversation.id,
        user_id=user_id,
        mode=submission.mode,
        prompt=submission.prompt,
        resolution=submission.resolution,
        batch_size=submission.batch_size,
        strength=submission.strength,
        input_upload_ids=[str(u.id) for u in uploads],
        provider=submission.provider,
        model=submission.model,
        created_at=now,
    )
    generation = Generation(
        id=uuid.uuid4(),
        message_id=message.id,
        conversation_id=conversation.id,
        user_id=user_id,
        provider=submission.provider,
        status=GenerationStatus.QUEUED,
        idempotency_key=idempotency_key,
        idempotency_fingerprint=fingerprint,
        created_at=now,
        enqueued_at=now,
        attempts=0,
    )
    # The rows first, in a savepoint: a concurrent submit with the same Idempotency-Key
    # waits here on the unique index until the first one commits, then finds it. Reserving
    # only after that means the loser never holds quota.
    try:
        with db.begin_nested():
            db.add_all([message, generation])
            db.flush()
    except IntegrityError:
        if idempotency_key is None:
            raise
        winner = find_by_idempotency_key(db, user_id, idempotency_key)
        if winner is None or fingerprint is None:
            raise
        return _replay(winner, conversation.id, fingerprint), False

    hold = quota.reserve(db, user_id, submission.batch_size, reference=str(generation.id), now=now)
    generation.quota_hold_id = hold.id
    conversation.updated_at = now
    if not conversation.title:
        conversation.title = _auto_title(submission.prompt)
    db.flush()
    request.enqueue(run_generation, str(generation.id))
    return generation, True


def _auto_title(prompt: str) -> str:
    words = " ".join(prompt.split())
    if len(words) <= AUTO_TITLE_CHARS:
        return words
    return words[: AUTO_TITLE_CHARS - 1].rstrip() + "…"


@dataclasses.dataclass(frozen=True)
class PolledImage:
    id: uuid.UUID
    storage_key: str
    mime: str


@dataclasses.dataclass(frozen=True)
class GenerationState:
    """What a poll answers: a generation's state and its images, read without the ORM."""

    id: uuid.UUID
    status: GenerationStatus
    prompt: str
    created_at: dt.datetime
    error_code: str | None
    error_message: str | None
    images: tuple[PolledImage, ...]

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL


def generation_state(db: Session, user_id: int, generation_id: Any) -> GenerationState:
    """The user's generation with its prompt and images in one round trip, or NotFound.

    This is what the chat and API clients poll: a Core query of the few columns they show,
    because loading ORM objects cost as much as everything else in a poll.
    """
    gid = parse_uuid(generation_id)
    if gid is None:
        raise _not_found()
    gen, msg, img = Generation.__table__, Message.__table__, GenerationImage.__table__
    rows = db.execute(
        sa.select(
            gen.c.status,
            gen.c.created_at,
            gen.c.error_code,
            gen.c.error_message,
            msg.c.prompt,
            img.c.id.label("image_id"),
            img.c.storage_key,
            img.c.mime,
        )
        .select_from(
            gen.join(msg, msg.c.id == gen.c.message_id).outerjoin(
                img, img.c.generation_id == gen.c.id
            )
        )
        .where(gen.c.id == gid, gen.c.user_id == user_id)
        .order_by(img.c.n)
    ).all()
    if not rows:
        raise _not_found()
    first = rows[0]
    return GenerationState(
        id=gid,
        status=GenerationStatus(first.status),
        prompt=first.prompt,
        created_at=first.created_at,
        error_code=first.error_code,
        error_message=first.error_message,
        images=tuple(
            PolledImage(row.image_id, row.storage_key, row.mime)
            for row in rows
            if row.image_id is not None
        ),
    )
