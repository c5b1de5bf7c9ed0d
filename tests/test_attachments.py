"""Attachments over REST and Socket.IO: who may download (RBAC), limits by size and by content,
storage (the local directory, and S3 through moto's standalone server), deletion with a ticket,
retention, and a chat message carrying a file to the other party."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import io
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image

from app.clock import FrozenClock
from app.config import Settings
from app.context import AppContext, open_context
from app.services import attachments as attachment_service
from chat_support import Cast, for_session, make_agent, new_department
from helpers import TICKETS, create_for, create_ticket, execute, fetch, fetchval, problem

pytest_plugins = ["chat_fixtures"]
API = "/api/v1/attachments"


# ------------------------------------------------------------------ files


def png(size: tuple[int, int] = (640, 480), color: str = "orange") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)
HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(range(256)) * 4


def form(data: bytes, filename: str = "shot.png", content_type: str = "image/png", field: str = "file") -> FormData:
    body = FormData()
    body.add_field(field, data, filename=filename, content_type=content_type)
    return body


async def upload(
    client: TestClient, headers: dict, data: bytes, filename: str = "shot.png", content_type: str = "image/png"
) -> dict:
    response = await client.post(API, data=form(data, filename, content_type), headers=headers)
    assert response.status == 201, await response.text()
    assert response.headers["Location"].endswith(f"/{(body := await response.json())['id']}")
    return body


async def stored_row(ctx: AppContext, attachment_id: str) -> dict | None:
    rows = await fetch(ctx, "SELECT * FROM attachments WHERE id = $1", uuid.UUID(attachment_id))
    return dict(rows[0]) if rows else None


# ------------------------------------------------------------------ upload and download


async def test_image_upload_is_sniffed_checksummed_and_previewed(client, users, ctx):
    _, headers = users.new("customer")
    data = png()
    body = await upload(client, headers, data, filename="../../etc/screen shot.PNG", content_type="text/html")
    assert body["content_type"] == "image/png"  # from the content, not the declared type
    assert "/" not in body["name"] and body["name"].endswith("shot.PNG")
    assert body["size"] == len(data)
    import hashlib

    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    row = await stored_row(ctx, body["id"])
    assert row["sha256"] == body["sha256"] and row["message_id"] is None
    assert (Path(ctx.settings.attachment_storage_dir) / row["storage_key"]).read_bytes() == data

    response = await client.get(f"{API}/{body['id']}/content", headers=headers)
    assert response.status == 200
    assert await response.read() == data
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["Content-Disposition"].startswith("inline;")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]

    preview = await client.get(body["thumbnail_url"])  # a signed link: no token needed
    assert preview.status == 200 and preview.headers["Content-Type"] == "image/png"
    with Image.open(io.BytesIO(await preview.read())) as image:
        assert max(image.size) <= 320 and image.size[0] == 320


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\shot.png", "shot.png"),
        ("bad\x00\x1bname.pdf", "badname.pdf"),
        ("", "file"),
        ("..", "file"),
        ("a" * 300 + ".png", "a" * 251 + ".png"),
    ],
)
def test_file_names_lose_paths_and_control_characters(raw, clean):
    assert attachment_service.clean_filename(raw) == clean


async def test_pdf_and_text_are_downloads_never_inline(client, users):
    _, headers = users.new("customer")
    pdf = await upload(client, headers, PDF, "invoice.pdf", "application/pdf")
    assert pdf["content_type"] == "application/pdf" and pdf["thumbnail_url"] is None
    response = await client.get(pdf["url"])
    assert response.status == 200 and await response.read() == PDF
    assert response.headers["Content-Disposition"].startswith("attachment;")
    text = await upload(client, headers, "Grüße, order 123\n".encode(), "notes.txt", "text/plain")
    response = await client.get(text["url"])
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["Content-Disposition"] == "attachment; filename=\"notes.txt\"; filename*=UTF-8''notes.txt"


async def test_signed_links_are_checked(client, users):
    _, headers = users.new("customer")
    body = await upload(client, headers, png())
    url = body["url"]
    tampered = re.sub(r"sig=[^&]+", "sig=AAAA", url)
    await problem(await client.get(tampered), 401)
    expires = int(re.search(r"expires=(\d+)", url).group(1))
    await problem(await client.get(url.replace(f"expires={expires}", f"expires={expires + 60}")), 401)
    other = re.sub(r"/attachments/[^/]+/", f"/attachments/{uuid.uuid4()}/", url)
    await problem(await client.get(other), 401)  # a signature names its own file
    await problem(await client.get(f"{API}/{body['id']}/content"), 401)  # neither link nor token


async def test_expired_link_is_refused(client, settings, ctx, users):
    _, headers = users.new("customer")
    body = await upload(client, headers, png())
    ttl = settings.attachment_url_ttl_seconds
    later = FrozenClock(
        dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=ttl + attachment_service.link_step(ttl) + 1)
    )
    async with _client(settings, dataclasses.replace(ctx, clock=later)) as shifted:
        detail = (await problem(await shifted.get(body["url"]), 401))["detail"]
        assert "expired" in detail
        fresh = await (await shifted.get(f"{API}/{body['id']}", headers=headers)).json()
        assert (await shifted.get(fresh["url"])).status == 200  # the details give a fresh link


# ------------------------------------------------------------------ who may download


async def test_customer_cannot_fetch_another_customers_file(client, users):
    _, owner = users.new("customer")
    _, stranger = users.new("customer")
    body = await upload(client, owner, png())
    await problem(await client.get(f"{API}/{body['id']}", headers=stranger), 404)
    await problem(await client.get(f"{API}/{body['id']}/content", headers=stranger), 404)
    await problem(await client.get(f"{API}/{body['id']}/thumbnail", headers=stranger), 404)


async def test_unreferenced_upload_belongs_to_its_uploader_only(client, users):
    _, owner = users.new("customer")
    _, admin = users.new("admin")
    body = await upload(client, owner, png())
    await problem(await client.get(f"{API}/{body['id']}/content", headers=admin), 404)
    assert (await client.get(f"{API}/{body['id']}", headers=owner)).status == 200


async def test_ticket_files_reach_the_ticket_parties_only(client, users):
    customer_id, customer = users.new("customer")
    agent_id, agent = users.new("agent")
    _, other_agent = users.new("agent")
    _, admin = users.new("admin")
    _, stranger = users.new("customer")
    ticket = await create_for(client, admin, customer_id, agent_id=str(agent_id))
    file = await upload(client, customer, PDF, "receipt.pdf", "application/pdf")
    response = await client.post(
        f"{TICKETS}/{ticket['id']}/messages", json={"attachments": [file["id"]]}, headers=customer
    )
    assert response.status == 201, await response.text()
    message = await response.json()
    assert message["message"] == ""  # a message may be files alone
    [sent] = message["attachments"]
    assert sent["id"] == file["id"] and sent["name"] == "receipt.pdf" and sent["url"]
    page = await (await client.get(f"{TICKETS}/{ticket['id']}/messages", headers=agent)).json()
    assert page["items"][0]["attachments"][0]["id"] == file["id"]
    for allowed in (customer, agent, admin):
        response = await client.get(f"{API}/{file['id']}/content", headers=allowed)
        assert response.status == 200 and await response.read() == PDF
    for refused in (stranger, other_agent):
        await problem(await client.get(f"{API}/{file['id']}/content", headers=refused), 404)


async def test_a_resent_ticket_reply_with_a_file_is_stored_once(client, users, ctx):
    """The widget resends a reply whose answer it never saw (a reload, a lost connection) with the
    same client_msg_id: the first message comes back (200), its file is not refused as taken."""
    customer_id, customer = users.new("customer")
    _, other = users.new("customer")
    _, admin = users.new("admin")
    ticket = await create_for(client, admin, customer_id)
    file = await upload(client, customer, PDF, "receipt.pdf", "application/pdf")
    url = f"{TICKETS}/{ticket['id']}/messages"
    reply = {"message": "Here", "attachments": [file["id"]], "client_msg_id": "widget-1"}
    first = await client.post(url, json=reply, headers=customer)
    assert first.status == 201, await first.text()
    again = await client.post(url, json=reply, headers=customer)
    assert again.status == 200, await again.text()
    assert await again.json() == await first.json()
    assert (await first.json())["client_msg_id"] == "widget-1"  # echoed in lists and pushes too
    assert again.headers["Location"] == first.headers["Location"]
    assert (
        await fetchval(ctx, "SELECT count(*) FROM ticket_messages WHERE ticket_id = $1", uuid.UUID(ticket["id"])) == 1
    )
    # The key is the sender's: someone else's reply with the same key is a message of its own.
    staff = await client.post(url, json={"message": "Thanks", "client_msg_id": "widget-1"}, headers=admin)
    assert staff.status == 201 and (await staff.json())["id"] != (await first.json())["id"]
    await problem(await client.post(url, json=reply, headers=other), 404)
    # A resend after the ticket was closed still answers with the stored message.
    await execute(ctx, "UPDATE support_tickets SET status = 'closed' WHERE id = $1", uuid.UUID(ticket["id"]))
    assert (await client.post(url, json=reply, headers=customer)).status == 200


async def test_internal_note_files_are_not_for_the_customer(client, users):
    customer_id, customer = users.new("customer")
    agent_id, agent = users.new("agent")
    _, admin = users.new("admin")
    ticket = await create_for(client, admin, customer_id, agent_id=str(agent_id))
    file = await upload(client, agent, png())
    response = await client.post(
        f"{TICKETS}/{ticket['id']}/messages",
        json={"message": "log", "attachments": [file["id"]], "is_internal": True},
        headers=agent,
    )
    assert response.status == 201
    await problem(await client.get(f"{API}/{file['id']}/content", headers=customer), 404)
    assert (await client.get(f"{API}/{file['id']}/content", headers=admin)).status == 200


async def test_referencing_someone_elses_upload_is_refused(client, users, ctx):
    _, owner = users.new("customer")
    _, thief = users.new("customer")
    file = await upload(client, owner, png())
    ticket = await create_ticket(client, thief)
    body = await problem(
        await client.post(
            f"{TICKETS}/{ticket['id']}/messages",
            json={"message": "mine now", "attachments": [file["id"]]},
            headers=thief,
        ),
        422,
    )
    assert "attachments" in body["errors"]
    row = await stored_row(ctx, file["id"])
    assert row["ticket_id"] is None and row["message_id"] is None
    assert (
        await fetchval(ctx, "SELECT count(*) FROM ticket_messages WHERE ticket_id = $1", uuid.UUID(ticket["id"])) == 0
    )


async def test_a_file_goes_with_one_message_only(client, users):
    _, customer = users.new("customer")
    first = await create_ticket(client, customer)
    second = await create_ticket(client, customer)
    file = await upload(client, customer, png())
    ok = await client.post(f"{TICKETS}/{first['id']}/messages", json={"attachments": [file["id"]]}, headers=customer)
    assert ok.status == 201
    await problem(
        await client.post(f"{TICKETS}/{second['id']}/messages", json={"attachments": [file["id"]]}, headers=customer),
        422,
    )


# ------------------------------------------------------------------ limits


async def test_oversized_upload_is_413(settings, ctx, users):
    _, headers = users.new("customer")
    small = dataclasses.replace(ctx, settings=dataclasses.replace(settings, attachment_max_bytes=4096))
    async with _client(settings, small) as client:
        body = await problem(
            await client.post(API, data=form(png((600, 600), "red") + b"\0" * 5000), headers=headers), 413
        )
        assert body["max_bytes"] == 4096 and "4 KB" in body["detail"]
        ok = await client.post(API, data=form(b"x" * 4096, "small.txt", "text/plain"), headers=headers)
        assert ok.status == 201


@pytest.mark.parametrize(
    ("data", "filename"),
    [
        (HTML, "cat.png"),
        (EXE, "setup.png"),
        (EXE, "report.pdf"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "logo.svg"),
        (b"\x89PNG\r\n\x1a\nnot really", "broken.png"),
    ],
)
async def test_disguised_files_are_415(client, users, data, filename):
    _, headers = users.new("customer")
    body = await problem(await client.post(API, data=form(data, filename), headers=headers), 415)
    assert "PNG" in body["detail"] or "image" in body["detail"]


async def test_bad_forms_are_422(client, users):
    _, headers = users.new("customer")
    body = await problem(await client.post(API, json={"file": "x"}, headers=headers), 422)
    assert "file" in body["errors"]
    body = await problem(await client.post(API, data=form(png(), field="picture"), headers=headers), 422)
    assert "picture" in body["errors"]
    empty = FormData()
    empty.add_field("note", "hello")
    await problem(await client.post(API, data=empty, headers=headers), 422)
    body = await problem(await client.post(API, data=form(b"", "empty.txt", "text/plain"), headers=headers), 422)
    assert "file" in body["errors"]
    await problem(await client.post(API, data=form(png()), headers={}), 401)


async def test_ticket_message_needs_text_or_files(client, users):
    _, headers = users.new("customer")
    ticket = await create_ticket(client, headers)
    body = await problem(
        await client.post(f"{TICKETS}/{ticket['id']}/messages", json={"attachments": []}, headers=headers), 422
    )
    assert "message" in body["errors"]
    body = await problem(
        await client.post(
            f"{TICKETS}/{ticket['id']}/messages", json={"message": "x", "attachments": ["nope"]}, headers=headers
        ),
        422,
    )
    assert "attachments" in body["errors"]


# ------------------------------------------------------------------ deletion, retention, audit


async def test_deleting_a_ticket_removes_its_files(client, users, ctx):
    customer_id, customer = users.new("customer")
    _, admin = users.new("admin")
    ticket = await create_for(client, admin, customer_id)
    file = await upload(client, customer, png())
    row = await stored_row(ctx, file["id"])
    path = Path(ctx.settings.attachment_storage_dir) / row["storage_key"]
    thumb = Path(ctx.settings.attachment_storage_dir) / row["thumbnail_key"]
    response = await client.post(
        f"{TICKETS}/{ticket['id']}/messages", json={"attachments": [file["id"]]}, headers=customer
    )
    assert response.status == 201
    assert (await client.delete(f"{TICKETS}/{ticket['id']}", headers=admin)).status == 204
    assert await stored_row(ctx, file["id"]) is None
    assert not path.exists() and not thumb.exists()
    types = [
        r["type"]
        for r in await fetch(ctx, "SELECT type FROM support_events WHERE entity_id = $1 ORDER BY position", file["id"])
    ]
    assert types == ["attachment.uploaded", "attachment.deleted"]
    actions = [
        r["action"]
        for r in await fetch(ctx, "SELECT action FROM audit_log WHERE entity_id = $1 ORDER BY occurred_at", file["id"])
    ]
    assert actions == ["attachment.upload", "attachment.delete"]


async def test_retention_removes_old_unreferenced_uploads_and_orphans(client, users, ctx):
    customer_id, customer = users.new("customer")
    _, admin = users.new("admin")
    old = await upload(client, customer, png())
    fresh = await upload(client, customer, b"still writing\n", "draft.txt", "text/plain")
    kept = await upload(client, customer, PDF, "kept.pdf", "application/pdf")
    ticket = await create_for(client, admin, customer_id)
    assert (
        await client.post(f"{TICKETS}/{ticket['id']}/messages", json={"attachments": [kept["id"]]}, headers=customer)
    ).status == 201
    await execute(
        ctx,
        "UPDATE attachments SET created_at = created_at - interval '25 hours' WHERE id = ANY($1)",
        [uuid.UUID(old["id"]), uuid.UUID(kept["id"])],
    )
    old_path = Path(ctx.settings.attachment_storage_dir) / (await stored_row(ctx, old["id"]))["storage_key"]
    # A ticket removed behind the service's back (its foreign key clears): its file is an orphan.
    orphan = await upload(client, customer, png((50, 50)))
    gone = await create_for(client, admin, customer_id)
    assert (
        await client.post(f"{TICKETS}/{gone['id']}/messages", json={"attachments": [orphan["id"]]}, headers=customer)
    ).status == 201
    await execute(ctx, "DELETE FROM support_tickets WHERE id = $1", uuid.UUID(gone["id"]))

    await attachment_service.retention(ctx)
    assert await stored_row(ctx, old["id"]) is None and not old_path.exists()
    assert await stored_row(ctx, orphan["id"]) is None
    assert await stored_row(ctx, fresh["id"]) is not None
    assert await stored_row(ctx, kept["id"]) is not None
    reasons = {
        r["entity_id"]: r["payload"]["reason"]
        for r in await fetch(
            ctx,
            "SELECT entity_id, payload FROM support_events WHERE type = 'attachment.deleted' AND entity_id = ANY($1)",
            [old["id"], orphan["id"]],
        )
    }
    assert reasons == {old["id"]: "unreferenced", orphan["id"]: "parent_deleted"}


async def test_uploader_may_withdraw_an_unsent_upload(client, users, ctx):
    _, customer = users.new("customer")
    _, stranger = users.new("customer")
    file = await upload(client, customer, png())
    await problem(await client.delete(f"{API}/{file['id']}", headers=stranger), 404)
    assert (await client.delete(f"{API}/{file['id']}", headers=customer)).status == 204
    assert await stored_row(ctx, file["id"]) is None
    await problem(await client.get(f"{API}/{file['id']}", headers=customer), 404)


# ------------------------------------------------------------------ S3 (moto's standalone server)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3 stand-in as a real HTTP server on a free port, for as long as the module runs."""
    port = _free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 30
    while True:  # the port accepting connections is the event waited for
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            break
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("moto server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)
    log.close()


async def test_s3_storage_keeps_serves_and_removes_files(moto_server, test_env, users):
    bucket = f"support-{uuid.uuid4().hex[:8]}"
    settings = Settings.from_env(
        {
            **test_env,
            "ATTACHMENT_S3_BUCKET": bucket,
            "ATTACHMENT_S3_ENDPOINT_URL": moto_server,
            "ATTACHMENT_S3_ACCESS_KEY_ID": "test",
            "ATTACHMENT_S3_SECRET_ACCESS_KEY": "test",
            "ATTACHMENT_S3_PREFIX": "files/",
        }
    )
    from aiobotocore.session import get_session

    async with get_session().create_client(
        "s3", region_name="us-east-1", endpoint_url=moto_server, aws_access_key_id="test", aws_secret_access_key="test"
    ) as s3:
        await s3.create_bucket(Bucket=bucket)
        async with open_context(settings) as s3_ctx, _client(settings, s3_ctx) as client:
            assert s3_ctx.files.name == "s3"
            customer_id, customer = users.new("customer")
            _, admin = users.new("admin")
            data = png()
            file = await upload(client, customer, data)
            row = await stored_row(s3_ctx, file["id"])
            listed = await s3.list_objects_v2(Bucket=bucket, Prefix="files/")
            assert {o["Key"] for o in listed["Contents"]} == {
                f"files/{row['storage_key']}",
                f"files/{row['thumbnail_key']}",
            }
            stored = await s3.get_object(Bucket=bucket, Key=f"files/{row['storage_key']}")
            async with stored["Body"] as stream:
                assert await stream.read() == data
            response = await client.get(file["url"])
            assert response.status == 200 and await response.read() == data

            ticket = await create_for(client, admin, customer_id)
            assert (
                await client.post(
                    f"{TICKETS}/{ticket['id']}/messages", json={"attachments": [file["id"]]}, headers=customer
                )
            ).status == 201
            assert (await client.delete(f"{TICKETS}/{ticket['id']}", headers=admin)).status == 204
            listed = await s3.list_objects_v2(Bucket=bucket, Prefix="files/")
            assert listed.get("KeyCount", 0) == 0


# ------------------------------------------------------------------ chat over Socket.IO


async def test_chat_message_with_a_file_reaches_the_other_party(cast: Cast, chat_server, ctx):
    department = new_department()
    agent = await cast.staff(await make_agent(ctx, department))
    customer = await cast.customer()
    session = (await customer.ok("chat:start", {"department": department}))["session"]
    await agent.expect("chat:assigned", for_session(session["id"]))
    data = png((200, 100), "navy")
    async with aiohttp.ClientSession(chat_server.url) as http:
        auth = {"Authorization": f"Bearer {customer.token}"}
        async with http.post(API, data=form(data), headers=auth) as response:
            assert response.status == 201
            file = await response.json()
        sent = (
            await customer.ok(
                "chat:message", {"session_id": session["id"], "client_msg_id": "with-file", "attachments": [file["id"]]}
            )
        )["message"]
        assert sent["message"] == "" and sent["attachments"][0]["id"] == file["id"]
        pushed = await agent.expect("chat:message", for_session(session["id"]))
        [item] = pushed["attachments"]
        assert item["name"] == "shot.png" and item["content_type"] == "image/png" and item["thumbnail_url"]
        async with http.get(item["url"]) as response:  # the agent's link works without a token
            assert response.status == 200 and await response.read() == data
        agent_auth = {"Authorization": f"Bearer {agent.token}"}
        async with http.get(f"{API}/{file['id']}/content", headers=agent_auth) as response:
            assert response.status == 200
        # A resend returns the same message; another customer's upload is refused.
        again = (
            await customer.ok(
                "chat:message", {"session_id": session["id"], "client_msg_id": "with-file", "attachments": [file["id"]]}
            )
        )["message"]
        assert again["id"] == sent["id"]
        other = await cast.customer()
        async with http.post(API, data=form(png()), headers={"Authorization": f"Bearer {other.token}"}) as response:
            foreign = await response.json()
        error = await customer.fails(
            "chat:message",
            {"session_id": session["id"], "client_msg_id": "foreign", "attachments": [foreign["id"]]},
            "validation_failed",
        )
        assert "attachments" in error["details"]
        synced = await agent.ok("chat:sync", {"session_id": session["id"], "after_seq": 0})
        assert [m["attachments"][0]["id"] for m in synced["messages"] if m["attachments"]] == [file["id"]]
    await customer.fails("chat:message", {"session_id": session["id"], "client_msg_id": "nothing"}, "validation_failed")


# ------------------------------------------------------------------ helpers


@contextlib.asynccontextmanager
async def _client(settings: Settings, ctx: AppContext) -> AsyncIterator[TestClient]:
    from app.server import build_rest

    async with TestClient(TestServer(build_rest(ctx.settings, context=ctx))) as client:
        yield client
