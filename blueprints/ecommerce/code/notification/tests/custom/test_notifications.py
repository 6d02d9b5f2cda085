"""Notifications: one per consumed event (a redelivery records and sends nothing twice), sent
through the configured sender; the SMTP sender against a real local aiosmtpd server."""

import asyncio
import socket
import uuid
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient

from notification_service.events.envelope import EventEnvelope, make_envelope
from notification_service.handlers import senders
from notification_service.security import issue_dev_token
from notification_service.settings import Settings


class Inbox:
    """An aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    """A local SMTP server (aiosmtpd) and its port."""
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, settings: Settings) -> Path:
    """The handlers send through a file sender into a temporary file (one JSON line each)."""
    path = tmp_path / "sent.jsonl"
    monkeypatch.setattr(senders, "configured_sender", lambda: senders.FileSender(path))
    return path


def event(source: str, event_type: str, payload: dict[str, Any]) -> EventEnvelope:
    envelope = make_envelope(event_type, "X", uuid.UUID(payload["id"]), 1, payload)
    return envelope.model_copy(update={"source": source})


def deliver(client: TestClient, handler: str, envelope: EventEnvelope) -> str:
    app: Any = client.app
    portal: Any = client.portal
    body = envelope.model_dump(mode="json")
    result: str = portal.call(app.state.events.consumers[handler].deliver, envelope, body)
    return result


def user_created(user_id: str, email: str) -> EventEnvelope:
    payload = {"id": user_id, "email": email, "display_name": "Alice", "version": 1}
    return event("identity", "UserCreated", payload)


def order_event(kind: str, customer: str, **fields: Any) -> EventEnvelope:
    payload = {"id": str(uuid.uuid4()), "customer_id": customer, "total": "40.70", **fields}
    return event("order", kind, payload)


def test_each_event_is_recorded_and_sent_once(
    client: TestClient, settings: Settings, sent: Path
) -> None:
    alice = str(uuid.uuid4())
    welcome = user_created(alice, "alice@example.com")
    assert deliver(client, "welcome_user", welcome) == "processed"
    assert deliver(client, "welcome_user", welcome) == "duplicate"
    confirmed = order_event("OrderConfirm", alice, status="CONFIRMED")
    assert deliver(client, "order_confirmed", confirmed) == "processed"
    cancelled = order_event("OrderCancel", alice, cancel_reason="payment declined")
    assert deliver(client, "order_cancelled", cancelled) == "processed"
    assert deliver(client, "order_cancelled", cancelled) == "duplicate"
    lines = sent.read_text().splitlines()
    assert len(lines) == 3
    assert all("alice@example.com" in line for line in lines)  # the welcome's address kept
    assert "payment declined" in lines[2]
    token = issue_dev_token(settings, ["customer"], subject=alice)
    mine = client.get("/v1/notifications", headers={"Authorization": f"Bearer {token}"})
    assert mine.status_code == 200, mine.text
    rows = mine.json()["items"]
    assert sorted(row["kind"] for row in rows) == ["ORDER_CANCELLED", "ORDER_CONFIRMED", "WELCOME"]
    assert {row["status"] for row in rows} == {"SENT"}
    other = issue_dev_token(settings, ["customer"], subject=str(uuid.uuid4()))
    theirs = client.get("/v1/notifications", headers={"Authorization": f"Bearer {other}"})
    assert theirs.json()["items"] == []


def test_the_smtp_sender_delivers_to_a_real_server(smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    sender = senders.SmtpSender("127.0.0.1", port, "shop@example.com", timeout=5)
    message = senders.Message(str(uuid.uuid4()), "bob@example.com", "Hello", "Welcome, Bob.")
    asyncio.run(sender.send(message))
    assert len(inbox.messages) == 1
    mail_from, recipients, content = inbox.messages[0]
    assert (mail_from, recipients) == ("shop@example.com", ["bob@example.com"])
    parsed = message_from_bytes(content)
    assert parsed["Subject"] == "Hello"
    assert "Welcome, Bob." in parsed.get_payload()


def test_the_smtp_sender_fails_cleanly(smtp: tuple[Inbox, int]) -> None:
    _, port = smtp
    no_address = senders.Message(str(uuid.uuid4()), None, "Hello", "body")
    with pytest.raises(senders.SendFailed, match="no e-mail address"):
        asyncio.run(senders.SmtpSender("127.0.0.1", port, "shop@example.com").send(no_address))
    closed = senders.SmtpSender("127.0.0.1", _free_port(), "shop@example.com", timeout=2)
    message = senders.Message(str(uuid.uuid4()), "bob@example.com", "Hello", "body")
    with pytest.raises(senders.SendFailed, match="SMTP"):
        asyncio.run(closed.send(message))


def test_a_failed_send_is_recorded_as_failed(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    smtp_sender = senders.SmtpSender("127.0.0.1", port, "shop@example.com", timeout=5)
    monkeypatch.setattr(senders, "configured_sender", lambda: smtp_sender)
    stranger = str(uuid.uuid4())  # no welcome: no address known
    assert deliver(client, "order_confirmed", order_event("OrderConfirm", stranger)) == "processed"
    bob = str(uuid.uuid4())
    assert deliver(client, "welcome_user", user_created(bob, "bob@example.com")) == "processed"
    rows = {row["recipient_id"]: row for row in client.get("/v1/notifications").json()["items"]}
    assert rows[stranger]["status"] == "FAILED"
    assert "no e-mail address" in rows[stranger]["error"]
    assert rows[bob]["status"] == "SENT"
    assert [rcpt for _, rcpt, _ in inbox.messages] == [["bob@example.com"]]


def test_the_sender_follows_the_settings(settings: Settings, tmp_path: Path) -> None:
    file_settings = settings.model_copy(
        update={"notification_sender": "file", "notification_file": tmp_path / "x.jsonl"}
    )
    assert isinstance(senders.sender_for(file_settings), senders.FileSender)
    smtp_settings = settings.model_copy(update={"notification_sender": "smtp"})
    assert isinstance(senders.sender_for(smtp_settings), senders.SmtpSender)
    assert isinstance(senders.sender_for(settings), senders.LogSender)
