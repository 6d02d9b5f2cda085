"""Payment providers: the adapter interface the Payment hooks call, and the test provider.

A provider authorizes an amount on a card and captures it (one call here: `charge`), and refunds
a capture. A refusal (a declined card, an amount over a limit) raises `Declined`: a permanent
answer, which the hooks turn into a 422 problem so that a caller's saga compensates. Any other
exception is a failure of the provider itself (the caller gets a 5xx and may retry with the
same Idempotency-Key). Choose the provider with the `PAYMENT_PROVIDER` setting (only `test`
ships here; add a class for a real one and name it in `provider_for`).
"""

import asyncio
import dataclasses
import uuid
from decimal import Decimal
from typing import Protocol

DECLINED_CARD = "4000000000000002"
"""The Stripe-style test card that is always declined."""


class Declined(Exception):
    """The provider refused the charge (permanent: trying again gives the same answer)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Capture:
    """A captured charge: the provider's reference of it."""

    reference: str
    amount: Decimal
    currency: str


class PaymentProvider(Protocol):
    """What the Payment hooks need of a provider."""

    async def charge(
        self, *, amount: Decimal, currency: str, card_number: str, key: str
    ) -> Capture:
        """Authorize `amount` on the card and capture it; `key` makes a repeat a no-op."""
        ...

    async def refund(self, *, reference: str, amount: Decimal, currency: str) -> None:
        """Give a capture back."""
        ...


class TestProvider:
    """An in-process provider with the rules of a payment sandbox: it declines the test card
    4000000000000002 and amounts over `limit`; every other charge is authorized and captured.
    It keeps what it did (for tests)."""

    __test__ = False  # not a pytest test class

    def __init__(self, limit: Decimal) -> None:
        self.limit = limit
        self.captures: dict[str, Capture] = {}
        self.by_key: dict[str, str] = {}
        self.refunds: list[str] = []
        self._lock = asyncio.Lock()

    async def charge(
        self, *, amount: Decimal, currency: str, card_number: str, key: str
    ) -> Capture:
        async with self._lock:
            if key in self.by_key:
                return self.captures[self.by_key[key]]
            if card_number == DECLINED_CARD:
                raise Declined("payment declined: the card was declined")
            if amount > self.limit:
                raise Declined(f"payment declined: over the limit of {self.limit}")
            capture = Capture(f"test_ch_{uuid.uuid4().hex}", amount, currency)
            self.captures[capture.reference] = capture
            self.by_key[key] = capture.reference
            return capture

    async def refund(self, *, reference: str, amount: Decimal, currency: str) -> None:
        async with self._lock:
            if not reference.startswith("test_ch_"):
                raise ValueError(f"not a capture of the test provider: {reference}")
            self.refunds.append(reference)


_PROVIDERS: dict[tuple[str, Decimal], PaymentProvider] = {}


def provider_for(name: str, limit: Decimal) -> PaymentProvider:
    """The process's provider of that name (one instance each)."""
    if name != "test":
        raise ValueError(f"unknown payment provider {name!r} (known: test)")
    found = _PROVIDERS.get((name, limit))
    if found is None:
        found = _PROVIDERS[(name, limit)] = TestProvider(limit)
    return found
