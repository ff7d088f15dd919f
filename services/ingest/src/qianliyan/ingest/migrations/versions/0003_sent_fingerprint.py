"""A digest of each submission's photos as sent, so a retry is answered before decoding.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The fingerprint is over the photos as prepared (decoded, cleaned), so checking it
    # means decoding every photo of a retry again. A phone resends the same bytes, so a
    # digest over them answers a retry first. Rows filed before this have none: a retry of
    # one is answered as before, and fills it in.
    op.execute("SET LOCAL lock_timeout = '10s'")  # as 0002's
    op.execute("ALTER TABLE ingest_submissions ADD COLUMN sent_fingerprint text")


def downgrade() -> None:
    op.execute("ALTER TABLE ingest_submissions DROP COLUMN sent_fingerprint")
