"""`support-service` (or `python -m app`): serve, dev, migrate, reindex, token."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import sys
import uuid
from typing import Any
from pathlib import Path

from app import logs
from app.auth import ROLES as TOKEN_ROLES
from app.config import ConfigError, Settings
from app.migrate import MigrationError, check_up_to_date, migrate

log = logging.getLogger("support")


def _fail(message: str) -> int:
    print(f"support-service: {message}", file=sys.stderr)
    return 2


def _prepare_schema(settings: Settings, *, always: bool = False) -> None:
    if always or settings.ddl_auto == "update":
        applied = asyncio.run(migrate(settings.dsn))
        if applied:
            log.info("migrations applied", extra={"migrations": applied})
    elif settings.ddl_auto == "validate":
        asyncio.run(check_up_to_date(settings.dsn))


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = Settings.from_env(os.environ, require=())
    logs.configure(settings.log_level)
    applied = asyncio.run(migrate(settings.dsn))
    print(json.dumps({"applied": applied}))
    return 0


def cmd_reindex(args: argparse.Namespace) -> int:
    """Rebuild the KB search index from PostgreSQL (Elasticsearch; PostgreSQL's needs nothing)."""
    settings = Settings.from_env(os.environ, require=("JWT_SECRET", "DATA_ENCRYPTION_KEYS"))
    logs.configure(settings.log_level)
    from app.search.reindex import run as reindex

    print(json.dumps(asyncio.run(reindex(settings))))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    settings = Settings.from_env(os.environ)
    logs.configure(settings.log_level)
    _prepare_schema(settings)
    from app.server import run

    run(settings)
    return 0


DEV_SECRETS = "dev-secrets.json"
DEV_HOST = "127.0.0.1"  # dev prints admin tokens: only this machine reaches it unless --host says so


def _dev_secrets(data_dir: Path) -> dict[str, str]:
    """Secrets generated on the first dev run and reused after (old data stays readable)."""
    from app.security.encryption import generate_key_spec

    path = data_dir / DEV_SECRETS
    if path.exists():
        return json.loads(path.read_text())
    values = {"JWT_SECRET": secrets.token_urlsafe(48), "DATA_ENCRYPTION_KEYS": generate_key_spec("dev1")}
    data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values))
    path.chmod(0o600)
    return values


def cmd_dev(args: argparse.Namespace) -> int:
    args.host = args.host.strip().strip("[]")
    data_dir = Path(args.data_dir).resolve()
    env = dict(os.environ)
    env.setdefault("SPRING_PROFILES_ACTIVE", "dev")
    env.setdefault("CORS_ALLOWED_ORIGINS", "*")
    env.setdefault("ATTACHMENT_STORAGE_DIR", str(data_dir / "attachments"))
    for key, value in _dev_secrets(data_dir).items():
        env.setdefault(key, value)
    servers: list[Any] = []
    try:
        if not (env.get("DATABASE_URL") or env.get("SPRING_DATASOURCE_URL")):
            from app.embedded import EmbeddedPostgres

            servers.append(EmbeddedPostgres(data_dir / "postgres"))
            env["DATABASE_URL"] = servers[-1].start()
        if not env.get("REDIS_HOST"):
            from app.embedded import EmbeddedRedis

            servers.append(EmbeddedRedis(data_dir / "redis"))
            url = servers[-1].start()
            host_port = url.removeprefix("redis://").split("/")[0]
            env["REDIS_HOST"], env["REDIS_PORT"] = host_port.split(":")
            env["REDIS_DATABASE"] = "0"
        settings = Settings.from_env(env)
        logs.configure(settings.log_level)
        _prepare_schema(settings, always=True)
        from app.server import run

        run(settings, host=args.host, on_started=lambda ctx: _dev_banner(ctx, settings, args.host))
    finally:
        for server in reversed(servers):
            server.stop()
    return 0


