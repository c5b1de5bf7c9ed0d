"""Attachments: files in chat and ticket messages.

An upload is checked (size, then type by its content, never by its name), given a SHA-256
checksum and, for images, a thumbnail; its bytes go to the configured store (:mod:`app.storage`)
and its metadata to PostgreSQL. Until a message references it, an upload belongs to its uploader
alone; from then on whoever may see that chat or ticket may download it (customers never see the
files of internal notes). Downloads go through short-lived signed links (HMAC of a key derived
from the JWT secret) or the authenticated route. Deleting a ticket removes its files; the
retention duty removes uploads no message took and files whose chat or ticket is gone.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import json
import logging
import math
import re
import unicodedata
import uuid
from typing import Any

import asyncpg

from app.auth import Principal, RequestMeta, is_party
from app.context import AppContext
from app.errors import NotFound, PayloadTooLarge, Unauthorized, UnsupportedMediaType, ValidationFailed
from app.security import audit
from app.services.ticket_store import can_read
from app.storage import BlobMissing

log = logging.getLogger(__name__)

IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
ALLOWED_TYPES = (*IMAGE_TYPES, "application/pdf", "text/plain")
MAX_PER_MESSAGE = 10
THUMBNAIL_SIZE = (320, 320)
MAX_IMAGE_PIXELS = 40_000_000  # larger images are refused before their pixels are decoded
VARIANTS = ("content", "thumbnail")
RETENTION_BATCH = 500
API = "/api/v1/attachments"

# Text that a browser would take for markup (the WHATWG sniffing patterns, plus XML and SVG):
# never accepted as "plain text", so an HTML page renamed .txt or .png is refused.
_MARKUP = re.compile(
    rb"^\s*<(?:!doctype\s+html|html|head|script|iframe|h1|div|font|table|a|style|title|b|body|"
    rb"br|p|!--|\?xml|svg)[\s>/]",
    re.I,
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


# ---------------------------------------------------------------- content checks


def sniff(data: bytes) -> str:
    """The type of ``data`` by its first bytes; anything but the allowed types is a 415."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    if _is_plain_text(data):
        return "text/plain"
    raise UnsupportedMediaType(
        "Only images (PNG, JPEG, GIF, WebP), PDF and plain text files can be attached",
        details={"allowed": list(ALLOWED_TYPES)},
    )


def _is_plain_text(data: bytes) -> bool:
    body = data.removeprefix(b"\xef\xbb\xbf")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return not _CONTROL.search(text) and not _MARKUP.match(body)


