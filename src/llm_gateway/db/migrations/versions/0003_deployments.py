"""Several deployments per model, and fallback models.

Each existing model becomes a model with one deployment: its provider and provider-side name.

Revision ID: 0003
Revises: 0002
"""

import uuid

import sqlalchemy as sa
from alembic import op

from llm_gateway.db.tables import UTCDateTime, utcnow

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    # Read the one-provider form before the columns go (SQLite rebuilds the table to drop them).
    seed = bind.execute(sa.text("SELECT id, provider_id, provider_model_name FROM models")).all()
    with op.batch_alter_table("models") as batch:
        batch.drop_index("ix_models_provider_id")
        batch.drop_column("provider_id")
        batch.drop_column("provider_model_name")
    deployments = op.create_table(
        "model_deployments",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column(
            "model_id", sa.Uuid, sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "provider_id",
            sa.Uuid,
            sa.ForeignKey("providers.id", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column("provider_model_name", sa.String(256), nullable=True),
        sa.Column("weight", sa.Integer, nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_model_deployments_model_id", "model_deployments", ["model_id"])
    op.create_index("ix_model_deployments_provider_id", "model_deployments", ["provider_id"])
    op.create_table(
        "model_fallbacks",
        sa.Column(
            "model_id", sa.Uuid, sa.ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column(
            "fallback_id",
            sa.Uuid,
            sa.ForeignKey("models.id", ondelete="RESTRICT"),
            nullable=False,
        ),
    )
    op.create_index("ix_model_fallbacks_fallback_id", "model_fallbacks", ["fallback_id"])
    now = utcnow()
    if seed:
        op.bulk_insert(
            deployments,
            [
                {
                    "id": uuid.uuid4(),
                    "model_id": _uuid(row.id),
                    "provider_id": _uuid(row.provider_id),
                    "provider_model_name": row.provider_model_name,
                    "weight": 1,
                    "priority": 0,
                    "position": 0,
                    "created_at": now,
                }
                for row in seed
            ],
        )
    with op.batch_alter_table("request_logs") as batch:
        batch.add_column(sa.Column("model_served", sa.String(256), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer, nullable=False, server_default="1"))
        batch.add_column(sa.Column("failed_attempts", sa.Text, nullable=True))


def _uuid(value: object) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def downgrade() -> None:
    """Back to one provider per model: each model keeps its first deployment."""
    with op.batch_alter_table("request_logs") as batch:
        batch.drop_column("failed_attempts")
        batch.drop_column("attempts")
        batch.drop_column("model_served")
    bind = op.get_bind()
    first = bind.execute(
        sa.text(
            "SELECT model_id, provider_id, provider_model_name FROM model_deployments"
            " ORDER BY priority DESC, position DESC"
        )
    ).all()
    op.drop_table("model_fallbacks")
    op.drop_table("model_deployments")
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("provider_id", sa.Uuid, nullable=True))
        batch.add_column(sa.Column("provider_model_name", sa.String(256), nullable=True))
    for row in first:  # the last write per model wins: its lowest priority, first in the list
        bind.execute(
            sa.text(
                "UPDATE models SET provider_id = :provider, provider_model_name = :name"
                " WHERE id = :model"
            ),
            {"provider": row.provider_id, "name": row.provider_model_name, "model": row.model_id},
        )
    with op.batch_alter_table("models") as batch:
        batch.alter_column("provider_id", existing_type=sa.Uuid, nullable=False)
        batch.create_foreign_key(
            "fk_models_provider_id", "providers", ["provider_id"], ["id"], ondelete="RESTRICT"
        )
        batch.create_index("ix_models_provider_id", ["provider_id"])
