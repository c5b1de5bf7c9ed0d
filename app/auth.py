"""JWT validation and the roles every transport shares.

Tokens come from the Auth Service: HS256 with ``JWT_SECRET`` (RS256 with ``JWT_PUBLIC_KEY`` when
set). Claims: ``sub`` (user UUID), ``role``, ``exp``; optional ``name`` and ``email``.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import Any

import jwt

from app.errors import Forbidden, Unauthorized

ROLES = ("customer", "agent", "supervisor", "admin", "service")
STAFF = frozenset({"agent", "supervisor", "admin"})
OVERSEERS = frozenset({"supervisor", "admin"})  # see everything


@dataclasses.dataclass(frozen=True)
class Principal:
    user_id: uuid.UUID
    role: str
    name: str | None = None
    email: str | None = None
    expires_at: float | None = dataclasses.field(default=None, compare=False)  # the token's exp (epoch s)

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF

    @property
    def sees_all(self) -> bool:
        return self.role in OVERSEERS

    @property
    def sender_type(self) -> str:
        """What a message written by this caller is (chat and ticket messages): customers write as
        ``customer``, services as ``bot``, staff as ``agent``."""
        if self.role == "customer":
            return "customer"
        return "bot" if self.role == "service" else "agent"


def is_party(principal: Principal, row: Any) -> bool:
    """Whether the caller is a party to a ticket or chat (a row with ``customer_id`` and
    ``agent_id``): supervisors, admins and services always; a customer to their own; an agent to
    what is assigned to them."""
    if principal.sees_all or principal.role == "service":
        return True
    if principal.role == "customer":
        return row["customer_id"] == principal.user_id
    return row["agent_id"] == principal.user_id


@dataclasses.dataclass(frozen=True)
class RequestMeta:
    """Who is calling from where, for the audit log."""

    request_id: str | None = None
    ip: str | None = None
    transport: str = "rest"


class TokenVerifier:
    def __init__(self, secret: str | None, public_key: str | None = None):
        self._keys: list[tuple[Any, str]] = []
        if secret:
            self._keys.append((secret, "HS256"))
        if public_key:
            self._keys.append((public_key, "RS256"))
        if not self._keys:
            raise ValueError("JWT_SECRET or JWT_PUBLIC_KEY is required")

    def verify(self, token: str | None) -> Principal:
        if not token:
            raise Unauthorized("Missing bearer token")
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError as exc:
            raise Unauthorized("Malformed token") from exc
        key = next((k for k, alg in self._keys if alg == algorithm), None)
        if key is None:
            raise Unauthorized(f"Token algorithm {algorithm!r} is not accepted")
        try:
            claims = jwt.decode(token, key, algorithms=[str(algorithm)], options={"require": ["sub", "exp"]})
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("Token expired") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"Invalid token: {exc}") from exc
        try:
            user_id = uuid.UUID(str(claims["sub"]))
        except ValueError as exc:
            raise Unauthorized("Token subject is not a UUID") from exc
        role = claims.get("role")
        if role not in ROLES:
            raise Forbidden(f"Unknown role {role!r}")
        return Principal(user_id, role, claims.get("name"), claims.get("email"), expires_at=float(claims["exp"]))


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def issue_token(
    secret: str,
    user_id: uuid.UUID | str,
    role: str,
    *,
    ttl: int = 3600,
    name: str | None = None,
    email: str | None = None,
) -> str:
    """Mint an HS256 token as the Auth Service would (dev mode and tests)."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": str(user_id), "role": role, "iat": now, "exp": now + ttl}
    if name:
        claims["name"] = name
    if email:
        claims["email"] = email
    return jwt.encode(claims, secret, algorithm="HS256")


def require_role(principal: Principal, *roles: str) -> None:
    if principal.role not in roles:
        raise Forbidden(f"Role {principal.role!r} may not do this")
