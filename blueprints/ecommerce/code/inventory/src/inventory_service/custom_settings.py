"""Settings of the inventory's reservations (the e-commerce blueprint's code overlay).

Yours: copied once by `microforge blueprint`, never overwritten by `copier update`.
"""

from pydantic import Field
from pydantic_settings import BaseSettings


class CustomSettings(BaseSettings):
    """Settings you add or override; `settings.Settings` inherits them first."""

    reservation_ttl_seconds: float = Field(
        default=900.0,
        gt=0,
        description="How long a HELD reservation keeps its stock before it expires.",
    )
    reservation_sweep_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How often HELD reservations past their expires_at are expired (0: never).",
    )
