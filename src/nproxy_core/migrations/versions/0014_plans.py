"""plans: plans as rows; every payment and billing cycle names its plan

The plan sold until now came from the ``nproxy.plan.*`` settings. This migration makes it the
row ``monthly``, from the settings the upgrade runs with (``nproxy db upgrade`` reads the same
ini file as the app; a setting left out takes the default nproxy shipped with), and links every
existing payment and cycle to it. ``billing_cycles.request_limit`` keeps its name and now
counts units.

Revision ID: 0014_plans
Revises: 0013_key_deletion
"""

from decimal import Decimal

import sqlalchemy as sa
from alembic import context, op

import nproxy_core.db

revision = "0014_plans"
down_revision = "0013_key_deletion"
branch_labels = None
depends_on = None

#: The ``nproxy.plan.*`` defaults of config.DEFAULTS when this revision was written.
DEFAULTS = {"name": "Monthly", "price": "9.99", "currency": "USD", "request_limit": "300",
            "period_months": "1"}  # fmt: skip


def _plan_setting(key: str) -> str:
    settings = context.config.attributes.get("settings") or {}
    value = str(settings.get(f"nproxy.plan.{key}") or "").strip()
    return value or DEFAULTS[key]


def upgrade() -> None:
    plans = op.create_table(
        "plans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("price", sa.Numeric(precision=18, scale=8), nullable=False),
        sa.Column("currency", sa.String(length=16), nullable=False),
        sa.Column("price_stars", sa.Integer(), nullable=True),
        sa.Column("period_months", sa.Integer(), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("models", nproxy_core.db.JSONType, nullable=False),
        sa.Column("max_batch", sa.Integer(), nullable=True),
        sa.Column("api_rate_limit", sa.String(length=64), nullable=True),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("free", sa.Boolean(), nullable=False),
        sa.Column("recurring_allowed", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", nproxy_core.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(free AND price = 0) OR (NOT free AND price > 0)",
            name=op.f("ck_plans_price_matches_free"),
        ),
        sa.CheckConstraint("units > 0", name=op.f("ck_plans_units_positive")),
        sa.CheckConstraint("period_months > 0", name=op.f("ck_plans_period_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plans")),
        sa.UniqueConstraint("code", name=op.f("uq_plans_code")),
    )
    now = nproxy_core.db.utcnow()
    units = int(_plan_setting("request_limit"))
    months = int(_plan_setting("period_months"))
    op.bulk_insert(
        plans,
        [
            {
                "code": "monthly",
                "name": _plan_setting("name"),
                "price": Decimal(_plan_setting("price")),
                "currency": _plan_setting("currency").upper(),
                "price_stars": None,
                "period_months": months,
                "units": units,
                "models": [],
                "max_batch": None,
                "api_rate_limit": None,
                "public": True,
                "free": False,
                "recurring_allowed": True,
                "active": True,
                "created_at": now,
                "updated_at": now,
            }
        ],
    )
    bind = op.get_bind()
    monthly = bind.scalar(sa.text("SELECT id FROM plans WHERE code = 'monthly'"))

    with op.batch_alter_table("payments") as batch_op:
        batch_op.add_column(sa.Column("plan_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("plan_units", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("plan_period_months", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_payments_plan_id_plans"), "plans", ["plan_id"], ["id"]
        )
    # Every payment so far was for the one plan, as it stood: what it activates is unchanged.
    bind.execute(
        sa.text(
            "UPDATE payments SET plan_id = :plan, plan_units = :units, plan_period_months = :months"
        ),
        {"plan": monthly, "units": units, "months": months},
    )

    with op.batch_alter_table("billing_cycles") as batch_op:
        batch_op.add_column(sa.Column("plan_id", sa.Integer(), nullable=True))
    bind.execute(sa.text("UPDATE billing_cycles SET plan_id = :plan"), {"plan": monthly})
    with op.batch_alter_table("billing_cycles") as batch_op:
        batch_op.alter_column("plan_id", existing_type=sa.Integer(), nullable=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_billing_cycles_plan_id_plans"), "plans", ["plan_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("billing_cycles") as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_billing_cycles_plan_id_plans"), type_="foreignkey")
        batch_op.drop_column("plan_id")
    with op.batch_alter_table("payments") as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_payments_plan_id_plans"), type_="foreignkey")
        batch_op.drop_column("plan_period_months")
        batch_op.drop_column("plan_units")
        batch_op.drop_column("plan_id")
    op.drop_table("plans")
