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
from collections.abc import Iterable
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
from nproxy_core.i18n import _
from nproxy_core.plugin_registry import IPlugins
from nproxy_core.pricing import IUnitPrices
from nproxy_core.prompt_templates import services as templates
from nproxy_core.prompt_templates.models import TemplateRun
from nproxy_core.quota import services as quota
from nproxy_core.storage import IStorage, delete_after_commit
from nproxy_core.uploads.models import Upload
from nproxy_core.uploads.services import create_upload, load_user_uploads

#: Conversations listed at most; the newest come first.
LIST_LIMIT = 200
#: Characters of the first prompt that name an untitled conversation.
AUTO_TITLE_CHARS = 60


def _not_found() -> NotFound:
    # The same answer for a malformed id, an unknown one and another user's.
    return NotFound(_("Not found."))


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


def rename_conversation(
    db: Session, user_id: int, conversation_id: Any, title: str
) -> Conversation:
    conversation = owned_conversation(db, user_id, conversation_id)
    conversation.title = title
    db.flush()
    return conversation


def delete_conversation(request: Request, user_id: int, conversation_id: Any) -> None:
    """Delete a conversation with its messages, generations, images and the uploads only it
    used; their stored objects are deleted once that commits (DESIGN 6), so their media 404.

    Unfinished jobs lose their quota hold here: their rows are gone, so they can never
    finish, and the user must not pay for them.
    """
    db: Session = request.db
    conversation = owned_conversation(db, user_id, conversation_id)
    cid = conversation.id
    generations = db.execute(
        sa.select(Generation.id, Generation.status, Generation.quota_hold_id).where(
            Generation.conversation_id == cid
        )
    ).all()
    for row in generations:
        if row.status not in TERMINAL and row.quota_hold_id is not None:
            quota.release(db, row.quota_hold_id)
    generation_ids = [row.id for row in generations]
    images = db.execute(
        sa.select(GenerationImage.id, GenerationImage.storage_key, GenerationImage.thumb_key).where(
            GenerationImage.generation_id.in_(generation_ids)
        )
    ).all()
    used_here = {
        upload_id
        for ids in db.scalars(
            sa.select(Message.input_upload_ids).where(Message.conversation_id == cid)
        )
        for upload_id in ids or ()
    }
    used_elsewhere = {
        upload_id
        for ids in db.scalars(
            sa.select(Message.input_upload_ids).where(
                Message.user_id == user_id, Message.conversation_id != cid
            )
        )
        for upload_id in ids or ()
    }
    upload_ids = [
        value for value in (parse_uuid(u) for u in used_here - used_elsewhere) if value is not None
    ]
    uploads = db.execute(
        sa.select(Upload.id, Upload.storage_key).where(
            Upload.id.in_(upload_ids), Upload.user_id == user_id
        )
    ).all()
    db.execute(sa.delete(GenerationImage).where(GenerationImage.generation_id.in_(generation_ids)))
    db.execute(sa.delete(Generation).where(Generation.conversation_id == cid))
    db.execute(sa.delete(Message).where(Message.conversation_id == cid))
    db.execute(sa.delete(Upload).where(Upload.id.in_([u.id for u in uploads])))
    db.execute(sa.delete(Conversation).where(Conversation.id == cid))
    db.expunge(conversation)
    thumbs = [i.thumb_key for i in images if i.thumb_key]
    delete_after_commit(
        request, [i.storage_key for i in images] + thumbs + [u.storage_key for u in uploads]
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
        values = {
            "id": upload.id,
            "mime": upload.mime,
            "model": caps.model,
            "side": caps.max_input_side,
        }
        problem = None
        if upload.mime not in caps.input_mime_types:
            problem = _(
                "The input image ${id} is a ${mime} image, which ${model} does not accept.",
                mapping=values,
            )
        elif upload.size_bytes > caps.max_input_bytes:
            problem = _("The input image ${id} is larger than ${model} accepts.", mapping=values)
        elif max(upload.width, upload.height) > caps.max_input_side:
            problem = _("The input image ${id} is larger than ${side} px a side.", mapping=values)
        if problem:
            raise ValidationError(problem, fields={"input_upload_ids": "invalid"})


def request_fingerprint(conversation_id: uuid.UUID, body: dict[str, Any]) -> str:
    """What an ``Idempotency-Key`` was used for: the conversation and the body, canonically."""
    canonical = json.dumps(
        {"conversation": str(conversation_id), "body": body},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def idempotency_mismatch() -> IdempotencyMismatch:
    """The refusal of an ``Idempotency-Key`` reused for a different request (422), the same
    from the chat and from the developer API."""
    return IdempotencyMismatch(
        _(
            "This Idempotency-Key was already used for a different request. Use a new key "
            "for a new request."
        ),
        fields={"Idempotency-Key": "mismatch"},
    )


def _replay(generation: Generation, conversation_id: uuid.UUID, fingerprint: str) -> Generation:
    """The generation a retried submit asks for, or 422 if the key was used for another one."""
    if generation.conversation_id != conversation_id or (
        # Jobs submitted before fingerprints were kept match on the conversation alone.
        generation.idempotency_fingerprint not in (None, fingerprint)
    ):
        raise idempotency_mismatch()
    return generation


def find_by_idempotency_key(db: Session, user_id: int, key: str) -> Generation | None:
    return db.scalar(
        sa.select(Generation).where(
            Generation.user_id == user_id, Generation.idempotency_key == key
        )
    )


def _idempotent(
    db: Session,
    user_id: int,
    key: str | None,
    conversation_id: uuid.UUID,
    request_body: dict[str, Any],
) -> tuple[str | None, Generation | None]:
    """What an ``Idempotency-Key`` names (its fingerprint, None without a key), and the
    generation it already made, or None for a new one; IdempotencyMismatch if it was used for
    another request."""
    if key is None:
        return None, None
    fingerprint = request_fingerprint(conversation_id, request_body)
    existing = find_by_idempotency_key(db, user_id, key)
    if existing is None:
        return fingerprint, None
    return fingerprint, _replay(existing, conversation_id, fingerprint)


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
    fingerprint, replayed = _idempotent(db, user_id, idempotency_key, conversation.id, body)
    if replayed is not None:
        return replayed, False

    providers = request.find_service(IPlugins).providers
    if "template" not in body:
        submission = parse_submission(body, providers)
        return _accept(request, user_id, conversation, submission, idempotency_key, fingerprint)
    # A template's prompt is built here, on the server; then it is an ordinary submission.
    built, template, filled = templates.template_submission(db, body, providers)
    for name, upload_id in filled.images:
        try:
            load_user_uploads(db, user_id, [upload_id])
        except NotFound:
            raise ValidationError(
                _(
                    "The image for '${name}' was not found; upload it again.",
                    mapping={"name": name},
                ),
                fields={f"inputs.{name}": "not_found"},
            ) from None
    submission = parse_submission(built, providers)
    generation, created = _accept(
        request, user_id, conversation, submission, idempotency_key, fingerprint
    )
    if created:
        templates.record_run(
            db, generation.id, template, filled.inputs, with_text=template.with_text
        )
    return generation, created


def submission_body(message: Message) -> dict[str, Any]:
    """What a message asked for (mode, prompt, size, model and its uploads) as a submission's
    body, to ask for it again."""
    body: dict[str, Any] = {
        "mode": str(message.mode),
        "prompt": message.prompt,
        "resolution": message.resolution,
        "batch_size": message.batch_size,
        "provider": message.provider,
        "model": message.model,
    }
    if message.input_upload_ids:
        body["input_upload_ids"] = list(message.input_upload_ids)
    return body


def retry_generation(
    request: Request, user_id: int, generation_id: Any, idempotency_key: str | None = None
) -> tuple[Generation, bool]:
    """A new generation with the prompt and controls of ``generation_id``, in its conversation:
    returns (generation, created), as :func:`submit_generation` does.

    The controls are checked again against what the provider offers now; the input images
    are the same uploads. An ``idempotency_key`` already used for a retry of the same
    generation returns that retry unchanged (a click resent after a lost answer costs one
    generation, not two); used for anything else, it is IdempotencyMismatch. Raises NotFound
    for anything not the user's, and the errors of a submission (nothing written).
    """
    db: Session = request.db
    gid = parse_uuid(generation_id)
    original = None if gid is None else db.get(Generation, gid)
    if original is None or original.user_id != user_id:
        raise _not_found()
    fingerprint, replayed = _idempotent(
        db, user_id, idempotency_key, original.conversation_id, {"retry_of": str(gid)}
    )
    if replayed is not None:
        return replayed, False
    message = original.message
    body = submission_body(message)
    if message.strength is not None:
        body["strength"] = message.strength
    submission = parse_submission(body, request.find_service(IPlugins).providers)
    conversation = owned_conversation(db, user_id, original.conversation_id)
    retried, created = _accept(
        request, user_id, conversation, submission, idempotency_key, fingerprint
    )
    run = db.get(TemplateRun, original.id)
    if created and run is not None:
        # A template's retry asks the model for its words again too.
        db.add(
            TemplateRun(
                generation_id=retried.id,
                template_id=run.template_id,
                inputs=dict(run.inputs or {}),
                with_text=run.with_text,
            )
        )
    return retried, created


def load_user_images(db: Session, user_id: int, ids: Iterable[str]) -> list[GenerationImage]:
    """The generated images ``ids`` of ``user_id``, in the order given, or NotFound for one
    that is malformed, unknown or someone else's (the three look the same)."""
    wanted = list(ids)
    parsed = [parse_uuid(value) for value in wanted]
    valid = {value for value in parsed if value is not None}
    found: dict[uuid.UUID, GenerationImage] = {}
    if valid:
        rows = db.scalars(
            sa.select(GenerationImage).where(
                GenerationImage.id.in_(valid), GenerationImage.user_id == user_id
            )
        )
        found = {row.id: row for row in rows}
    for raw, value in zip(wanted, parsed, strict=True):
        if value is None or value not in found:
            raise NotFound(
                _("The image '${raw}' was not found.", mapping={"raw": str(raw)[:64]}),
                fields={"input_image_ids": "not_found"},
            )
    return [found[value] for value in parsed if value is not None]


def _copy_as_uploads(request: Request, user_id: int, images: list[GenerationImage]) -> list[Upload]:
    """Each image as an upload of its own: the new turn keeps its inputs even if the
    conversation that made them is deleted later."""
    storage = request.find_service(IStorage)
    copies = []
    for image in images:
        copy = create_upload(request, user_id, storage.get(image.storage_key))
        # The model that made it gets back what it sent with it (e.g. a thought signature).
        copy.origin_provider, copy.origin_model = image.provider, image.model
        copy.continuation = image.continuation
        copies.append(copy)
    return copies


def _accept(
    request: Request,
    user_id: int,
    conversation: Conversation,
    submission: Submission,
    idempotency_key: str | None = None,
    fingerprint: str | None = None,
) -> tuple[Generation, bool]:
    """Write the message and the generation of a checked submission, reserve its quota and
    queue it after commit; see :func:`submit_generation`."""
    db: Session = request.db
    uploads = load_user_uploads(db, user_id, submission.input_upload_ids, lock=True)
    _check_inputs(submission, uploads)
    # Checked before anything is written or reserved: someone else's image id is a 404.
    images = load_user_images(db, user_id, submission.input_image_ids)

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

    # The default price here; an admin's override is read with the cycle by the ledger.
    unit_cost = request.find_service(IUnitPrices).default_units(
        submission.provider, submission.capabilities, submission.resolution
    )
    hold = quota.reserve(
        db,
        user_id,
        submission.batch_size,
        unit_cost=unit_cost,
        model=submission.model,
        priced=(submission.provider, submission.model, submission.resolution),
        reference=str(generation.id),
        now=now,
    )
    generation.quota_hold_id = hold.id
    if images:
        # Copied only once the quota is held: a refused batch stores nothing.
        copies = _copy_as_uploads(request, user_id, images)
        for copy in copies:
            copy.used_at = now
        message.input_upload_ids = [*message.input_upload_ids, *(str(c.id) for c in copies)]
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
    #: The model that made it (a fallback's when the model asked for was exhausted).
    model: str | None = None


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
    #: The model's words beside the picture (a template asked for them); None without.
    text: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL


_GEN, _MSG, _IMG = Generation.__table__, Message.__table__, GenerationImage.__table__
_RUNS = TemplateRun.__table__
#: A generation with its prompt and images, if it is the user's: built once, it is what polls
#: run most.
_STATE = (
    sa.select(
        _GEN.c.status,
        _GEN.c.created_at,
        _GEN.c.error_code,
        _GEN.c.error_message,
        _MSG.c.prompt,
        _RUNS.c.text,
        _IMG.c.id.label("image_id"),
        _IMG.c.storage_key,
        _IMG.c.mime,
        _IMG.c.model.label("image_model"),
    )
    .select_from(
        _GEN.join(_MSG, _MSG.c.id == _GEN.c.message_id)
        .outerjoin(_IMG, _IMG.c.generation_id == _GEN.c.id)
        .outerjoin(_RUNS, _RUNS.c.generation_id == _GEN.c.id)
    )
    .where(_GEN.c.id == sa.bindparam("b_id"), _GEN.c.user_id == sa.bindparam("b_user_id"))
    .order_by(_IMG.c.n)
)


def generation_state(db: Session, user_id: int, generation_id: Any) -> GenerationState:
    """The user's generation with its prompt and images in one round trip, or NotFound.

    This is what the chat and API clients poll: a Core query of the few columns they show,
    because loading ORM objects cost as much as everything else in a poll.
    """
    gid = parse_uuid(generation_id)
    if gid is None:
        raise _not_found()
    rows = db.execute(_STATE, {"b_id": gid, "b_user_id": user_id}).all()
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
        text=first.text,
        images=tuple(
            PolledImage(row.image_id, row.storage_key, row.mime, row.image_model)
            for row in rows
            if row.image_id is not None
        ),
    )
