"""What every attachment store does: keep bytes under a key, give them back, forget them."""

from __future__ import annotations

import abc
import re

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}$")


class BlobMissing(Exception):
    """No bytes are stored under the key."""


def check_key(key: str) -> str:
    """Keys are made by the service, never by a caller; refuse anything that could climb out."""
    if not _KEY.match(key) or ".." in key.split("/"):
        raise ValueError(f"bad storage key {key!r}")
    return key


class BlobStore(abc.ABC):
    name: str

    @abc.abstractmethod
    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store ``data`` under ``key`` (replacing what was there)."""

    @abc.abstractmethod
    async def get(self, key: str) -> bytes:
        """The bytes under ``key``; :class:`BlobMissing` when there are none."""

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Forget ``key``; deleting a missing key is not an error."""

    async def close(self) -> None:
        return None
