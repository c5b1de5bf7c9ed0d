"""Every setting of the service, read once from the environment, typed and validated.

Nothing else in the code base reads ``os.environ``. Names follow SEED.md and API.md
("Settings beyond SEED.md"); SEED.md's sample values are examples, so optional integrations
(Kafka, Elasticsearch, the e-mail worker, peer gRPC services) are off unless configured.
"""

from __future__ import annotations

import base64
import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote


class ConfigError(Exception):
    """One or more settings are missing or invalid; the message names each of them."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _int(minimum: int = 0) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw.strip())
        if value < minimum:
            raise ValueError(f"must be at least {minimum}")
        return value

    return parse


def _str(raw: str) -> str:
    return raw.strip()


def _path(raw: str) -> str:
    value = raw.strip()
    if not value.startswith("/"):
        raise ValueError("must start with /")
    return value.rstrip("/") or "/"


def _page_url(raw: str) -> str:
    """An absolute http(s) URL, or a path on this origin (``/auth/login``); no fragment."""
    value = raw.strip()
    if not (re.fullmatch(r"https?://[^/?#\s]+(?:[/?][^#\s]*)?", value) or re.fullmatch(r"/[^/#\s][^#\s]*|/", value)):
        raise ValueError("expected an http(s):// URL or a path starting with /, without a #fragment")
    return value


def _origins(raw: str) -> tuple[str, ...]:
    return tuple(o.strip() for o in raw.split(",") if o.strip())


def _ddl_auto(raw: str) -> str:
    value = raw.strip().lower()
    if value not in ("update", "validate", "none"):
        raise ValueError("expected update, validate or none")
    return value


def parse_encryption_keys(raw: str) -> tuple[tuple[str, bytes], ...]:
    """``key_id:base64-of-32-bytes,...``; the first key encrypts, every key decrypts."""
    keys = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        key_id, sep, encoded = part.partition(":")
        if not sep or not re.fullmatch(r"[A-Za-z0-9_-]{1,16}", key_id):
            raise ValueError("each key must be key_id:base64 with a key id of 1-16 letters, digits, _ or -")
        try:
            key = base64.b64decode(encoded, validate=True)
        except ValueError as exc:
            raise ValueError(f"key {key_id!r} is not valid base64") from exc
        if len(key) != 32:
            raise ValueError(f"key {key_id!r} must decode to 32 bytes, not {len(key)}")
        keys.append((key_id, key))
    if not keys:
        raise ValueError("no keys given")
    if len({k for k, _ in keys}) != len(keys):
        raise ValueError("key ids must be unique")
    return tuple(keys)


@dataclasses.dataclass(frozen=True)
class Var:
    name: str
    field: str
    parse: Callable[[str], Any]
    default: Any
    doc: str


# The table below is the configuration reference; the README's table mirrors it (a test checks).
VARS: tuple[Var, ...] = (
    Var("SERVER_PORT", "server_port", _int(0), 8088, "HTTP port: REST, Socket.IO, static, /metrics, /health"),
    Var("SPRING_PROFILES_ACTIVE", "profile", _str, "production", "Profile name, shown in /health/ready"),
    Var("DATABASE_URL", "database_url", _str, None, "PostgreSQL DSN (alternative to the SPRING_DATASOURCE_* trio)"),
    Var("SPRING_DATASOURCE_URL", "datasource_url", _str, None, "JDBC-style or postgresql:// URL of the database"),
    Var("SPRING_DATASOURCE_USERNAME", "datasource_username", _str, None, "Database user for SPRING_DATASOURCE_URL"),
    Var("SPRING_DATASOURCE_PASSWORD", "datasource_password", _str, None, "Database password for SPRING_DATASOURCE_URL"),
    Var(
        "SPRING_JPA_HIBERNATE_DDL_AUTO",
        "ddl_auto",
        _ddl_auto,
        "update",
        "update: serve applies pending migrations; validate: refuse to start if any are pending; none: skip",
    ),
    Var("DATABASE_POOL_SIZE", "database_pool_size", _int(1), 10, "Largest number of database connections per replica"),
    Var("REDIS_HOST", "redis_host", _str, "localhost", "Redis host"),
    Var("REDIS_PORT", "redis_port", _int(1), 6379, "Redis port"),
    Var("REDIS_PASSWORD", "redis_password", _str, None, "Redis password (optional)"),
    Var("REDIS_DATABASE", "redis_database", _int(0), 0, "Redis database number"),
    Var(
        "KAFKA_BOOTSTRAP_SERVERS",
        "kafka_bootstrap_servers",
        _str,
        None,
        "Kafka brokers; events are relayed only when set",
    ),
    Var("KAFKA_TOPIC_SUPPORT_EVENTS", "kafka_topic_support_events", _str, "support-events", "Topic for support events"),
    Var("KAFKA_TOPIC_TICKET_EVENTS", "kafka_topic_ticket_events", _str, "ticket-events", "Topic for ticket events"),
    Var("KAFKA_TOPIC_CHAT_EVENTS", "kafka_topic_chat_events", _str, "chat-events", "Topic for chat events"),
    Var("KAFKA_GROUP_ID", "kafka_group_id", _str, "support-service", "Consumer group for events from other services"),
    Var(
        "KAFKA_ENABLE_IDEMPOTENCE", "kafka_enable_idempotence", _bool, True, "Idempotent producer for the outbox relay"
    ),
    Var("GRPC_SERVER_PORT", "grpc_server_port", _int(0), 50061, "gRPC port"),
    Var("GRPC_AUTH_SERVICE_URL", "grpc_auth_service_url", _str, None, "Auth Service address (optional)"),
    Var(
        "GRPC_USER_SERVICE_URL",
        "grpc_user_service_url",
        _str,
        None,
        "User Service address, for contact details (optional)",
    ),
    Var(
        "GRPC_BOOKING_SERVICE_URL",
        "grpc_booking_service_url",
        _str,
        None,
        "Booking Service address (optional): customers' bookings beside chats and tickets",
    ),
    Var("GRPC_EMAIL_SERVICE_URL", "grpc_email_service_url", _str, None, "E-mail worker gRPC address (optional)"),
    Var(
        "GRPC_MAX_RECEIVE_MESSAGE_SIZE",
        "grpc_max_receive_message_size",
        _int(1024),
        4194304,
        "Largest gRPC message accepted, bytes",
    ),
    Var(
        "GRPC_MAX_SEND_MESSAGE_SIZE",
        "grpc_max_send_message_size",
        _int(1024),
        4194304,
        "Largest gRPC message sent, bytes",
    ),
    Var("GRPC_KEEPALIVE_TIME_MS", "grpc_keepalive_time_ms", _int(1), 30000, "gRPC keepalive ping interval, ms"),
    Var("GRPC_KEEPALIVE_TIMEOUT_MS", "grpc_keepalive_timeout_ms", _int(1), 5000, "gRPC keepalive ack timeout, ms"),
    Var("WEBSOCKET_ENDPOINT", "websocket_endpoint", _path, "/ws/chat", "Socket.IO path"),
    Var("WEBSOCKET_MAX_SESSIONS", "websocket_max_sessions", _int(1), 1000, "Most Socket.IO connections per replica"),
    Var(
        "SOCKET_SHED_LAG_MS",
        "socket_shed_lag_ms",
        _int(0),
        100,
        "Socket.IO events are answered `unavailable` while the replica's event loop runs this late (0: never)",
    ),
    Var(
        "WEBSOCKET_HEARTBEAT_INTERVAL", "websocket_heartbeat_interval", _int(1000), 30000, "Socket.IO ping interval, ms"
    ),
    Var("WEBSOCKET_COMPRESSION", "websocket_compression", _bool, False, "permessage-deflate on websockets"),
    Var(
        "WEBSOCKET_FAST_PATH",
        "websocket_fast_path",
        _bool,
        True,
        "Serve websocket-only Socket.IO clients on the lean path (sockets/lean.py); off: python-socketio serves all",
    ),
    Var(
        "ELASTICSEARCH_HOST",
        "elasticsearch_host",
        _str,
        None,
        "Elasticsearch host; KB search uses PostgreSQL when unset",
    ),
    Var("ELASTICSEARCH_PORT", "elasticsearch_port", _int(1), 9200, "Elasticsearch port"),
    Var("ELASTICSEARCH_USERNAME", "elasticsearch_username", _str, None, "Elasticsearch user (optional)"),
    Var("ELASTICSEARCH_PASSWORD", "elasticsearch_password", _str, None, "Elasticsearch password (optional)"),
    Var("ELASTICSEARCH_INDEX_ARTICLES", "elasticsearch_index_articles", _str, "kb-articles", "Index of KB articles"),
    Var(
        "EMAIL_SERVICE_URL",
        "email_service_url",
        _str,
        None,
        "E-mail worker HTTP base URL; no e-mail is sent when unset",
    ),
    Var(
        "EMAIL_TEMPLATE_TICKET_CREATED",
        "email_template_ticket_created",
        _str,
        "ticket-created",
        "Template for a new ticket",
    ),
    Var(
        "EMAIL_TEMPLATE_TICKET_UPDATED",
        "email_template_ticket_updated",
        _str,
        "ticket-updated",
        "Template for a ticket update",
    ),
    Var(
        "EMAIL_TEMPLATE_TICKET_RESOLVED",
        "email_template_ticket_resolved",
        _str,
        "ticket-resolved",
        "Template for a resolved ticket",
    ),
    Var("TICKET_AUTO_ASSIGNMENT", "ticket_auto_assignment", _bool, True, "Assign new tickets to an available agent"),
    Var(
        "TICKET_ESCALATION_TIMEOUT_HOURS",
        "ticket_escalation_timeout_hours",
        _int(1),
        24,
        "Default rule: escalate tickets unresolved this long",
    ),
    Var(
        "CHAT_QUEUE_TIMEOUT_MINUTES",
        "chat_queue_timeout_minutes",
        _int(1),
        5,
        "A queued chat ends (queue_timeout) after this long, unless its department sets queue_timeout_minutes",
    ),
    Var(
        "QUEUE_ALERT_MINUTES",
        "queue_alert_minutes",
        _int(0),
        2,
        "Supervisors are alerted when a department's longest chat wait passes this (0: never), unless the department sets queue_alert_minutes",
    ),
    Var(
        "CHAT_INACTIVITY_TIMEOUT_MINUTES",
        "chat_inactivity_timeout_minutes",
        _int(1),
        30,
        "An active chat with no message this long ends",
    ),
    Var(
        "AGENT_DISCONNECT_GRACE_SECONDS",
        "agent_disconnect_grace_seconds",
        _int(0),
        30,
        "Disconnected agents go offline after this long",
    ),
    Var(
        "MAX_TICKETS_PER_AGENT",
        "max_tickets_per_agent",
        _int(1),
        15,
        "Ceiling on open tickets per agent for auto-assignment",
    ),
    Var(
        "AUTO_RESPONSE_ENABLED", "auto_response_enabled", _bool, True, "Automatic first responses on tickets and chats"
    ),
    Var("EVENT_RETENTION_DAYS", "event_retention_days", _int(1), 30, "Published events older than this are pruned"),
    Var(
        "ATTACHMENT_MAX_BYTES",
        "attachment_max_bytes",
        _int(1),
        10485760,
        "Largest attachment accepted, bytes (larger uploads get 413)",
    ),
    Var(
        "ATTACHMENT_STORAGE_DIR",
        "attachment_storage_dir",
        _str,
        ".data/attachments",
        "Directory of the local attachment store (used unless ATTACHMENT_S3_BUCKET is set)",
    ),
    Var(
        "ATTACHMENT_S3_BUCKET",
        "attachment_s3_bucket",
        _str,
        None,
        "S3 bucket for attachments; the local directory is used when unset",
    ),
    Var(
        "ATTACHMENT_S3_ENDPOINT_URL",
        "attachment_s3_endpoint_url",
        _str,
        None,
        "Endpoint of an S3-compatible store (MinIO, Ceph, R2...); AWS when unset",
    ),
    Var("ATTACHMENT_S3_REGION", "attachment_s3_region", _str, "us-east-1", "Region of the attachment bucket"),
    Var(
        "ATTACHMENT_S3_ACCESS_KEY_ID",
        "attachment_s3_access_key_id",
        _str,
        None,
        "Access key of the attachment store (else the usual AWS credential chain)",
    ),
    Var(
        "ATTACHMENT_S3_SECRET_ACCESS_KEY",
        "attachment_s3_secret_access_key",
        _str,
        None,
        "Secret key of the attachment store",
    ),
    Var("ATTACHMENT_S3_PREFIX", "attachment_s3_prefix", _str, "", "Prefix of every attachment key in the bucket"),
    Var(
        "ATTACHMENT_URL_TTL_SECONDS",
        "attachment_url_ttl_seconds",
        _int(10),
        3600,
        "Lifetime of the signed download links in messages",
    ),
    Var(
        "ATTACHMENT_UNREFERENCED_HOURS",
        "attachment_unreferenced_hours",
        _int(1),
        24,
        "Uploads no message references within this long are removed by the retention run",
    ),
    Var(
        "JWT_SECRET", "jwt_secret", _str, None, "HS256 secret shared with the Auth Service (at least 32 bytes in serve)"
    ),
    Var("JWT_PUBLIC_KEY", "jwt_public_key", _str, None, "PEM public key; when set, RS256 tokens are accepted too"),
    Var("JWT_EXPIRATION", "jwt_expiration", _int(1), 3600, "Lifetime in seconds of the tokens dev prints"),
    Var(
        "CONSOLE_LOGIN_URL",
        "console_login_url",
        _page_url,
        None,
        "Auth Service login page; a signed-out console goes there with ?return_to=<console URL> (see Console sign-in)",
    ),
    Var(
        "CONSOLE_REFRESH_URL",
        "console_refresh_url",
        _page_url,
        None,
        "Auth Service endpoint the console POSTs its token to before it expires, for a new one (see Console sign-in)",
    ),
    Var(
        "RATE_LIMIT_REQUESTS_PER_MINUTE",
        "rate_limit_requests_per_minute",
        _int(1),
        100,
        "REST and gRPC requests per caller per minute",
    ),
    Var(
        "CHAT_RATE_LIMIT_MESSAGES_PER_MINUTE",
        "chat_rate_limit_messages_per_minute",
        _int(1),
        30,
        "Chat messages per sender per minute",
    ),
    Var(
        "DATA_ENCRYPTION_KEYS",
        "data_encryption_keys",
        parse_encryption_keys,
        None,
        "key_id:base64-32-bytes,...; the first encrypts, all decrypt (required by serve)",
    ),
    Var(
        "CORS_ALLOWED_ORIGINS",
        "cors_allowed_origins",
        _origins,
        None,
        "Comma-separated origins allowed for REST and Socket.IO; * for any (required by serve)",
    ),
    Var("LOG_LEVEL", "log_level", lambda raw: raw.strip().upper(), "INFO", "Log level of the JSON logs"),
)

# Settings `serve` will not start without (API.md "Settings beyond SEED.md").
SERVE_REQUIRED = ("JWT_SECRET", "DATA_ENCRYPTION_KEYS", "CORS_ALLOWED_ORIGINS")


@dataclasses.dataclass(frozen=True)
class Settings:
    server_port: int
    profile: str
    database_url: str | None
    datasource_url: str | None
    datasource_username: str | None
    datasource_password: str | None
    ddl_auto: str
    database_pool_size: int
    redis_host: str
    redis_port: int
    redis_password: str | None
    redis_database: int
    kafka_bootstrap_servers: str | None
    kafka_topic_support_events: str
    kafka_topic_ticket_events: str
    kafka_topic_chat_events: str
    kafka_group_id: str
    kafka_enable_idempotence: bool
    grpc_server_port: int
    grpc_auth_service_url: str | None
    grpc_user_service_url: str | None
    grpc_booking_service_url: str | None
    grpc_email_service_url: str | None
    grpc_max_receive_message_size: int
    grpc_max_send_message_size: int
    grpc_keepalive_time_ms: int
    grpc_keepalive_timeout_ms: int
    websocket_endpoint: str
    websocket_max_sessions: int
    socket_shed_lag_ms: int
    websocket_heartbeat_interval: int
    websocket_compression: bool
    websocket_fast_path: bool
    elasticsearch_host: str | None
    elasticsearch_port: int
    elasticsearch_username: str | None
    elasticsearch_password: str | None
    elasticsearch_index_articles: str
    email_service_url: str | None
    email_template_ticket_created: str
    email_template_ticket_updated: str
    email_template_ticket_resolved: str
    ticket_auto_assignment: bool
    ticket_escalation_timeout_hours: int
    chat_queue_timeout_minutes: int
    chat_inactivity_timeout_minutes: int
    queue_alert_minutes: int
    agent_disconnect_grace_seconds: int
    max_tickets_per_agent: int
    auto_response_enabled: bool
    event_retention_days: int
    attachment_max_bytes: int
    attachment_storage_dir: str
    attachment_s3_bucket: str | None
    attachment_s3_endpoint_url: str | None
    attachment_s3_region: str
    attachment_s3_access_key_id: str | None
    attachment_s3_secret_access_key: str | None
    attachment_s3_prefix: str
    attachment_url_ttl_seconds: int
    attachment_unreferenced_hours: int
    jwt_secret: str | None
    jwt_public_key: str | None
    jwt_expiration: int
    console_login_url: str | None
    console_refresh_url: str | None
    rate_limit_requests_per_minute: int
    chat_rate_limit_messages_per_minute: int
    data_encryption_keys: tuple[tuple[str, bytes], ...] | None
    cors_allowed_origins: tuple[str, ...] | None
    log_level: str

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], *, require: tuple[str, ...] = SERVE_REQUIRED, **overrides: Any
    ) -> Settings:
        """Parse ``env``; every problem is collected so one start-up names them all."""
        values: dict[str, Any] = {}
        problems: list[str] = []
        for var in VARS:
            raw = env.get(var.name)
            if raw is None or raw.strip() == "":
                values[var.field] = var.default
                continue
            try:
                values[var.field] = var.parse(raw)
            except ValueError as exc:
                problems.append(f"{var.name}: {exc}")
                values[var.field] = var.default
        values.update(overrides)
        for name in require:
            field = next(v.field for v in VARS if v.name == name)
            if values.get(field) is None:
                problems.append(f"{name}: required but not set")
        if "JWT_SECRET" in require and values.get("jwt_secret") and len(values["jwt_secret"].encode()) < 32:
            problems.append("JWT_SECRET: must be at least 32 bytes long")
        settings = cls(**values)
        try:
            settings.dsn  # noqa: B018 - validates the database settings
        except ValueError as exc:
            problems.append(str(exc))
        if problems:
            raise ConfigError(problems)
        return settings

    @property
    def dsn(self) -> str:
        """The asyncpg DSN from DATABASE_URL or the SPRING_DATASOURCE_* trio."""
        if self.database_url:
            return _normalise_dsn(self.database_url, None, None, "DATABASE_URL")
        if self.datasource_url:
            return _normalise_dsn(
                self.datasource_url, self.datasource_username, self.datasource_password, "SPRING_DATASOURCE_URL"
            )
        raise ValueError("DATABASE_URL or SPRING_DATASOURCE_URL: one is required")

    @property
    def redis_url(self) -> str:
        auth = f":{quote(self.redis_password, safe='')}@" if self.redis_password else ""
        return f"redis://{auth}{self.redis_host}:{self.redis_port}/{self.redis_database}"

    @property
    def cors_any_origin(self) -> bool:
        return self.cors_allowed_origins is not None and "*" in self.cors_allowed_origins


def _normalise_dsn(url: str, user: str | None, password: str | None, name: str) -> str:
    if url.startswith("jdbc:"):
        url = url[len("jdbc:") :]
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if not url.startswith("postgresql://"):
        raise ValueError(f"{name}: expected a postgresql:// (or jdbc:postgresql://) URL")
    rest = url[len("postgresql://") :]
    if user and "@" not in rest.split("/", 1)[0]:
        credentials = quote(user, safe="")
        if password:
            credentials += ":" + quote(password, safe="")
        rest = f"{credentials}@{rest}"
    return "postgresql://" + rest
