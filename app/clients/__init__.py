"""Clients of services other teams run."""
