"""The card number of a pending order, encrypted (Fernet) with the `CARD_VAULT_KEY` setting.

The checkout's charge step needs the full number after the request that gave it has ended, so
the order keeps it sealed (`vault:<token>`: reads and events show only that) until the checkout
ends; then the hooks replace it by the masked number.
"""

import base64
import functools
import hashlib

from cryptography.fernet import Fernet

PREFIX = "vault:"
DEVELOPMENT_KEY = "microforge-development-card-vault"
"""The key used when `CARD_VAULT_KEY` is unset (refused in production)."""


@functools.cache
def _fernet(secret: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest()))


def secret_of(settings: object) -> str:
    """The vault secret the settings name."""
    key = getattr(settings, "card_vault_key", None)
    return DEVELOPMENT_KEY if key is None else str(key.get_secret_value())


def seal(card_number: str, secret: str) -> str:
    """The stored form of a card number."""
    return PREFIX + _fernet(secret).encrypt(card_number.encode()).decode()


def unseal(stored: str, secret: str) -> str:
    """The card number of a stored value (a value not sealed is returned as it is)."""
    if not stored.startswith(PREFIX):
        return stored
    return _fernet(secret).decrypt(stored[len(PREFIX) :].encode()).decode()


def mask(card_number: str) -> str:
    """Every character but the last four replaced by `*`."""
    return "*" * max(0, len(card_number) - 4) + card_number[-4:]
