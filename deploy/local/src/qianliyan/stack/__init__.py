"""Provisions and runs Qianliyan's real stack natively: Kafka, MinIO, PostgreSQL, services."""
