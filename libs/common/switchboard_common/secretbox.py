"""Encryption of secrets at rest (client CalDAV/SMTP passwords in Valkey) with rotatable keys.

`cryptography`'s Fernet (AES-128-CBC + HMAC-SHA256, authenticated, with a timestamp) through
MultiFernet: the first key of SECRETS_KEYS encrypts, every key decrypts, and `rotate`
re-encrypts a token under the first key. So a new key is rolled out by putting it first
(`SECRETS_KEYS=new,old`), re-encrypting what is stored (`switchboard rotate-secrets`), then
dropping the old key. A well-kept, audited library instead of our own AEAD construction.

Outside development a missing key refuses start-up. In development without SECRETS_KEYS a
fixed, publicly known key is used (with a warning) so that in-process runs of the gateway and
the executor agree; `switchboard up` always generates a real key under the data dir.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

log = logging.getLogger(__name__)

DEVELOPMENT_KEY = base64.urlsafe_b64encode(
    hashlib.sha256(b"switchboard development only: not a secret").digest()).decode()


class SecretKeyError(ValueError):
    """SECRETS_KEYS is missing (outside development) or holds something that is not a key."""


class UndecryptableSecret(Exception):
    """A stored secret that none of the configured keys opens (a key was dropped too early,
    or the data was written by another deployment). The message never holds the token."""


class SecretBox:
    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise SecretKeyError("SECRETS_KEYS holds no key")
        try:
            self._fernet = MultiFernet([Fernet(k.strip().encode()) for k in keys])
        except ValueError as exc:
            # Fernet's message says what is wrong with the format, never echoes the key.
            raise SecretKeyError(f"SECRETS_KEYS: not a Fernet key ({exc})") from None

    @classmethod
    def from_setting(cls, keys: SecretStr | None, environment: str) -> SecretBox:
        """`keys`: the SECRETS_KEYS setting, comma-separated, newest first."""
        if keys is not None and keys.get_secret_value().strip():
            return cls([k for k in keys.get_secret_value().split(",") if k.strip()])
        if environment != "development":
            raise SecretKeyError(f"SECRETS_KEYS must be set outside development "
                                 f"(SWITCHBOARD_ENV={environment}): it encrypts client "
                                 f"connection passwords at rest")
        log.warning("SECRETS_KEYS is not set: client connection passwords are encrypted with "
                    "the public development key")
        return cls([DEVELOPMENT_KEY])

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise UndecryptableSecret("a stored secret cannot be decrypted with any key in "
                                      "SECRETS_KEYS") from None

    def rotate(self, token: str) -> str:
        """The same secret, encrypted under the first (newest) key."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise UndecryptableSecret("a stored secret cannot be decrypted with any key in "
                                      "SECRETS_KEYS") from None
