"""Settings of the notification domain: which sender delivers the messages, and its options.

Yours: created once by microforge, never overwritten by `copier update`.
"""

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings


class CustomSettings(BaseSettings):
    """Settings you add or override; `settings.Settings` inherits them first."""

    notification_sender: Literal["log", "file", "smtp"] = Field(
        default="log",
        description="How messages go out: `log` (a log line), `file` (JSON lines), `smtp`.",
    )
    notification_file: Path = Field(
        default=Path("notifications.jsonl"),
        description="Where the `file` sender appends one JSON line per message.",
    )
    smtp_host: str = Field(default="127.0.0.1", description="SMTP server of the `smtp` sender.")
    smtp_port: int = Field(default=25, ge=1, le=65535, description="Its port.")
    smtp_username: str | None = Field(default=None, description="SMTP login, if any.")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password, if any.")
    smtp_starttls: bool = Field(default=False, description="Upgrade the connection with STARTTLS.")
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, description="Per SMTP exchange.")
    mail_from: str = Field(
        default="shop@localhost", description="The From address of the messages sent."
    )
