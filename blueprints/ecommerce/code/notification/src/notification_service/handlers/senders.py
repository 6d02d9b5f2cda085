"""Senders of notifications: the interface the handlers use, and three implementations.

`log` (the default) writes a log line per message, `file` appends a JSON line to
`NOTIFICATION_FILE`, `smtp` sends an e-mail through `SMTP_HOST:SMTP_PORT` with aiosmtplib.
Choose one with `NOTIFICATION_SENDER`. A sender raises `SendFailed` when a message cannot go
out; the handlers record the notification as FAILED with the reason.
"""

import asyncio
import dataclasses
import json
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol

import aiosmtplib

from ..logs import get_logger
from ..settings import get_settings

_log = get_logger(__name__)


@dataclasses.dataclass(frozen=True)
class Message:
    """One notification to send."""

    recipient_id: str
    email: str | None
    subject: str
    body: str


class SendFailed(Exception):
    """The message could not be sent."""


class Sender(Protocol):
    """What the handlers need of a sender."""

    async def send(self, message: Message) -> None:
        """Send `message`, or raise `SendFailed`."""
        ...


class LogSender:
    """Writes each message as a log line (development)."""

    async def send(self, message: Message) -> None:
        _log.info("notification", **dataclasses.asdict(message))


class FileSender:
    """Appends each message as a JSON line to a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def send(self, message: Message) -> None:
        line = json.dumps(dataclasses.asdict(message), ensure_ascii=False) + "\n"
        await asyncio.to_thread(self._append, line)

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(line)


class SmtpSender:
    """Sends each message as an e-mail through an SMTP server."""

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.username = username
        self.password = password
        self.starttls = starttls
        self.timeout = timeout

    async def send(self, message: Message) -> None:
        if not message.email:
            raise SendFailed(f"no e-mail address known for user {message.recipient_id}")
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = message.email
        mail["Subject"] = message.subject
        mail.set_content(message.body)
        options: dict[str, Any] = {}
        if self.username is not None:
            options.update(username=self.username, password=self.password or "")
        try:
            await aiosmtplib.send(
                mail,
                hostname=self.host,
                port=self.port,
                start_tls=self.starttls,
                timeout=self.timeout,
                **options,
            )
        except (aiosmtplib.SMTPException, OSError) as error:
            raise SendFailed(f"SMTP {self.host}:{self.port}: {error}") from error


def sender_for(settings: Any) -> Sender:
    """The sender the settings choose."""
    if settings.notification_sender == "file":
        return FileSender(Path(settings.notification_file))
    if settings.notification_sender == "smtp":
        password = settings.smtp_password
        return SmtpSender(
            settings.smtp_host,
            settings.smtp_port,
            settings.mail_from,
            username=settings.smtp_username,
            password=None if password is None else password.get_secret_value(),
            starttls=settings.smtp_starttls,
            timeout=settings.smtp_timeout_seconds,
        )
    return LogSender()


def configured_sender() -> Sender:
    """The process's sender (from the environment's settings)."""
    return sender_for(get_settings())
