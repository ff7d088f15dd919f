"""Notify's HTTP routes: thin, they parse, query the read models, and map errors to HTTP."""
