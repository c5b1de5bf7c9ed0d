"""/api/v1/attachments: upload (multipart/form-data), metadata, downloads and withdrawal.

Downloads are served so that no browser ever runs them: the sniffed type, ``nosniff``, a CSP
of ``default-src 'none'`` with ``sandbox``, and ``Content-Disposition: attachment`` for every
type but images (which may be shown inline).
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import BodyPartReader, web

from app.errors import ValidationFailed
from app.schemas import attachments as s
from app.services import attachments
from rest.common import authenticate, context, created, json_response, meta, no_content, path_uuid
from rest.openapi import api_doc

routes = web.RouteTableDef()
TAGS = ["Attachments"]
CHUNK = 64 * 1024
UPLOAD_RULES = (
    "One part named `file`. At most ATTACHMENT_MAX_BYTES (default 10 MB; larger is a 413). The type is "
    "found from the content, never the name or the declared type: PNG, JPEG, GIF and WebP images, PDF and "
    "UTF-8 plain text are accepted, anything else (an HTML page or a program renamed .png...) is a 415. "
    "Images get a thumbnail. The upload is the uploader's alone until a chat message (`attachments` of "
    "`chat:message` or `POST /chat/sessions/{id}/messages`) or a ticket message names it; uploads no message "
    "takes are removed after ATTACHMENT_UNREFERENCED_HOURS."
)
DOWNLOAD_RULES = (
    "With a bearer token (the uploader, or anyone who may see the chat or ticket the file was sent in; "
    "customers never get the files of internal notes), or with the signed link of `url` / `thumbnail_url` "
    "(`expires` and `sig`) and no token. Anything else is a 404 (or a 401 for a bad or expired link)."
)


def _form_error(message: str, field: str = "file") -> ValidationFailed:
    return ValidationFailed("The upload form is not valid", details={field: [message]})


async def _read_upload(request: web.Request, limit: int) -> tuple[str | None, bytes]:
    """The one file part of a multipart form, read in chunks and refused as soon as it passes
    ``limit`` (the whole body is never buffered beyond that)."""
    ctx = context(request)
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        raise attachments.too_large(ctx)
    if not request.content_type.startswith("multipart/form-data"):
        raise _form_error("Send the file as multipart/form-data with one part named file.")
    try:
        reader = await request.multipart()
        filename, data = None, None
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise _form_error("Nested multipart bodies are not accepted.")
            if part.name != "file":
                raise _form_error("Unknown field.", part.name or "form")
            if data is not None:
                raise _form_error("Send one file per upload.")
            filename = part.filename
            buffer = bytearray()
            while chunk := await part.read_chunk(CHUNK):
                buffer += chunk
                if len(buffer) > limit:
                    raise attachments.too_large(ctx)
            data = bytes(buffer)
    except ConnectionResetError:  # the client went away mid-upload: nobody to answer, nothing to log
        raise _form_error("The upload was interrupted.") from None
    except (ValueError, AssertionError, RuntimeError) as exc:  # a malformed multipart body
        raise _form_error(f"The multipart body could not be read: {exc}") from None
    if data is None:
        raise _form_error("Missing data for required field.")
    return filename, data


@routes.post("/api/v1/attachments")
@api_doc(
    summary="Upload a file to attach to a chat or ticket message",
    tags=TAGS,
    body=s.UploadSchema,
    body_media_type="multipart/form-data",
    response=s.AttachmentSchema,
    status=201,
    errors=(413, 415, 422),
    description=UPLOAD_RULES,
)
async def upload(request: web.Request) -> web.Response:
    principal = authenticate(request)
    ctx = context(request)
    filename, data = await _read_upload(request, ctx.settings.attachment_max_bytes)
    attachment = await attachments.upload(ctx, principal, meta(request), filename, data)
    return created(attachment, f"/api/v1/attachments/{attachment['id']}")


@routes.get("/api/v1/attachments/{id}")
@api_doc(
    summary="An attachment's details, with fresh signed links", tags=TAGS, response=s.AttachmentSchema, errors=(404,)
)
async def get_attachment(request: web.Request) -> web.Response:
    principal = authenticate(request)
    attachment_id = path_uuid(request, what="Attachment")
    return json_response(await attachments.get(context(request), principal, attachment_id))


@routes.delete("/api/v1/attachments/{id}")
@api_doc(
    summary="Withdraw an upload no message has taken (its uploader), or delete a file (supervisors, admins)",
    tags=TAGS,
    status=204,
    errors=(404,),
)
async def delete_attachment(request: web.Request) -> web.Response:
    principal = authenticate(request)
    attachment_id = path_uuid(request, what="Attachment")
    await attachments.delete(context(request), principal, meta(request), attachment_id)
    return no_content()


async def _download(request: web.Request, variant: str) -> web.Response:
    attachment_id = path_uuid(request, what="Attachment")
    signed = "sig" in request.query or "expires" in request.query
    principal = None if signed else authenticate(request)
    row, data = await attachments.read(
        context(request),
        attachment_id,
        variant,
        principal=principal,
        expires=request.query.get("expires"),
        sig=request.query.get("sig"),
    )
    content_type = "image/png" if variant == "thumbnail" else row["content_type"]
    inline = content_type in attachments.IMAGE_TYPES
    name = row["filename"] if variant == "content" else f"preview-{row['filename']}.png"
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\' else "_" for ch in name)
    headers = {
        "Content-Disposition": f'{"inline" if inline else "attachment"}; filename="{fallback}"; '
        f"filename*=UTF-8''{quote(name, safe='')}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cross-Origin-Resource-Policy": "cross-origin",  # the widget shows images on customers' sites
        "Cache-Control": "private, max-age=300",
        "ETag": f'"{row["sha256"]}-{variant}"',
    }
    charset = "utf-8" if content_type == "text/plain" else None
    return web.Response(body=data, content_type=content_type, charset=charset, headers=headers)


@routes.get("/api/v1/attachments/{id}/content")
@api_doc(
    summary="Download an attachment",
    tags=TAGS,
    query=s.SignedLinkQuery,
    binary_response="*/*",
    errors=(404,),
    description=DOWNLOAD_RULES,
)
async def download(request: web.Request) -> web.Response:
    return await _download(request, "content")


@routes.get("/api/v1/attachments/{id}/thumbnail")
@api_doc(
    summary="An image attachment's preview (PNG, at most 320×320)",
    tags=TAGS,
    query=s.SignedLinkQuery,
    binary_response="image/png",
    errors=(404,),
    description=DOWNLOAD_RULES,
)
async def thumbnail(request: web.Request) -> web.Response:
    return await _download(request, "thumbnail")
