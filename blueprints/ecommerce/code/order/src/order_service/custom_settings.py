"""Settings of the order domain: where a checkout takes its lines, and the card vault's key.

Yours: created once by microforge, never overwritten by `copier update`.
"""

import logging
from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings

_log = logging.getLogger(__name__)


class CustomSettings(BaseSettings):
    """Settings you add or override; `settings.Settings` inherits them first."""

    checkout_from_cart: bool | None = Field(
        default=None,
        description=(
            "A customer's `POST /v1/orders` takes its lines from the caller's cart and its prices "
            "from catalog (true), or stores the body as sent (false: only for the generated CRUD "
            "tests, which post whole bodies). Unset: false when APP_ENV=test, else true; "
            "production refuses false."
        ),
    )
    card_vault_key: SecretStr | None = Field(
        default=None,
        description=(
            "Secret that encrypts the card number of a pending order (it is masked once the "
            "checkout ends). Set it in production (unset: a fixed development key, and a warning "
            "at start)."
        ),
    )

    @model_validator(mode="after")
    def _production_rules(self) -> Self:
        if getattr(self, "app_env", "development") == "production":
            if self.checkout_from_cart is False:
                raise ValueError("CHECKOUT_FROM_CART=false is for tests, not production")
            if self.card_vault_key is None:
                _log.warning(
                    "CARD_VAULT_KEY is not set: pending orders' card numbers are sealed with "
                    "the development key; set a secret of your own in production"
                )
        return self

    @property
    def checks_out_from_cart(self) -> bool:
        """`checkout_from_cart`, or its default for the environment."""
        if self.checkout_from_cart is None:
            return bool(getattr(self, "app_env", "development") != "test")
        return self.checkout_from_cart
