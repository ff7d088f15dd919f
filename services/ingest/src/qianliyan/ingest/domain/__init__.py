"""Ingest's pure logic: what makes a report and its photos acceptable."""
