"""AES-GCM field encryption with rotatable keys.

A stored value is ``enc:v1:<key_id>:<base64(nonce || ciphertext+tag)>``. The first configured
key encrypts; any configured key decrypts, so a new key can be put first and old rows still read.
The column name is bound as associated data, so a ciphertext moved to another column fails.
"""

from __future__ import annotations

import base64
import os
from typing import overload

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_PREFIX = "enc:v1:"


class DecryptionError(Exception):
    pass


class FieldCipher:
    def __init__(self, keys: tuple[tuple[str, bytes], ...]):
        if not keys:
            raise ValueError("at least one encryption key is required")
        self._current_id = keys[0][0]
        self._keys = {key_id: AESGCM(key) for key_id, key in keys}

    @overload
    def encrypt(self, plaintext: str, field: str) -> str: ...

    @overload
    def encrypt(self, plaintext: None, field: str) -> None: ...

    def encrypt(self, plaintext: str | None, field: str) -> str | None:
        if plaintext is None:
            return None
        nonce = os.urandom(12)
        sealed = self._keys[self._current_id].encrypt(nonce, plaintext.encode(), field.encode())
        return f"{_PREFIX}{self._current_id}:{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, stored: str | None, field: str) -> str | None:
        if stored is None:
            return None
        if not stored.startswith(_PREFIX):
            raise DecryptionError(f"{field}: value is not encrypted")
        key_id, _, body = stored[len(_PREFIX) :].partition(":")
        aead = self._keys.get(key_id)
        if aead is None:
            raise DecryptionError(f"{field}: unknown key id {key_id!r}")
        raw = base64.b64decode(body)
        try:
            return aead.decrypt(raw[:12], raw[12:], field.encode()).decode()
        except InvalidTag as exc:
            raise DecryptionError(f"{field}: ciphertext failed authentication") from exc

    def key_id_of(self, stored: str) -> str:
        return stored[len(_PREFIX) :].partition(":")[0]


def generate_key_spec(key_id: str = "k1") -> str:
    """A ``DATA_ENCRYPTION_KEYS`` value with one fresh random key."""
    return f"{key_id}:{base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}"