def _thumbnail(data: bytes) -> bytes:
    """A PNG preview at most THUMBNAIL_SIZE; refuses what does not decode as an image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise UnsupportedMediaType(f"Images may have at most {MAX_IMAGE_PIXELS:,} pixels")
            image.seek(0)
            image.load()
            frame = image.convert("RGBA" if "A" in image.getbands() or "transparency" in image.info else "RGB")
    except UnsupportedMediaType:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise UnsupportedMediaType("The file looks like an image but cannot be read as one") from exc
    frame.thumbnail(THUMBNAIL_SIZE)
    out = io.BytesIO()
    frame.save(out, "PNG", optimize=False)
    return out.getvalue()


def clean_filename(raw: str | None) -> str:
    """The last path component, without control characters, at most 255 characters (keeping the
    extension); never empty."""
    name = unicodedata.normalize("NFC", (raw or "").replace("\\", "/").rsplit("/", 1)[-1])
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip().strip(".")
    if len(name) > 255:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 254 - len(ext)] + "." + ext) if dot and len(ext) < 16 else name[:255]
    return name or "file"


# ---------------------------------------------------------------- signed links


def _signing_key(ctx: AppContext) -> bytes:
    settings = ctx.settings
    secret = (settings.jwt_secret or "").encode() or (settings.data_encryption_keys or (("", b""),))[0][1]
    return hmac.new(secret, b"support-service attachment links v1", hashlib.sha256).digest()


def _signature(ctx: AppContext, attachment_id: Any, variant: str, expires: int) -> str:
    mac = hmac.new(_signing_key(ctx), f"{attachment_id}:{variant}:{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def link_step(ttl: int) -> int:
    """Expiry times are rounded up to a multiple of this, so links made within one step are the
    same and browsers can reuse what they cached."""
    return max(60, ttl // 6)


def signed_url(ctx: AppContext, attachment_id: Any, variant: str = "content") -> str:
    """A link valid for at least ATTACHMENT_URL_TTL_SECONDS (and at most a sixth longer)."""
    ttl = ctx.settings.attachment_url_ttl_seconds
    step = link_step(ttl)
    expires = math.ceil((ctx.clock.now().timestamp() + ttl) / step) * step
    return f"{API}/{attachment_id}/{variant}?expires={expires}&sig={_signature(ctx, attachment_id, variant, expires)}"


def check_signature(
    ctx: AppContext, attachment_id: uuid.UUID, variant: str, expires: str | None, sig: str | None
) -> None:
    if not expires or not sig or not expires.isdigit():
        raise Unauthorized("A signed link or a token is required")
    if int(expires) < ctx.clock.now().timestamp():
        raise Unauthorized("The link has expired; reload the conversation for a fresh one")
    if not hmac.compare_digest(sig, _signature(ctx, attachment_id, variant, int(expires))):
        raise Unauthorized("The link's signature is not valid")


# ---------------------------------------------------------------- presentation


def reference(row: Any) -> dict:
    """What a message stores about one of its files (jsonb): enough to show it without a query."""
    return {
        "id": str(row["id"]),
        "name": row["filename"],
        "content_type": row["content_type"],
        "size": row["size_bytes"],
        "thumbnail": row["thumbnail_key"] is not None,
    }


def present_refs(ctx: AppContext, refs: Any) -> list[dict] | None:
    """A message's files with fresh signed links (``url``, and ``thumbnail_url`` for images).
    Link-only attachments of older ticket messages (``{name, url}``) are shown as they are."""
    if not refs:
        return refs
    items = []
    for ref in refs:
        if isinstance(ref, dict) and "id" in ref and "url" not in ref:
            item = {
                "id": ref["id"],
                "name": ref["name"],
                "content_type": ref["content_type"],
                "size": ref["size"],
                "url": signed_url(ctx, ref["id"]),
                "thumbnail_url": signed_url(ctx, ref["id"], "thumbnail") if ref.get("thumbnail") else None,
            }
            items.append(item)
        else:
            items.append(ref)
    return items


def present(ctx: AppContext, row: Any) -> dict:
    return {
        "id": row["id"],
        "name": row["filename"],
        "content_type": row["content_type"],
        "size": row["size_bytes"],
        "sha256": row["sha256"],
        "uploader_id": row["uploader_id"],
        "session_id": row["session_id"] if row["message_id"] else None,
        "ticket_id": row["ticket_id"],
        "message_id": row["message_id"],
        "created_at": row["created_at"],
        "url": signed_url(ctx, row["id"]),
        "thumbnail_url": signed_url(ctx, row["id"], "thumbnail") if row["thumbnail_key"] else None,
    }


# ---------------------------------------------------------------- upload


async def upload(ctx: AppContext, principal: Principal, meta: RequestMeta, filename: str | None, data: bytes) -> dict:
    if not data:
        raise ValidationFailed("The file is empty", details={"file": ["The file is empty."]})
    if len(data) > ctx.settings.attachment_max_bytes:
        raise too_large(ctx)
    content_type = sniff(data)
    thumbnail = await asyncio.to_thread(_thumbnail, data) if content_type in IMAGE_TYPES else None
    attachment_id = uuid.uuid4()
    now = ctx.clock.now()
    key = f"attachments/{now:%Y/%m}/{attachment_id}"
    thumbnail_key = f"{key}.thumb.png" if thumbnail else None
    await ctx.files.put(key, data, content_type)
    if thumbnail and thumbnail_key:
        await ctx.files.put(thumbnail_key, thumbnail, "image/png")
    checksum = hashlib.sha256(data).hexdigest()
    try:
        async with ctx.db.transaction() as conn:
            row = await ctx.db.q.insert_attachment(
                conn,
                id=attachment_id,
                uploader_id=principal.user_id,
                uploader_role=principal.role,
                filename=clean_filename(filename),
                content_type=content_type,
                size_bytes=len(data),
                sha256=checksum,
                storage_key=key,
                thumbnail_key=thumbnail_key,
                now=now,
            )
            details = {"content_type": content_type, "size": len(data), "sha256": checksum}
            uploaded = {"attachment_id": attachment_id, "uploader_id": principal.user_id, **details}
            await audit.record_change(
                conn,
                ctx.events,
                principal,
                meta,
                "attachment.upload",
                "attachment",
                attachment_id,
                details,
                [("attachment.uploaded", uploaded)],
            )
    except BaseException:
        await _forget_bytes(ctx, key, thumbnail_key)
        raise
    return present(ctx, row)


def too_large(ctx: AppContext) -> PayloadTooLarge:
    limit = ctx.settings.attachment_max_bytes
    return PayloadTooLarge(f"Files may be at most {_human_size(limit)}", details={"max_bytes": limit})


def _human_size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):g} MB"
    return f"{size / 1024:g} KB" if size >= 1024 else f"{size} bytes"


# ---------------------------------------------------------------- access


async def _can_see(ctx: AppContext, conn: asyncpg.Connection, principal: Principal, row: Any) -> bool:
    if row["uploader_id"] == principal.user_id:
        return True
    if row["message_id"] is None:
        return False
    if row["session_id"] is not None:
        session = await ctx.db.q.get_session(conn, id=row["session_id"])
        return session is not None and is_party(principal, session)
    if row["ticket_id"] is not None:
        if row["is_internal"] and not (principal.is_staff or principal.role == "service"):
            return False
        ticket = await ctx.db.q.get_ticket(conn, id=row["ticket_id"])
        return ticket is not None and await can_read(ctx, conn, principal, dict(ticket))
    return False


async def get(ctx: AppContext, principal: Principal, attachment_id: uuid.UUID) -> dict:
    async with ctx.db.connection() as conn:
        row = await ctx.db.q.get_attachment(conn, id=attachment_id)
        if row is None or not await _can_see(ctx, conn, principal, row):
            raise NotFound("Attachment not found")
    return present(ctx, row)


async def read(
    ctx: AppContext,
    attachment_id: uuid.UUID,
    variant: str,
    *,
    principal: Principal | None = None,
    expires: str | None = None,
    sig: str | None = None,
) -> tuple[Any, bytes]:
    """The attachment row and the bytes of ``variant``: for a caller who may see it, or for the
    holder of a valid signed link."""
    if principal is None:
        check_signature(ctx, attachment_id, variant, expires, sig)
    async with ctx.db.connection() as conn:
        row = await ctx.db.q.get_attachment(conn, id=attachment_id)
        if row is None or (principal is not None and not await _can_see(ctx, conn, principal, row)):
            raise NotFound("Attachment not found")
    key = row["storage_key"] if variant == "content" else row["thumbnail_key"]
    if key is None:
        raise NotFound("This attachment has no preview")
    try:
        return row, await ctx.files.get(key)
    except BlobMissing:
        log.error("attachment bytes missing", extra={"attachment_id": str(attachment_id), "key": key})
        raise NotFound("Attachment not found") from None


# ---------------------------------------------------------------- references from messages


def _ids(ids: list[Any] | None) -> list[uuid.UUID]:
    return list(dict.fromkeys(uuid.UUID(str(i)) for i in ids or ()))


def _refused(missing: set[uuid.UUID]) -> ValidationFailed:
    return ValidationFailed(
        "Attach only files you uploaded and have not sent elsewhere",
        details={"attachments": [f"Unknown attachment {i}" for i in sorted(map(str, missing))]},
    )


async def claim_for_chat(
    ctx: AppContext, principal: Principal, session_id: uuid.UUID, ids: list[Any] | None
) -> str | None:
    """Before a chat message is written: the sender's own uploads are tied to the chat; returns
    the message's ``attachments`` (JSON text) or None. Someone else's upload is refused."""
    wanted = _ids(ids)
    if not wanted:
        return None
    async with ctx.db.transaction() as conn:
        rows = await ctx.db.q.claim_for_session(conn, ids=wanted, uploader_id=principal.user_id, session_id=session_id)
        missing = set(wanted) - {r["id"] for r in rows}
        if missing:
            raise _refused(missing)
    by_id = {r["id"]: r for r in rows}
    return json.dumps([reference(by_id[i]) for i in wanted])


async def bind_chat_message(ctx: AppContext, message: Any) -> None:
    refs = message.get("attachments") if hasattr(message, "get") else None
    if refs:
        async with ctx.db.connection() as conn:
            await ctx.db.q.bind_to_chat_message(
                conn,
                ids=[uuid.UUID(r["id"]) for r in refs],
                session_id=message["session_id"],
                message_id=message["id"],
                now=ctx.clock.now(),
            )


async def bind_ticket_message(
    ctx: AppContext,
    conn: asyncpg.Connection,
    principal: Principal,
    ticket_id: uuid.UUID,
    message_id: uuid.UUID,
    ids: list[Any],
    internal: bool,
) -> list[dict]:
    """In the ticket message's transaction: the sender's own unreferenced uploads become the
    message's files (their references are returned); anything else refuses the message."""
    wanted = _ids(ids)
    rows = await ctx.db.q.bind_to_ticket_message(
        conn,
        ids=wanted,
        uploader_id=principal.user_id,
        ticket_id=ticket_id,
        message_id=message_id,
        is_internal=internal,
        now=ctx.clock.now(),
    )
    missing = set(wanted) - {r["id"] for r in rows}
    if missing:
        raise _refused(missing)
    by_id = {r["id"]: r for r in rows}
    return [reference(by_id[i]) for i in wanted]


