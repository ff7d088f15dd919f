"""Alembic's entry point for the access migrations."""

from qianliyan.shared.migrations import run_migrations_online

run_migrations_online()
