"""The phone's own report id, kept as a second key of its submission.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A submission is filed under its Idempotency-Key header when it has one; a retry that
    # sends the same client_report_id under a fresh header must still find it. Rows filed
    # before this have none: their id cannot be told from the header they were filed under
    # (both are scoped the same way), so a retry of one finds it by the key it was filed
    # under, and a retry that repeats the content fills it in.
    op.execute("ALTER TABLE ingest_submissions ADD COLUMN client_report_key text UNIQUE")


def downgrade() -> None:
    op.execute("ALTER TABLE ingest_submissions DROP COLUMN client_report_key")
