"""Settings of the payment domain: the provider and the test provider's limit.

Yours: created once by microforge, never overwritten by `copier update`.
"""

from decimal import Decimal
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings


class CustomSettings(BaseSettings):
    """Settings you add or override; `settings.Settings` inherits them first."""

    payment_provider: Literal["test"] = Field(
        default="test", description="The provider adapter charging cards (`test`: a sandbox)."
    )
    payment_limit: Decimal = Field(
        default=Decimal(10000),
        ge=0,
        description="The test provider declines amounts over this.",
    )
