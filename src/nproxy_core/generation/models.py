"""Generation rows: conversations, their messages (a user turn with its controls), the
generation job each message starts, and the images a job made."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from nproxy_core.db import Base, JSONType, str_enum, utcnow
from nproxy_core.plugins import Mode


class GenerationStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    #: Some images of the batch were made, some failed: terminal, like the two others.
    PARTIAL = "partial"
    FAILED = "failed"


#: States a job never leaves.
TERMINAL = (GenerationStatus.SUCCEEDED, GenerationStatus.PARTIAL, GenerationStatus.FAILED)


class Conversation(Base):
    """A chat thread of one user: a list of prompts (messages) and their results."""

    __tablename__ = "conversations"

    # Random ids: they appear in URLs and must not be guessable or countable.
    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str | None] = mapped_column(sa.String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation", order_by="Message.created_at", passive_deletes=True
    )

    __table_args__ = (sa.Index("ix_conversations_user_id_updated_at", "user_id", "updated_at"),)

    def __repr__(self) -> str:
        return f"<Conversation {self.id} user={self.user_id}>"


class Message(Base):
    """One user turn: the prompt and every control as it was submitted."""

    __tablename__ = "messages"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    mode: Mapped[Mode] = mapped_column(str_enum(Mode, "generation_mode"))
    prompt: Mapped[str] = mapped_column(sa.Text)
    resolution: Mapped[str] = mapped_column(sa.String(64))
    batch_size: Mapped[int]
    strength: Mapped[float | None] = mapped_column(sa.Float)
    #: Upload ids (strings), in the order the user gave them.
    input_upload_ids: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    provider: Mapped[str] = mapped_column(sa.String(64))
    model: Mapped[str] = mapped_column(sa.String(128))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    conversation: Mapped[Conversation] = relationship(back_populates="messages")

    __table_args__ = (
        # The library's search by any part of a prompt (PostgreSQL's trigram index serves
        # ILIKE '%words%'; the migration makes it on PostgreSQL only).
        sa.Index(
            "ix_messages_prompt_trgm",
            "prompt",
            postgresql_using="gin",
            postgresql_ops={"prompt": "gin_trgm_ops"},
        ),
    )
    generations: Mapped[list[Generation]] = relationship(
        back_populates="message", order_by="Generation.created_at", passive_deletes=True
    )


class Generation(Base):
    """A job making a message's batch of images: its state, lease, timings and error."""

    __tablename__ = "generations"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    message_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(sa.String(64))
    status: Mapped[GenerationStatus] = mapped_column(
        str_enum(GenerationStatus, "generation_status"), default=GenerationStatus.QUEUED
    )
    quota_hold_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("quota_holds.id", ondelete="SET NULL")
    )
    #: The claim token of the run that holds the job; a finish is accepted only from it.
    lease_owner: Mapped[str | None] = mapped_column(sa.String(96))
    lease_expires_at: Mapped[dt.datetime | None]
    #: The worker process running the job (``worker_processes.id``): while that process is
    #: heard from, no other run takes the job; a run outside a worker has none, and its lease
    #: (``lease_expires_at``, renewed while it works) says the same.
    worker_id: Mapped[str | None] = mapped_column(sa.String(32))
    #: How many runs claimed the job (a run after a worker died counts again).
    attempts: Mapped[int] = mapped_column(default=0)
    #: The client's ``Idempotency-Key``: a retried submit finds this job instead of a new one.
    idempotency_key: Mapped[str | None] = mapped_column(sa.String(128))
    #: SHA-256 of what the key was first used for (conversation and body): the same key sent
    #: with anything else is refused rather than answered with this job.
    idempotency_fingerprint: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: When the job was last sent to the queue; the sweeper re-sends jobs left too long.
    enqueued_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    error_code: Mapped[str | None] = mapped_column(sa.String(32))
    error_message: Mapped[str | None] = mapped_column(sa.String(500))

    message: Mapped[Message] = relationship(back_populates="generations")
    images: Mapped[list[GenerationImage]] = relationship(
        back_populates="generation", order_by="GenerationImage.n", passive_deletes=True
    )

    __table_args__ = (
        sa.UniqueConstraint("user_id", "idempotency_key", name="uq_generations_idempotency"),
        # What the sweeper looks for: queued jobs by age, running jobs by lease.
        sa.Index("ix_generations_status_enqueued_at", "status", "enqueued_at"),
        sa.Index("ix_generations_status_lease_expires_at", "status", "lease_expires_at"),
        # The admin's job list: newest first, alone or filtered by status, user or provider,
        # paginated by (created_at, id); and failures by the time they finished.
        sa.Index("ix_generations_created_at_id", "created_at", "id"),
        sa.Index("ix_generations_status_created_at_id", "status", "created_at", "id"),
        sa.Index("ix_generations_user_id_created_at_id", "user_id", "created_at", "id"),
        sa.Index("ix_generations_provider_created_at_id", "provider", "created_at", "id"),
        sa.Index("ix_generations_finished_at", "finished_at"),
    )

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    def __repr__(self) -> str:
        return f"<Generation {self.id} {self.status}>"


class GenerationImage(Base):
    """One image a generation made; served at ``/media/{id}`` to its owner."""

    __tablename__ = "generation_images"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    generation_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("generations.id", ondelete="CASCADE")
    )
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    #: Position in the batch, from 0. Unique per generation: a re-run can never add twice.
    n: Mapped[int]
    storage_key: Mapped[str] = mapped_column(sa.String(255), unique=True)
    mime: Mapped[str] = mapped_column(sa.String(32))
    width: Mapped[int]
    height: Mapped[int]
    size_bytes: Mapped[int]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: The provider and model that made this image (a fallback may make it with another than
    #: the generation asked for); None for images made before they were recorded.
    provider: Mapped[str | None] = mapped_column(sa.String(64))
    model: Mapped[str | None] = mapped_column(sa.String(128))
    #: What the provider wants back when the image is used as an input again
    #: (``GeneratedImage.continuation``, e.g. Gemini's thought signature).
    continuation: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    #: The WebP thumbnail (at most 384 px a side) made when the image was stored; None for an
    #: image stored before thumbnails, made on its first request (nproxy_core.images).
    thumb_key: Mapped[str | None] = mapped_column(sa.String(255))
    #: Marked by its owner as a favourite (the library's filter).
    favorite: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    #: The random token of its public page ``/s/{token}``; None when not shared (or revoked).
    share_token: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    #: Whether the public page shows the prompt (the owner's choice; hidden by default).
    share_show_prompt: Mapped[bool] = mapped_column(default=False, server_default=sa.false())

    generation: Mapped[Generation] = relationship(back_populates="images")

    __table_args__ = (
        sa.UniqueConstraint("generation_id", "n", name="uq_generation_images_n"),
        # Images made per hour, for the admin's overview.
        sa.Index("ix_generation_images_created_at", "created_at"),
        # The user's library, newest first, paged by (created_at, id).
        sa.Index("ix_generation_images_user_id_created_at_id", "user_id", "created_at", "id"),
        # The library's favourites, newest first.
        sa.Index(
            "ix_generation_images_user_id_favorite_created_at_id",
            "user_id",
            "favorite",
            "created_at",
            "id",
        ),
    )
