"""Signing agents in (README "Console sign-in"): the `token` command, dev mode's listening
address, the CONSOLE_* settings and what the console page learns from them. The browser side
(redirect to the Auth Service, renewal, "sign in again") is in test_console_signin_browser.py."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import jwt
import pytest
from aiohttp import web

from app import cli
from app.config import ConfigError, Settings
from app.security.encryption import generate_key_spec
from app.server import run
from rest.static import PAGE_CSP, setup_static

ROOT = Path(__file__).resolve().parent.parent
SECRET = "a-test-secret-that-is-long-enough-" + uuid.uuid4().hex
GOOD = {
    "DATABASE_URL": "postgresql://u@db:5432/support",
    "JWT_SECRET": "s" * 32,
    "DATA_ENCRYPTION_KEYS": generate_key_spec("k1"),
    "CORS_ALLOWED_ORIGINS": "https://a.example",
}


def support_service(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k != "JWT_SECRET"}
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        env={**base, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def decode(token: str, secret: str = SECRET) -> dict:
    return jwt.decode(token, secret, algorithms=["HS256"])


# ------------------------------------------------------------------ support-service token


def test_token_command_prints_a_token_signed_with_jwt_secret(tmp_path):
    user = uuid.uuid4()
    result = support_service(
        "token",
        "--role",
        "agent",
        "--user",
        str(user),
        "--name",
        "Nia Agent",
        "--email",
        "nia@example.com",
        "--ttl",
        "600",
        env={"JWT_SECRET": SECRET},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    claims = decode(result.stdout.strip())
    assert claims["sub"] == str(user) and claims["role"] == "agent"
    assert claims["name"] == "Nia Agent" and claims["email"] == "nia@example.com"
    assert 590 <= claims["exp"] - time.time() <= 600
    assert result.stdout.count("\n") == 1  # the token alone, ready for $(...)


def test_token_command_defaults_to_a_new_user_and_an_hour(tmp_path):
    first = support_service("token", "--role", "customer", env={"JWT_SECRET": SECRET}, cwd=tmp_path)
    second = support_service("token", "--role", "customer", env={"JWT_SECRET": SECRET}, cwd=tmp_path)
    a, b = decode(first.stdout.strip()), decode(second.stdout.strip())
    assert uuid.UUID(a["sub"]) != uuid.UUID(b["sub"])
    assert a["exp"] - a["iat"] == 3600
    assert "name" not in a and "email" not in a


def test_token_command_uses_the_secret_dev_mode_generated(tmp_path):
    data_dir = tmp_path / "data"
    dev_secret = cli._dev_secrets(data_dir)["JWT_SECRET"]  # what `support-service dev` writes
    result = support_service("token", "--role", "supervisor", "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    assert decode(result.stdout.strip(), dev_secret)["role"] == "supervisor"
    # JWT_SECRET wins over dev's file (an operator's shell)
    result = support_service("token", "--role", "admin", "--data-dir", str(data_dir), env={"JWT_SECRET": SECRET})
    assert decode(result.stdout.strip())["role"] == "admin"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--role", "root"], "--role must be one of customer, agent, supervisor, admin, service, not 'root'"),
        (["--role", "agent", "--user", "alice"], "--user must be a UUID, not 'alice'"),
        (["--role", "agent", "--ttl", "0"], "--ttl must be at least 1 second"),
    ],
)
def test_token_command_refuses_bad_arguments_with_exit_2(tmp_path, args, message):
    result = support_service("token", *args, env={"JWT_SECRET": SECRET}, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and result.stdout == ""


def test_token_command_without_any_secret_says_where_it_looked(tmp_path):
    result = support_service("token", "--role", "agent", "--data-dir", str(tmp_path / "none"), cwd=tmp_path)
    assert result.returncode == 2
    assert "JWT_SECRET is not set" in result.stderr and "dev-secrets.json" in result.stderr


# ------------------------------------------------------------------ dev mode's address


def test_dev_listens_on_loopback_unless_told_otherwise():
    assert cli.parser().parse_args(["dev"]).host == "127.0.0.1"
    assert cli.parser().parse_args(["dev", "--host", "0.0.0.0"]).host == "0.0.0.0"
    # production keeps listening on every interface
    assert inspect.signature(run).parameters["host"].default == "0.0.0.0"


@pytest.mark.parametrize(
    "host, shown",
    [
        ("127.0.0.1", "127.0.0.1"),
        ("0.0.0.0", "127.0.0.1"),
        ("::", "127.0.0.1"),
        ("192.168.1.20", "192.168.1.20"),
        ("::1", "[::1]"),
        ("support.local", "support.local"),
    ],
)
def test_dev_banner_urls_follow_the_host(host, shown):
    assert cli.browse_host(host) == shown


def test_dev_passes_its_host_to_the_server(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr("app.server.run", lambda settings, host, on_started: seen.update(host=host))
    monkeypatch.setattr(cli, "_prepare_schema", lambda settings, always=False: None)
    monkeypatch.setattr(cli.logs, "configure", lambda level: None)
    env = {"DATABASE_URL": "postgresql://u@127.0.0.1:1/x", "REDIS_HOST": "127.0.0.1"}
    monkeypatch.setattr(cli.os, "environ", env)
    assert cli.main(["dev", "--data-dir", str(tmp_path)]) == 0
    assert seen == {"host": "127.0.0.1"}
    assert cli.main(["dev", "--data-dir", str(tmp_path), "--host", "[::]"]) == 0
    assert seen == {"host": "::"}


# ------------------------------------------------------------------ settings and the console page


def test_console_urls_are_optional_and_validated():
    settings = Settings.from_env(GOOD)
    assert settings.console_login_url is None and settings.console_refresh_url is None
    settings = Settings.from_env(
        {
            **GOOD,
            "CONSOLE_LOGIN_URL": "https://auth.example.com/login?app=support",
            "CONSOLE_REFRESH_URL": "/auth/refresh",
        }
    )
    assert settings.console_login_url == "https://auth.example.com/login?app=support"
    assert settings.console_refresh_url == "/auth/refresh"
    for bad in (
        "javascript:alert(1)",
        "//auth.example.com/login",
        "auth.example.com/login",
        "https://auth.example.com/login#x",
        "ftp://auth.example.com/",
    ):
        with pytest.raises(ConfigError, match="CONSOLE_LOGIN_URL: expected an http"):
            Settings.from_env({**GOOD, "CONSOLE_LOGIN_URL": bad})


async def console_app(aiohttp_client, env: dict[str, str]):
    app = web.Application()
    setup_static(app, Settings.from_env({**GOOD, **env}))
    return await aiohttp_client(app)


async def test_console_config_tells_the_page_about_the_auth_service(aiohttp_client):
    client = await console_app(
        aiohttp_client,
        {
            "CONSOLE_LOGIN_URL": "https://auth.example.com/login",
            "CONSOLE_REFRESH_URL": "https://auth.example.com:8443/token/refresh",
        },
    )
    response = await client.get("/console/config.json")
    assert response.status == 200 and response.headers["Cache-Control"] == "no-cache"
    assert await response.json() == {
        "login_url": "https://auth.example.com/login",
        "refresh_url": "https://auth.example.com:8443/token/refresh",
        "return_to_param": "return_to",
    }
    page = await client.get("/console")
    policy = page.headers["Content-Security-Policy"]
    assert "connect-src 'self' https://auth.example.com:8443;" in policy  # the refresh call, nothing wider
    assert policy.replace(" https://auth.example.com:8443", "") == PAGE_CSP


async def test_console_without_auth_service_keeps_the_paste_form_and_strict_policy(aiohttp_client):
    client = await console_app(aiohttp_client, {"CONSOLE_REFRESH_URL": "/auth/refresh"})
    assert await (await client.get("/console/config.json")).json() == {
        "login_url": None,
        "refresh_url": "/auth/refresh",
        "return_to_param": "return_to",
    }
    assert (await client.get("/console")).headers["Content-Security-Policy"] == PAGE_CSP
