"""Who changed which person or machine token, and when.

Access changes were kept only as their result (a person's roles now, a token's revoked_at),
so nobody could say who gave a person the admin role, or when a manager's units changed.
Each change is now written here in the same transaction as the change itself. What the
existing rows can tell is filled in: people added, tokens issued and tokens revoked;
earlier changes to people left no trace to recover.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE access_changes (
            change_id   bigserial PRIMARY KEY,
            occurred_at timestamptz NOT NULL DEFAULT now(),
            actor       text NOT NULL,
            action      text NOT NULL,
            subject     text NOT NULL,
            detail      jsonb NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX access_changes_by_time ON access_changes (occurred_at, change_id)")
    op.execute(
        """
        INSERT INTO access_changes (occurred_at, actor, action, subject, detail)
        SELECT occurred_at, actor, action, subject, detail FROM (
            SELECT created_at AS occurred_at, created_by AS actor, 'user_added' AS action,
                   username AS subject,
                   jsonb_build_object('display_name', display_name, 'roles', roles,
                                      'units', units) AS detail
              FROM access_users
            UNION ALL
            SELECT created_at, created_by, 'token_issued', token_id,
                   jsonb_build_object('name', name, 'scopes', scopes, 'units', units,
                                      'expires_at', expires_at)
              FROM access_tokens
            UNION ALL
            SELECT t.revoked_at, COALESCE(t.revoked_by, 'unknown'), 'token_revoked', t.token_id,
                   jsonb_build_object('name', t.name, 'reason', r.reason)
              FROM access_tokens t LEFT JOIN access_revoked_tokens r USING (token_id)
             WHERE t.revoked_at IS NOT NULL
        ) existing
        ORDER BY occurred_at
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE access_changes")
