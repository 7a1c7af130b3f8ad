"""templates: prompt recipes with fields, and what each generation made from one got back

Revision ID: 0021_templates
Revises: 0020_image_tools
"""

import datetime as dt

import sqlalchemy as sa
from alembic import op

import nproxy_core.db

revision = "0021_templates"
down_revision = "0020_image_tools"
branch_labels = None
depends_on = None


def _field(name, label, kind, options=(), required=True):
    return {
        "name": name,
        "label": label,
        "kind": kind,
        "options": list(options),
        "required": required,
    }


#: The five shipped templates; admins edit them like any other (DESIGN 4.17).
SEEDS = [
    {
        "slug": "fursona",
        "title": "Fursona from your photo",
        "description": (
            "Your photo as an animal character: a portrait and a short character description."
        ),
        "prompt": (
            "Turn the person in {photo} into an anthropomorphic {species} character, a fursona, "
            "with {colours} fur. Keep their pose, expression, hairstyle and clothing. A "
            "full-colour character portrait on a clean background. Then describe this character "
            "in two or three sentences: a name, their personality and one quirk."
        ),
        "fields": [
            _field("photo", "Your photo", "image"),
            _field(
                "species",
                "Species",
                "select",
                ["Fox", "Wolf", "Cat", "Dog", "Dragon", "Rabbit", "Raccoon", "Otter"],
            ),
            _field("colours", "Colours", "text"),
        ],
        "resolution": "portrait",
        "with_text": True,
    },
    {
        "slug": "sticker",
        "title": "Sticker",
        "description": "A die-cut sticker of anything, with a white border.",
        "prompt": (
            "A die-cut sticker of {subject} in a {style} style: thick white border, bold "
            "outlines, bright colours, plain light background."
        ),
        "fields": [
            _field("subject", "Subject", "text"),
            _field("style", "Style", "select", ["Cartoon", "Kawaii", "Flat vector", "Pixel art"]),
        ],
        "resolution": "square",
    },
    {
        "slug": "product-shot",
        "title": "Product shot",
        "description": "A clean studio photograph of a product for a shop or an ad.",
        "prompt": (
            "A professional product photograph of {product} on {setting}: soft shadows, sharp "
            "focus, commercial lighting, no text."
        ),
        "fields": [
            _field("product", "Product", "text"),
            _field(
                "setting",
                "Setting",
                "select",
                ["a white studio background", "a marble counter", "a wooden table outdoors"],
            ),
        ],
        "resolution": "square",
    },
    {
        "slug": "avatar",
        "title": "Avatar",
        "description": "A profile picture from your photo, in the style you pick.",
        "prompt": (
            "A {style} avatar of the person in {photo}: head and shoulders, friendly "
            "expression, simple coloured background, recognisably them."
        ),
        "fields": [
            _field("photo", "Your photo", "image"),
            _field("style", "Style", "select", ["3D cartoon", "Anime", "Watercolour", "Pixel art"]),
        ],
        "resolution": "square",
    },
    {
        "slug": "poster",
        "title": "Poster",
        "description": "A poster with a headline, for an event or an idea.",
        "prompt": (
            'A {style} poster about {theme} with the headline "{headline}" in large, clear '
            "lettering, balanced layout."
        ),
        "fields": [
            _field("headline", "Headline", "text"),
            _field("theme", "Theme", "text"),
            _field("style", "Style", "select", ["Retro", "Minimal", "Bold modern", "Art deco"]),
        ],
        "resolution": "portrait",
    },
]


def upgrade() -> None:
    templates = op.create_table(
        "prompt_templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("fields", nproxy_core.db.JSONType, nullable=False),
        sa.Column("model", sa.String(length=128), nullable=True),
        sa.Column("resolution", sa.String(length=64), nullable=True),
        sa.Column("with_text", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("storage_key", sa.String(length=255), nullable=True),
        sa.Column("example_mime", sa.String(length=32), nullable=True),
        sa.Column("example_generation_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["example_generation_id"],
            ["generations.id"],
            name=op.f("fk_prompt_templates_example_generation_id_generations"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompt_templates")),
        sa.UniqueConstraint("slug", name=op.f("uq_prompt_templates_slug")),
        sa.UniqueConstraint("storage_key", name=op.f("uq_prompt_templates_storage_key")),
    )
    op.create_index(
        "ix_prompt_templates_active_position", "prompt_templates", ["active", "position"]
    )
    op.create_table(
        "template_runs",
        sa.Column("generation_id", sa.Uuid(), nullable=False),
        sa.Column("template_id", sa.Integer(), nullable=True),
        sa.Column("inputs", nproxy_core.db.JSONType, nullable=False),
        sa.Column("with_text", sa.Boolean(), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["generation_id"],
            ["generations.id"],
            name=op.f("fk_template_runs_generation_id_generations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["prompt_templates.id"],
            name=op.f("fk_template_runs_template_id_prompt_templates"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("generation_id", name=op.f("pk_template_runs")),
    )
    op.create_index("ix_template_runs_template_id", "template_runs", ["template_id"])
    now = dt.datetime.now(dt.UTC)
    op.bulk_insert(
        templates,
        [
            {
                "id": n,
                "model": None,
                "with_text": False,
                **seed,
                "active": True,
                "position": n * 10,
                "storage_key": None,
                "example_mime": None,
                "example_generation_id": None,
                "created_at": now,
                "updated_at": now,
            }
            for n, seed in enumerate(SEEDS, start=1)
        ],
    )
    if op.get_bind().dialect.name == "postgresql":
        # The rows above name their ids: the next one added gets the one after.
        op.execute(
            "SELECT setval(pg_get_serial_sequence('prompt_templates', 'id'), "
            "(SELECT max(id) FROM prompt_templates))"
        )


def downgrade() -> None:
    op.drop_index("ix_template_runs_template_id", table_name="template_runs")
    op.drop_table("template_runs")
    op.drop_index("ix_prompt_templates_active_position", table_name="prompt_templates")
    op.drop_table("prompt_templates")
