"""Alembic's entry point for notify's migrations."""

from qianliyan.shared.migrations import run_migrations_online

run_migrations_online()
