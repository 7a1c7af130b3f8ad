"""Template rows (DESIGN 4.17): a prompt recipe with fields, and what each generation made from
one asked and got back (the model's words beside its picture)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from nproxy_core.db import Base, JSONType, utcnow


class PromptTemplate(Base):
    """A recipe people start from: a prompt with ``{placeholders}`` filled from its fields.

    Rows, not code: admins add, edit, reorder and hide them in ``/admin/templates``. The
    migration ships five; a template is never deleted (generations name it), only hidden.
    """

    __tablename__ = "prompt_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(sa.String(64), unique=True)
    title: Mapped[str] = mapped_column(sa.String(100))
    description: Mapped[str] = mapped_column(sa.String(500))
    prompt: Mapped[str] = mapped_column(sa.Text)
    #: ``[{name, label, kind: text|select|image, options: [...], required}]``, in form order.
    fields: Mapped[list[Any]] = mapped_column(JSONType)
    #: The model that makes it (None: the default model); the resolution preset likewise.
    model: Mapped[str | None] = mapped_column(sa.String(128))
    resolution: Mapped[str | None] = mapped_column(sa.String(64))
    #: Ask the model for a few words with the picture (the fursona's character description).
    with_text: Mapped[bool] = mapped_column(default=False)
    #: Title, description and the fields' labels and options in Russian and Uzbek, as the
    #: admin wrote them: ``{"ru": {"title", "description", "fields": {name: {"label",
    #: "options": {english: translated}}}}}``; what is missing shows in English.
    translations: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    active: Mapped[bool] = mapped_column(default=True)
    #: Gallery order, smallest first.
    position: Mapped[int] = mapped_column(default=0)
    #: The example image, made by the model through the admin ("Make example"); None: none yet.
    storage_key: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
    example_mime: Mapped[str | None] = mapped_column(sa.String(32))
    #: The admin's generation that will become the example once it has an image.
    example_generation_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("generations.id", ondelete="SET NULL")
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (sa.Index("ix_prompt_templates_active_position", "active", "position"),)

    def __repr__(self) -> str:
        return f"<PromptTemplate {self.slug}>"


class TemplateRun(Base):
    """A generation made from a template: which one, with what inputs, and the words the model
    answered beside its picture (kept with the generation, shown under the image)."""

    __tablename__ = "template_runs"

    generation_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("generations.id", ondelete="CASCADE"), primary_key=True
    )
    template_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("prompt_templates.id", ondelete="SET NULL"), index=True
    )
    #: The inputs as the person gave them (image fields as upload ids).
    inputs: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    with_text: Mapped[bool] = mapped_column(default=False)
    #: The model's text part; None when it gave none.
    text: Mapped[str | None] = mapped_column(sa.Text)
