"""Encryption at rest, sanitising, rate limits and audit."""
