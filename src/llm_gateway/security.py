"""Key generation and hashing, constant-time comparison, and encryption of provider keys."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

USER_KEY_PREFIX = "sk-"
KEY_PREFIX_DISPLAY_LENGTH = 12  # "sk-" + 9 characters of the UUID
_CIPHER_TAG = "v1:"


def generate_user_key() -> str:
    """A user key: `sk-` + UUIDv4, 39 characters."""
    return f"{USER_KEY_PREFIX}{uuid.uuid4()}"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    return key[:KEY_PREFIX_DISPLAY_LENGTH]


def secrets_equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def mask_secret(secret: str) -> str:
    """`sk-abcdef123456` -> `sk-a...3456`; short secrets reveal nothing."""
    if len(secret) < 12:
        return "****"
    return f"{secret[:4]}...{secret[-4:]}"


class SecretBox:
    """AES-256-GCM encryption of provider API keys at rest.

    Stored form: `v1:` + urlsafe base64 of nonce (12 bytes) + ciphertext + tag. Values without
    the tag are plaintext rows from before encryption and are returned as they are.
    """

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), _CIPHER_TAG.encode())
        return _CIPHER_TAG + base64.urlsafe_b64encode(nonce + sealed).decode()

    def decrypt(self, stored: str) -> str:
        if not stored.startswith(_CIPHER_TAG):
            return stored
        raw = base64.urlsafe_b64decode(stored[len(_CIPHER_TAG) :])
        try:
            return self._aead.decrypt(raw[:12], raw[12:], _CIPHER_TAG.encode()).decode()
        except InvalidTag:
            raise ValueError("provider key cannot be decrypted with GATEWAY_SECRET_KEY") from None

    @staticmethod
    def is_encrypted(stored: str) -> bool:
        return stored.startswith(_CIPHER_TAG)
