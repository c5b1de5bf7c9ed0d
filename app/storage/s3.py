"""Attachments in any S3-compatible store (AWS S3, MinIO, Ceph, R2...) through aiobotocore."""

from __future__ import annotations

from typing import cast

import contextlib

from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import ClientError

from app.config import Settings
from app.storage.base import BlobMissing, BlobStore, check_key


class S3Store(BlobStore):
    name = "s3"

    def __init__(self, client, bucket: str, prefix: str, stack: contextlib.AsyncExitStack):
        self._client = client
        self.bucket = bucket
        self.prefix = prefix
        self._stack = stack

    @classmethod
    async def open(cls, settings: Settings) -> S3Store:
        stack = contextlib.AsyncExitStack()
        client = await stack.enter_async_context(
            get_session().create_client(
                "s3",
                region_name=settings.attachment_s3_region,
                endpoint_url=settings.attachment_s3_endpoint_url,
                aws_access_key_id=settings.attachment_s3_access_key_id,
                aws_secret_access_key=settings.attachment_s3_secret_access_key,
                config=Config(
                    retries={"max_attempts": 3, "mode": "standard"},
                    s3={"addressing_style": "path"} if settings.attachment_s3_endpoint_url else None,
                ),
            )
        )
        return cls(client, cast(str, settings.attachment_s3_bucket), settings.attachment_s3_prefix, stack)

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=content_type)

    async def get(self, key: str) -> bytes:
        try:
            response = await self._client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise BlobMissing(key) from None
            raise
        async with response["Body"] as stream:
            return await stream.read()

    async def delete(self, key: str) -> None:
        await self._client.delete_object(Bucket=self.bucket, Key=self._key(key))

    async def close(self) -> None:
        await self._stack.aclose()
