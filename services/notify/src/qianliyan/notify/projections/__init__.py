"""Projecting events into the Postgres read models, idempotently by event id."""
