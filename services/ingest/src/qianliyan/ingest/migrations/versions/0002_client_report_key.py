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
    # The unique index is built under the table's lock, holding claims back for as long as
    # that takes (a column that is all null: a second or so for millions of rows). Queued
    # behind a long transaction, the step gives up rather than hold every claim back.
    op.execute("SET LOCAL lock_timeout = '10s'")
    op.execute("ALTER TABLE ingest_submissions ADD COLUMN client_report_key text UNIQUE")


def downgrade() -> None:
    op.execute("ALTER TABLE ingest_submissions DROP COLUMN client_report_key")
