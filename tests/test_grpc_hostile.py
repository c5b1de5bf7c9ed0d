"""gRPC input no service may see: strings with bad UTF-8 (a lone surrogate as a client's encoder
writes it) are INVALID_ARGUMENT, never INTERNAL; and who may call is decided before what was sent."""

from __future__ import annotations

import grpc
import pytest

from support_stubs.support.v1 import support_pb2 as pb

pytest_plugins = ["grpc_fixtures"]

# CreateTicketRequest{subject: "a" U+D800 "b"} with the surrogate's WTF-8 bytes
BAD_UTF8_TICKET = b"\x0a\x05a\xed\xa0\x80b"


async def test_a_string_with_a_lone_surrogate_is_invalid_argument(stubs, callers):
    _, metadata = callers.new("customer")
    raw = stubs.channel.unary_unary("/support.v1.SupportService/CreateTicket")  # bytes in, bytes out
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await raw(BAD_UTF8_TICKET, metadata=metadata)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()


async def test_an_undecodable_request_without_a_token_is_unauthenticated(stubs):
    raw = stubs.channel.unary_unary("/support.v1.SupportService/CreateTicket")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await raw(BAD_UTF8_TICKET)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_customer_asking_for_analytics_is_denied_before_validation(stubs, callers):
    _, metadata = callers.new("customer")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stubs.support.GetSupportAnalytics(pb.GetSupportAnalyticsRequest(), metadata=metadata)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
