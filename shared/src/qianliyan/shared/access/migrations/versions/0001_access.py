"""People who sign in, machine tokens, and revoked tokens.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE access_users (
            username      text PRIMARY KEY,
            display_name  text NOT NULL,
            password_hash text NOT NULL,
            roles         text[] NOT NULL,
            units         text[] NOT NULL DEFAULT '{}',
            created_at    timestamptz NOT NULL DEFAULT now(),
            created_by    text NOT NULL,
            updated_at    timestamptz NOT NULL DEFAULT now(),
            disabled_at   timestamptz
        )
        """
    )
    op.execute(
        """
        CREATE TABLE access_tokens (
            token_id    text PRIMARY KEY,
            name        text NOT NULL,
            scopes      text[] NOT NULL,
            units       text[] NOT NULL DEFAULT '{}',
            created_at  timestamptz NOT NULL DEFAULT now(),
            created_by  text NOT NULL,
            expires_at  timestamptz NOT NULL,
            revoked_at  timestamptz,
            revoked_by  text
        )
        """
    )
    # Every service refuses what is listed here; rows can go once the token has expired.
    op.execute(
        """
        CREATE TABLE access_revoked_tokens (
            token_id   text PRIMARY KEY,
            expires_at timestamptz NOT NULL,
            revoked_at timestamptz NOT NULL DEFAULT now(),
            revoked_by text NOT NULL,
            reason     text NOT NULL
        )
        """
    )
    # Tokens issued to a subject before its cut-off are refused (a disabled person, a
    # changed password, "sign me out everywhere").
    op.execute(
        """
        CREATE TABLE access_subject_cutoffs (
            subject    text PRIMARY KEY,
            not_before timestamptz NOT NULL
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE access_subject_cutoffs")
    op.execute("DROP TABLE access_revoked_tokens")
    op.execute("DROP TABLE access_tokens")
    op.execute("DROP TABLE access_users")
