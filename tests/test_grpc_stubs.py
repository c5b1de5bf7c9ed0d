"""The gRPC contract: committed stubs match the .proto files, the services carry SEED.md's RPCs,
and the server options honour the GRPC_* settings."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from support_stubs import BOOKING_PROTO_PACKAGE, GEN_DIR, PROTO_PACKAGE, USER_PROTO_PACKAGE, generate
from support_stubs.booking.v1 import booking_pb2
from support_stubs.support.v1 import chat_pb2, events_pb2, support_pb2
from support_stubs.user.v1 import user_pb2
from grpc_server.server import server_options

SEED_RPCS = {
    "SupportService": {
        "CreateTicket",
        "GetTicket",
        "UpdateTicket",
        "DeleteTicket",
        "ListTickets",
        "EscalateTicket",
        "CreateChatSession",
        "GetChatSession",
        "SendMessage",
        "GetMessages",
        "CreateArticle",
        "GetArticle",
        "UpdateArticle",
        "DeleteArticle",
        "SearchArticles",
        "CreateFeedback",
        "GetFeedback",
        "GetFeedbackAnalytics",
        "GetSupportAnalytics",
    },
    "SupportEventService": {"PublishSupportEvent", "SubscribeToSupportEvents"},
    "ChatService": {"StreamChat"},
}


def test_committed_stubs_are_what_the_protos_generate(tmp_path: Path) -> None:
    generate(tmp_path)
    fresh = {
        p.relative_to(tmp_path): p.read_text()
        for top in ("support", "user", "booking")
        for p in (tmp_path / top).rglob("*.py*")
    }
    committed = {
        p.relative_to(GEN_DIR): p.read_text()
        for top in ("support", "user", "booking")
        for p in (GEN_DIR / top).rglob("*.py*")
    }
    assert set(fresh) == set(committed), "stub files differ: run `python -m support_stubs`"
    stale = sorted(str(name) for name in fresh if fresh[name] != committed[name])
    assert not stale, f"stale stubs {stale}: run `python -m support_stubs` and commit the result"
    assert (Path(PROTO_PACKAGE) / "support_pb2_grpc.py") in fresh
    assert (Path(USER_PROTO_PACKAGE) / "user_pb2_grpc.py") in fresh
    assert (Path(BOOKING_PROTO_PACKAGE) / "booking_pb2_grpc.py") in fresh


def test_the_assumed_user_service_contract() -> None:
    service = user_pb2.DESCRIPTOR.services_by_name["UserService"]
    assert service.full_name == "user.v1.UserService"
    assert {m.name for m in service.methods} == {"GetUser"}
    assert list(user_pb2.GetUserRequest.DESCRIPTOR.fields_by_name) == ["id"]
    assert list(user_pb2.User.DESCRIPTOR.fields_by_name) == ["id", "email", "name", "role"]


def test_the_assumed_booking_service_contract() -> None:
    service = booking_pb2.DESCRIPTOR.services_by_name["BookingService"]
    assert service.full_name == "booking.v1.BookingService"
    assert {m.name for m in service.methods} == {"ListCustomerBookings", "GetBooking"}
    assert list(booking_pb2.ListCustomerBookingsRequest.DESCRIPTOR.fields_by_name) == ["customer_id", "limit"]
    assert list(booking_pb2.ListCustomerBookingsResponse.DESCRIPTOR.fields_by_name) == ["bookings"]
    assert list(booking_pb2.GetBookingRequest.DESCRIPTOR.fields_by_name) == ["id"]
    assert list(booking_pb2.Booking.DESCRIPTOR.fields_by_name) == [
        "id",
        "reference",
        "customer_id",
        "status",
        "property_name",
        "check_in",
        "check_out",
        "total_amount",
        "currency",
        "created_at",
    ]


def test_the_services_have_the_rpcs_of_the_seed() -> None:
    services = {
        **support_pb2.DESCRIPTOR.services_by_name,
        **events_pb2.DESCRIPTOR.services_by_name,
        **chat_pb2.DESCRIPTOR.services_by_name,
    }
    assert {name: {m.name for m in service.methods} for name, service in services.items()} == SEED_RPCS
    assert all(s.full_name.startswith("support.v1.") for s in services.values())
    subscribe = services["SupportEventService"].methods_by_name["SubscribeToSupportEvents"]
    stream = services["ChatService"].methods_by_name["StreamChat"]
    assert subscribe.server_streaming and not subscribe.client_streaming
    assert stream.server_streaming and stream.client_streaming


def test_requests_naming_one_resource_use_id() -> None:
    for name in (
        "GetTicketRequest",
        "UpdateTicketRequest",
        "DeleteTicketRequest",
        "EscalateTicketRequest",
        "GetChatSessionRequest",
        "GetArticleRequest",
        "UpdateArticleRequest",
        "DeleteArticleRequest",
        "GetFeedbackRequest",
    ):
        assert "id" in support_pb2.DESCRIPTOR.message_types_by_name[name].fields_by_name, name
    update = support_pb2.UpdateTicketRequest.DESCRIPTOR.fields_by_name
    assert all(update[f].has_presence for f in ("subject", "priority", "status", "agent_id", "tags"))


def test_server_options_honour_the_grpc_settings(settings) -> None:
    tuned = dataclasses.replace(
        settings,
        grpc_max_receive_message_size=1234,
        grpc_max_send_message_size=5678,
        grpc_keepalive_time_ms=20_000,
        grpc_keepalive_timeout_ms=3_000,
    )
    options = dict(server_options(tuned))
    assert options["grpc.max_receive_message_length"] == 1234
    assert options["grpc.max_send_message_length"] == 5678
    assert options["grpc.keepalive_time_ms"] == 20_000
    assert options["grpc.keepalive_timeout_ms"] == 3_000
    assert options["grpc.so_reuseport"] == 0
