"""Notify's pure logic: what a dispatcher may do to an incident, and what it becomes."""
