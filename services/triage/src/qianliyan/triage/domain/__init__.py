"""Triage's pure logic: severity rules and how a report becomes a triage decision."""
