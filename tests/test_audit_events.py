"""Every audited command writes its event in the same transaction (app/security/audit.py
``record_change``): the audit row and the event share the transaction's ``now()``, so an audit
row's ``occurred_at`` equal to its event's ``created_at`` shows they were written together. These
are the writes that used to record an audit row without the event, or pair them by hand."""

from __future__ import annotations

import uuid

from app.auth import Principal, RequestMeta
from app.services import attachments, chat
from chat_support import Cast, ChatServer, Peer, for_session, make_agent
from helpers import fetch

pytest_plugins = ["chat_fixtures"]


async def recorded(ctx, action: str, entity_id: object, event_type: str, event_entity_id: object = None) -> dict:
    """The one audit row ``action`` about ``entity_id`` and its event, written in one transaction."""
    entity_id, event_entity_id = str(entity_id), str(event_entity_id or entity_id)
    audits = await fetch(ctx, "SELECT * FROM audit_log WHERE action = $1 AND entity_id = $2", action, entity_id)
    events = await fetch(
        ctx,
        "SELECT * FROM support_events WHERE type = $1 AND entity_id = $2",
        event_type,
        event_entity_id,
    )
    assert len(audits) == 1, audits
    assert len(events) == 1, events
    assert audits[0]["occurred_at"] == events[0]["created_at"]  # one transaction
    assert events[0]["actor_id"] == audits[0]["actor_id"]
    return dict(events[0])


async def routed_chat(cast: Cast, ctx, department: str) -> tuple[Peer, Peer, dict]:
    """An online agent, and a customer's chat that routing gave them."""
    agent = await cast.staff(await make_agent(ctx, department))
    customer = await cast.customer()
    session = (await customer.ok("chat:start", {"department": department}))["session"]
    await agent.expect("chat:assigned", for_session(session["id"]))
    return agent, customer, session


async def test_accepting_a_chat_records_the_assignment_event_with_the_audit_row(
    cast: Cast, chat_server: ChatServer, department: str
) -> None:
    agent = await cast.staff(await make_agent(chat_server.ctx, department), status="away")
    customer = await cast.customer()
    session = (await customer.ok("chat:start", {"department": department}))["session"]
    await agent.ok("chat:accept", {"session_id": session["id"]})
    event = await recorded(chat_server.ctx, "chat.accept", session["id"], "chat.assigned")
    assert event["actor_id"] == agent.user_id
    assert event["payload"]["accepted"] is True and event["payload"]["agent_id"] == str(agent.user_id)


async def test_routing_assigns_with_an_event_and_no_audit_row(
    cast: Cast, chat_server: ChatServer, department: str
) -> None:
    """Routing's own assignment is not a command: an event, nobody's audit row."""
    _, _, session = await routed_chat(cast, chat_server.ctx, department)
    events = await fetch(
        chat_server.ctx, "SELECT * FROM support_events WHERE type = 'chat.assigned' AND entity_id = $1", session["id"]
    )
    assert [e["payload"]["accepted"] for e in events] == [False] and events[0]["actor_id"] is None
    audits = await fetch(
        chat_server.ctx, "SELECT * FROM audit_log WHERE action = 'chat.accept' AND entity_id = $1", session["id"]
    )
    assert audits == []


async def test_changing_a_chats_details_records_chat_updated(
    cast: Cast, chat_server: ChatServer, department: str
) -> None:
    ctx = chat_server.ctx
    customer = await cast.customer()
    session = (await customer.ok("chat:start", {"department": department}))["session"]
    principal = Principal(user_id=customer.user_id, role="customer")
    await chat.update_session(ctx, principal, RequestMeta(), session["id"], {"subject": "Late check-out"})
    event = await recorded(ctx, "chat.update", session["id"], "chat.updated")
    assert event["payload"]["changed"] == ["subject"]
    assert "Late check-out" not in str(event["payload"])  # free text stays out of events


async def test_rating_a_chat_records_feedback_created_with_the_chats_audit_row(
    cast: Cast, chat_server: ChatServer, department: str
) -> None:
    _, customer, session = await routed_chat(cast, chat_server.ctx, department)
    await customer.ok("chat:end", {"session_id": session["id"]})
    rated = await customer.ok("chat:rate", {"session_id": session["id"], "rating": 5})
    event = await recorded(chat_server.ctx, "chat.rate", session["id"], "feedback.created", rated["feedback_id"])
    assert event["entity_type"] == "feedback"
    assert event["payload"]["session_id"] == session["id"] and event["payload"]["rating"] == 5


async def test_attachment_upload_and_delete_record_their_events_with_the_audit_rows(chat_server: ChatServer) -> None:
    ctx = chat_server.ctx
    principal = Principal(user_id=uuid.uuid4(), role="customer")
    stored = await attachments.upload(ctx, principal, RequestMeta(), "note.txt", b"hello, a plain text file")
    uploaded = await recorded(ctx, "attachment.upload", stored["id"], "attachment.uploaded")
    assert uploaded["payload"]["uploader_id"] == str(principal.user_id)
    await attachments.delete(ctx, principal, RequestMeta(), stored["id"])
    deleted = await recorded(ctx, "attachment.delete", stored["id"], "attachment.deleted")
    assert deleted["payload"]["reason"]
