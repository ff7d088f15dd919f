"""Ingest's HTTP routes: thin, they parse, call the domain, and map errors to HTTP."""
