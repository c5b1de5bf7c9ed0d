"""Prometheus metrics of the domain (transport metrics live beside their transports)."""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TICKETS_CREATED = Counter("support_tickets_created_total", "Tickets created", ["channel"])
DB_POOL_IN_USE = Gauge("support_db_pool_connections_in_use", "Database connections checked out")
DB_POOL_SIZE = Gauge("support_db_pool_connections", "Database connections open")
HTTP_REQUESTS = Counter("support_http_requests_total", "HTTP requests", ["method", "route", "status"])
HTTP_LATENCY = Histogram("support_http_request_duration_seconds", "HTTP request latency", ["method", "route"],
                         buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
