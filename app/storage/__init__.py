"""Attachment bytes: one interface (:mod:`app.storage.base`), two backends chosen once from config.

A local directory (``ATTACHMENT_STORAGE_DIR``) is the default and needs nothing extra; any
S3-compatible store is used when ``ATTACHMENT_S3_BUCKET`` is set.
"""

from __future__ import annotations

from app.config import Settings
from app.storage.base import BlobStore, BlobMissing
from app.storage.local import LocalStore

__all__ = ["BlobStore", "BlobMissing", "LocalStore", "create_store"]


async def create_store(settings: Settings) -> BlobStore:
    if settings.attachment_s3_bucket:
        from app.storage.s3 import S3Store

        return await S3Store.open(settings)
    return LocalStore(settings.attachment_storage_dir)
