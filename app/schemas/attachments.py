"""Attachment payloads: the uploaded file's view, and how messages refer to files."""

from __future__ import annotations

import uuid
from typing import Any

from marshmallow import Schema, ValidationError, fields

MAX_PER_MESSAGE = 10
REFERENCE_HELP = (
    "Ids of files uploaded with `POST /api/v1/attachments` by the sender and not yet sent "
    "in another message (at most 10)"
)


class AttachmentSchema(Schema):
    id = fields.UUID()
    name = fields.String(
        metadata={"description": "The file name given at upload (path and control characters removed)"}
    )
    content_type = fields.String(
        metadata={
            "description": "Found from the content: image/png, image/jpeg, "
            "image/gif, image/webp, application/pdf or text/plain"
        }
    )
    size = fields.Integer()
    sha256 = fields.String()
    uploader_id = fields.UUID()
    session_id = fields.UUID(allow_none=True)
    ticket_id = fields.UUID(allow_none=True)
    message_id = fields.UUID(allow_none=True, metadata={"description": "null until a message references it"})
    created_at = fields.DateTime()
    url = fields.String(
        metadata={"description": "Signed download link, valid for ATTACHMENT_URL_TTL_SECONDS (a path on this server)"}
    )
    thumbnail_url = fields.String(allow_none=True, metadata={"description": "Signed link of an image's preview"})


class MessageAttachmentSchema(Schema):
    """A file as messages show it. Older ticket messages may carry link-only items ({name, url})."""

    id = fields.String()
    name = fields.String()
    content_type = fields.String()
    size = fields.Integer()
    url = fields.String()
    thumbnail_url = fields.String(allow_none=True)


class UploadSchema(Schema):
    file = fields.Raw(
        required=True,
        metadata={"type": "string", "format": "binary", "description": "The file (one part named `file`)"},
    )


ATTACHMENT_ID_DOC = {"type": "string", "format": "uuid"}


class AttachmentId(fields.Field):
    """An uploaded file's id (a UUID string)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["metadata"] = {**ATTACHMENT_ID_DOC, **kwargs.get("metadata", {})}
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        try:
            return str(uuid.UUID(str(value))) if isinstance(value, str) else self._bad()
        except ValueError:
            return self._bad()

    @staticmethod
    def _bad() -> str:
        raise ValidationError("Not a valid attachment id.")


class SignedLinkQuery(Schema):
    expires = fields.String(metadata={"description": "Link expiry (Unix time); with `sig`, instead of a token"})
    sig = fields.String(metadata={"description": "The link's signature"})
