"""Domain hooks of Payment: a create charges the card through the provider; a refund gives the
capture back.

Yours: created once by microforge, never overwritten by `copier update`. The full card number
arrives in the create body and goes to the provider only: the row keeps it masked (every digit
but the last four replaced by 0) and `card_last4`. A declined charge answers 422 and writes
nothing (the Idempotency-Key remembers the answer, so a repeated call is declined again without
a second call to the provider).
"""

from decimal import Decimal
from typing import Any, ClassVar

from .. import entity_hooks
from ..models.payment import Payment
from .providers import Declined, PaymentProvider, provider_for


def mask(card_number: str) -> str:
    """The card number with every digit but the last four replaced by 0 (zeros, not `*`: the
    stored value keeps the field's format, which the API and event schemas publish)."""
    return "0" * max(0, len(card_number) - 4) + card_number[-4:]


def _provider(ctx: entity_hooks.HookContext) -> PaymentProvider:
    settings: Any = ctx.settings
    return provider_for(settings.payment_provider, Decimal(settings.payment_limit))


def _key(ctx: entity_hooks.HookContext, values: dict[str, Any]) -> str:
    """The provider's idempotency key: the caller's Idempotency-Key, or the order's id."""
    if ctx.request is not None:
        sent = ctx.request.headers.get("idempotency-key")
        if sent:
            return sent
    return f"order:{values['order_id']}"


class PaymentHooks(entity_hooks.EntityHooks[Payment]):
    """Charges on create, refunds on `refund`."""

    rewrites: ClassVar[frozenset[str]] = frozenset({"card_number", "card_last4", "provider_ref"})

    async def before_create(
        self,
        ctx: entity_hooks.HookContext,
        values: dict[str, Any],
    ) -> dict[str, Any]:
        card = str(values["card_number"])
        amount = Decimal(values["amount"])
        currency = str(values.get("currency") or "EUR")
        try:
            capture = await _provider(ctx).charge(
                amount=amount, currency=currency, card_number=card, key=_key(ctx, values)
            )
        except Declined as declined:
            raise entity_hooks.invalid("card_number", declined.reason) from None
        return {
            **values,
            "card_number": mask(card),
            "card_last4": card[-4:],
            "provider_ref": capture.reference,
            "status": "CAPTURED",
        }

    async def before_transition(
        self,
        ctx: entity_hooks.HookContext,
        row: Payment,
        transition: str,
    ) -> None:
        if transition == "refund" and row.provider_ref:
            await _provider(ctx).refund(
                reference=row.provider_ref, amount=Decimal(row.amount), currency=row.currency
            )
