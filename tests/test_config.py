"""Settings: every variable parsed, validated and documented; serve refuses bad ones by name."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from app.config import VARS, ConfigError, Settings
from app.security.encryption import generate_key_spec

ROOT = Path(__file__).resolve().parent.parent
GOOD = {
    "DATABASE_URL": "postgresql://u@db:5432/support",
    "JWT_SECRET": "s" * 32,
    "DATA_ENCRYPTION_KEYS": generate_key_spec("k1"),
    "CORS_ALLOWED_ORIGINS": "https://a.example",
}


def test_defaults_follow_seed_and_api_md():
    settings = Settings.from_env(GOOD)
    assert settings.server_port == 8088
    assert settings.grpc_server_port == 50061
    assert settings.websocket_endpoint == "/ws/chat"
    assert settings.kafka_topic_ticket_events == "ticket-events"
    assert settings.kafka_bootstrap_servers is None  # Kafka is off unless configured
    assert settings.elasticsearch_host is None
    assert settings.agent_disconnect_grace_seconds == 30


def test_jdbc_datasource_trio_becomes_a_dsn_with_credentials():
    env = {k: v for k, v in GOOD.items() if k != "DATABASE_URL"}
    env.update(
        SPRING_DATASOURCE_URL="jdbc:postgresql://db:5432/support_service_db",
        SPRING_DATASOURCE_USERNAME="support",
        SPRING_DATASOURCE_PASSWORD="p@ss word",
    )
    assert Settings.from_env(env).dsn == "postgresql://support:p%40ss%20word@db:5432/support_service_db"


def test_every_problem_is_named_at_once():
    env = {
        "SERVER_PORT": "http",
        "TICKET_AUTO_ASSIGNMENT": "maybe",
        "JWT_SECRET": "short",
        "DATA_ENCRYPTION_KEYS": "k1:notbase64!",
        "WEBSOCKET_ENDPOINT": "ws",
    }
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    text = str(caught.value)
    for name in (
        "SERVER_PORT",
        "TICKET_AUTO_ASSIGNMENT",
        "JWT_SECRET: must be at least 32 bytes",
        "DATA_ENCRYPTION_KEYS",
        "WEBSOCKET_ENDPOINT",
        "CORS_ALLOWED_ORIGINS: required",
        "DATABASE_URL or SPRING_DATASOURCE_URL",
    ):
        assert name in text


@pytest.mark.parametrize(
    "spec, message",
    [
        ("k1:" + "QUJD", "must decode to 32 bytes"),
        ("bad id!:" + generate_key_spec().split(":", 1)[1], "key id"),
        (generate_key_spec("a") + "," + generate_key_spec("a"), "unique"),
    ],
)
def test_encryption_keys_are_validated(spec, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({**GOOD, "DATA_ENCRYPTION_KEYS": spec})


def test_redis_url_carries_password_and_database():
    settings = Settings.from_env({**GOOD, "REDIS_HOST": "r", "REDIS_PASSWORD": "p/w", "REDIS_DATABASE": "11"})
    assert settings.redis_url == "redis://:p%2Fw@r:6379/11"


def test_readme_documents_every_variable():
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", readme, flags=re.M))
    assert {v.name for v in VARS} <= documented


def test_serve_refuses_to_start_naming_the_missing_settings():
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x"}
    result = subprocess.run(
        [sys.executable, "-m", "app", "serve"], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 2
    for name in ("JWT_SECRET", "DATA_ENCRYPTION_KEYS", "CORS_ALLOWED_ORIGINS"):
        assert name in result.stderr
