"""A machine token signed out before this release is void until it expires, not 12 hours.

A sign-out recorded the revocation for a session's 12 hours whatever the token's own
expiry, so a machine token (90 days by default) signed out worked again after them.
Each such revocation is lengthened to its token's expiry; people's tokens, which live
no longer than a session, are left as they are.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        UPDATE access_revoked_tokens r SET expires_at = t.expires_at
          FROM access_tokens t
         WHERE t.token_id = r.token_id AND r.expires_at < t.expires_at
        """
    )


def downgrade() -> None:
    # The lengthened revocations stay: shortening them would let those tokens work again.
    pass
