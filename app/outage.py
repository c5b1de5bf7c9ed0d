"""Which failures mean "a dependency is down" (answered ``unavailable`` / 503 / UNAVAILABLE with a
retry hint), as opposed to a bug (``internal``). One list for every transport."""

from __future__ import annotations

import asyncio

import asyncpg
import redis.exceptions

RETRY_AFTER_MS = 2000  # what clients are told to wait while a dependency is down

OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # refused / reset connections
    asyncio.TimeoutError,  # a pool or a connect that did not answer in time
    asyncpg.PostgresConnectionError,  # the connection broke
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, starting up (57P01, 57P03)
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections
    redis.exceptions.ConnectionError,  # includes BusyLoadingError
    redis.exceptions.TimeoutError,
)
_INTERFACE_OUTAGE = ("connection is closed", "pool is closing", "pool is closed", "connection was closed")


def is_outage(exc: BaseException) -> bool:
    if isinstance(exc, OUTAGE_ERRORS):
        return True
    if isinstance(exc, asyncpg.exceptions.InternalClientError):
        # a pooled connection the server terminated mid-operation (seen on a PostgreSQL restart:
        # "cannot switch to state 12; another operation (2) is in progress")
        return "another operation" in str(exc)
    if isinstance(exc, asyncpg.InterfaceError):
        return any(text in str(exc) for text in _INTERFACE_OUTAGE)
    return False
