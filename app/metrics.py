"""Prometheus metrics of the domain (transport metrics live beside their transports)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TICKETS_CREATED = Counter("support_tickets_created_total", "Tickets created", ["channel"])
DB_POOL_IN_USE = Gauge("support_db_pool_connections_in_use", "Database connections checked out")
DB_POOL_SIZE = Gauge("support_db_pool_connections", "Database connections open")
HTTP_REQUESTS = Counter("support_http_requests_total", "HTTP requests", ["method", "route", "status"])
HTTP_LATENCY = Histogram(
    "support_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
CHAT_SESSIONS_STARTED = Counter("support_chat_sessions_started_total", "Chat sessions started", ["department"])
CHAT_SESSIONS_ENDED = Counter("support_chat_sessions_ended_total", "Chat sessions ended", ["reason"])
CHAT_MESSAGES = Counter("support_chat_messages_total", "Chat messages stored", ["sender_type"])
CHAT_QUEUE_LENGTH = Gauge("support_chat_queue_length", "Queued chat sessions", ["department"])
CHAT_WAIT_SECONDS = Histogram(
    "support_chat_wait_seconds",
    "Time from queueing to an agent joining",
    buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1800),
)
SOCKET_CONNECTIONS = Gauge("support_socket_connections", "Connected Socket.IO clients on this replica", ["namespace"])
SOCKET_ACK_LATENCY = Histogram(
    "support_socket_ack_seconds",
    "Time to acknowledge a Socket.IO event",
    ["event"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
KB_SEARCH_LATENCY = Histogram(
    "support_kb_search_seconds",
    "KB search and suggestion latency",
    ["backend", "kind"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
FEEDBACK_RECEIVED = Counter("support_feedback_total", "Feedback given", ["rating"])
ANALYTICS_LATENCY = Histogram(
    "support_analytics_report_seconds",
    "Time to compute an analytics report",
    ["report"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5),
)

# gRPC (grpc_server/interceptors.py)
GRPC_REQUESTS = Counter("support_grpc_requests_total", "gRPC calls finished", ["method", "code"])
GRPC_LATENCY = Histogram(
    "support_grpc_request_duration_seconds",
    "gRPC call duration (streams: their lifetime)",
    ["method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 30, 300),
)
GRPC_STREAMS = Gauge("support_grpc_streams_active", "Open gRPC streams on this replica", ["method"])

# Events: the outbox relay to Kafka, the consumer of other services' events, retention
RELAY_PUBLISHED = Counter("support_outbox_published_total", "Events the relay published to Kafka", ["topic"])
RELAY_ERRORS = Counter("support_outbox_relay_errors_total", "Relay rounds that failed (Kafka or database down)")
RELAY_PENDING = Gauge("support_outbox_pending_events", "Events not yet published to Kafka")
RELAY_LAG = Gauge("support_outbox_relay_lag_seconds", "Age of the oldest event not yet published to Kafka")
RELAY_LEADER = Gauge("support_outbox_relay_leader", "1 while this replica runs the relay")
EVENTS_CONSUMED = Counter("support_events_consumed_total", "Kafka events consumed, by outcome", ["outcome"])
EVENTS_PRUNED = Counter("support_events_pruned_total", "Events removed from the log by retention")
SOCKET_FANOUT_INTERRUPTIONS = Counter(
    "support_socket_fanout_interruptions_total",
    "Failed attempts of the Socket.IO Redis listener to (re)subscribe or read",
)
SOCKET_RESYNCS = Counter(
    "support_socket_resyncs_total", "chat:resync pushes sent to sockets after the fan-out subscription came back"
)
SOCKET_BROADCASTS_DROPPED = Counter(
    "support_socket_broadcasts_dropped_total", "Socket.IO broadcasts dropped because the publish queue was full"
)
PUBSUB_RECEIVED_MESSAGES = Counter(
    "support_pubsub_received_messages", "Cross-replica Socket.IO messages this replica received from Redis"
)
PUBSUB_RECEIVED_BYTES = Counter(
    "support_pubsub_received_bytes", "Bytes of cross-replica Socket.IO messages this replica received from Redis"
)
SOCKET_SHED = Counter(
    "support_socket_shed", "Socket.IO events answered `unavailable` because the replica was past capacity"
)