# ---------------------------------------------------------------- deletion and retention


async def delete(ctx: AppContext, principal: Principal, meta: RequestMeta, attachment_id: uuid.UUID) -> None:
    """The uploader may withdraw an upload no message has taken; supervisors and admins any file."""
    async with ctx.db.transaction() as conn:
        row = await ctx.db.q.get_attachment(conn, id=attachment_id)
        mine = row is not None and row["uploader_id"] == principal.user_id and row["message_id"] is None
        if row is None or not (mine or (principal.sees_all and await _can_see(ctx, conn, principal, row))):
            raise NotFound("Attachment not found")
        await ctx.db.q.mark_attachment_deleted(conn, id=attachment_id, now=ctx.clock.now())
        await _record_deleted(ctx, conn, principal, meta, row, "withdrawn" if mine else "deleted")
    await purge(ctx)


async def on_ticket_deleted(
    ctx: AppContext, conn: asyncpg.Connection, principal: Principal, meta: RequestMeta, ticket_id: uuid.UUID
) -> int:
    """In the ticket delete's transaction: its files are marked for removal; call :func:`purge`
    after the commit (a failed purge is finished by the retention duty)."""
    rows = await ctx.db.q.mark_ticket_attachments_deleted(conn, ticket_id=ticket_id, now=ctx.clock.now())
    for row in rows:
        await _record_deleted(ctx, conn, principal, meta, row, "ticket_deleted", ticket_id=ticket_id)
    return len(rows)