def browse_host(host: str) -> str:
    """The host to put in the banner's URLs for a server bound to ``host``: a wildcard address
    (all interfaces) is reached from this machine as 127.0.0.1; IPv6 goes in brackets."""
    if host in ("", "0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


async def _dev_banner(ctx, settings: Settings, host: str = DEV_HOST) -> str:
    from app import demo
    from app.auth import issue_token

    loaded = await demo.load(ctx)
    base = f"http://{browse_host(host)}:{settings.server_port}"
    assert settings.jwt_secret  # dev mode makes one
    tokens = {
        role: issue_token(settings.jwt_secret, user_id, role, ttl=settings.jwt_expiration, name=name, email=email)
        for role, (user_id, name, email) in demo.USERS.items()
    }
    lines = [
        "",
        "Support Service is running in dev mode" + (" (demo data loaded)" if loaded else ""),
        "",
        f"  Widget demo   {base}/demo#token={tokens['customer']}",
        f"  Console       {base}/console#token={tokens['agent']}&status=online",
        f"  Supervisor    {base}/console#token={tokens['supervisor']}",
        f"  API docs      {base}/api/docs",
        f"  OpenAPI       {base}/api/openapi.json",
        f"  Health        {base}/health/ready",
        f"  Metrics       {base}/metrics",
        f"  gRPC          {browse_host(host)}:{settings.grpc_server_port}",
        "",
        f"Tokens (paste as 'Authorization: Bearer <token>'; valid {settings.jwt_expiration} s):",
    ]
    lines += [f"  {role:<11} {token}" for role, token in tokens.items()]
    lines += [
        "",
        f"Try: curl -H 'Authorization: Bearer <customer token>' {base}/api/v1/tickets",
        "More tokens (another customer or agent): support-service token --role customer --name 'Second Guest'",
        "",
        "Press Ctrl-C to stop.",
        "",
    ]
    return "\n".join(lines)


def token_secret(env: dict[str, str] | os._Environ, data_dir: Path) -> str | None:
    """JWT_SECRET from the environment, else the one `dev` generated under ``data_dir``."""
    if env.get("JWT_SECRET", "").strip():
        return env["JWT_SECRET"].strip()
    path = data_dir / DEV_SECRETS
    if path.exists():
        return json.loads(path.read_text()).get("JWT_SECRET")
    return None


def cmd_token(args: argparse.Namespace) -> int:
    """Print a token signed as the Auth Service would sign it (HS256 with the configured secret)."""
    from app.auth import issue_token

    if args.role not in TOKEN_ROLES:
        return _fail(f"token: --role must be one of {', '.join(TOKEN_ROLES)}, not {args.role!r}")
    try:
        user_id = uuid.UUID(args.user) if args.user else uuid.uuid4()
    except ValueError:
        return _fail(f"token: --user must be a UUID, not {args.user!r}")
    if args.ttl < 1:
        return _fail("token: --ttl must be at least 1 second")
    data_dir = Path(args.data_dir).resolve()
    secret = token_secret(os.environ, data_dir)
    if not secret:
        return _fail(
            f"token: JWT_SECRET is not set and there is no {data_dir / DEV_SECRETS} "
            "(run `support-service dev` once, or set JWT_SECRET)"
        )
    print(issue_token(secret, user_id, args.role, ttl=args.ttl, name=args.name, email=args.email))
    return 0


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="support-service", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the service from environment variables (production)")
    dev = sub.add_parser("dev", help="run with embedded PostgreSQL and Redis and demo data")
    dev.add_argument("--data-dir", default=".data", help="where the embedded servers keep their data")
    dev.add_argument(
        "--host",
        default=DEV_HOST,
        help=f"address to listen on (HTTP and gRPC); default {DEV_HOST}, 0.0.0.0 for every interface",
    )
    sub.add_parser("migrate", help="apply pending database migrations")
    sub.add_parser("reindex", help="rebuild the knowledge-base search index from the database")
    token = sub.add_parser("token", help="print a signed token (JWT_SECRET, else dev's secret under --data-dir)")
    token.add_argument("--role", required=True, help=f"one of {', '.join(TOKEN_ROLES)}")
    token.add_argument("--user", help="the user's UUID (the token's sub); a new one when left out")
    token.add_argument("--name", help="the name claim")
    token.add_argument("--email", help="the email claim")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    token.add_argument("--data-dir", default=".data", help="where `dev` keeps dev-secrets.json")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    handlers = {"serve": cmd_serve, "dev": cmd_dev, "migrate": cmd_migrate, "reindex": cmd_reindex, "token": cmd_token}
    try:
        return handlers[args.command](args)
    except ConfigError as exc:
        return _fail(str(exc))
    except MigrationError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
