"""Prometheus metrics of the domain (transport metrics live beside their transports)."""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TICKETS_CREATED = Counter("support_tickets_created_total", "Tickets created", ["channel"])
DB_POOL_IN_USE = Gauge("support_db_pool_connections_in_use", "Database connections checked out")
DB_POOL_SIZE = Gauge("support_db_pool_connections", "Database connections open")
HTTP_REQUESTS = Counter("support_http_requests_total", "HTTP requests", ["method", "route", "status"])
HTTP_LATENCY = Histogram("support_http_request_duration_seconds", "HTTP request latency", ["method", "route"],
                         buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
CHAT_SESSIONS_STARTED = Counter("support_chat_sessions_started_total", "Chat sessions started", ["department"])
CHAT_SESSIONS_ENDED = Counter("support_chat_sessions_ended_total", "Chat sessions ended", ["reason"])
CHAT_MESSAGES = Counter("support_chat_messages_total", "Chat messages stored", ["sender_type"])
CHAT_QUEUE_LENGTH = Gauge("support_chat_queue_length", "Queued chat sessions", ["department"])
CHAT_WAIT_SECONDS = Histogram("support_chat_wait_seconds", "Time from queueing to an agent joining",
                              buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1800))
SOCKET_CONNECTIONS = Gauge("support_socket_connections", "Connected Socket.IO clients on this replica", ["namespace"])
SOCKET_ACK_LATENCY = Histogram("support_socket_ack_seconds", "Time to acknowledge a Socket.IO event", ["event"],
                               buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1))
