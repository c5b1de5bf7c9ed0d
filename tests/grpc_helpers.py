"""Helpers of the gRPC, events and Kafka test modules (fixtures are in ``grpc_fixtures``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status


async def fails(call: Any, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    """Await a call (or a stream read) that must end with ``code``; returns the error."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, (caught.value.code(), caught.value.details())
    return caught.value


def details_of(error: grpc.aio.AioRpcError, kind: type) -> Any:
    """One rich detail (google.rpc.*) of a failed call."""
    status = rpc_status.from_call(error)
    assert status is not None, "no rich status"
    for detail in status.details:
        if detail.Is(kind.DESCRIPTOR):
            found = kind()
            detail.Unpack(found)
            return found
    raise AssertionError(f"no {kind.__name__} in {status}")


def violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    """The BadRequest field violations of an INVALID_ARGUMENT, field -> description."""
    request = details_of(error, error_details_pb2.BadRequest)
    return {v.field: v.description for v in request.field_violations}


# Generous: a write transaction running long anywhere in the PostgreSQL cluster (another test run,
# a benchmark) holds event delivery back until it ends (the xmin rule); normally these take ms.
PATIENCE = 30.0


async def until(condition: Callable[[], bool], timeout: float = PATIENCE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)  # test-side wait for a server-side state change


async def until_equal(value: Callable[[], Awaitable[Any]], expected: Any, timeout: float = PATIENCE) -> None:
    deadline = time.monotonic() + timeout
    while (current := await value()) != expected:
        assert time.monotonic() < deadline, f"still {current!r}, not {expected!r}"
        await asyncio.sleep(0.05)  # test-side wait for a server-side state change