async def _record_deleted(
    ctx: AppContext,
    conn: asyncpg.Connection,
    principal: Principal | None,
    meta: RequestMeta,
    row: Any,
    reason: str,
    **extra: Any,
) -> None:
    payload = {"attachment_id": row["id"], "uploader_id": row["uploader_id"], "reason": reason, **extra}
    await audit.record_change(
        conn,
        ctx.events,
        principal,
        meta,
        "attachment.delete",
        "attachment",
        row["id"],
        {"reason": reason},
        [("attachment.deleted", payload)],
    )


RETENTION_SECONDS = 3600.0  # the attachment-retention duty's period (app/duties.py)


async def retention(ctx: AppContext) -> dict:
    """The retention duty: uploads no message took within ATTACHMENT_UNREFERENCED_HOURS and
    files whose chat or ticket is gone are marked, then every marked file is removed."""
    from datetime import timedelta

    now = ctx.clock.now()
    cutoff = now - timedelta(hours=ctx.settings.attachment_unreferenced_hours)
    meta = RequestMeta(transport="retention")
    async with ctx.db.transaction() as conn:
        rows = await ctx.db.q.mark_expired_attachments(conn, unreferenced_before=cutoff, now=now, limit=RETENTION_BATCH)
        for row in rows:
            reason = "unreferenced" if row["message_id"] is None else "parent_deleted"
            await _record_deleted(ctx, conn, None, meta, row, reason)
    return {"marked": len(rows), "purged": await purge(ctx)}


async def purge(ctx: AppContext) -> int:
    """Remove the bytes of marked attachments, then their rows; a store error leaves the row for
    the next run."""
    purged = 0
    while True:
        async with ctx.db.connection() as conn:
            rows = await ctx.db.q.attachments_to_purge(conn, limit=RETENTION_BATCH)
        if not rows:
            return purged
        progress = 0
        for row in rows:
            try:
                await _forget_bytes(ctx, row["storage_key"], row["thumbnail_key"], strict=True)
            except Exception:
                log.warning(
                    "attachment purge failed; retried by the next retention run",
                    extra={"attachment_id": str(row["id"])},
                    exc_info=True,
                )
                continue
            async with ctx.db.connection() as conn:
                await ctx.db.q.purge_attachment(conn, id=row["id"])
            progress += 1
        purged += progress
        if progress < len(rows) or len(rows) < RETENTION_BATCH:
            return purged


async def _forget_bytes(ctx: AppContext, key: str, thumbnail_key: str | None, *, strict: bool = False) -> None:
    for k in (key, thumbnail_key):
        if k is None:
            continue
        try:
            await ctx.files.delete(k)
        except Exception:
            if strict:
                raise
            log.warning("could not remove stored bytes", extra={"key": k}, exc_info=True)
