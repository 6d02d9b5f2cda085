"""What the handlers share: record a notification for an event, and send it.

The row is written in the handler's transaction (with the event's inbox record), so a
redelivered event records nothing twice (`source_event` is unique too). The message is sent
before the commit: if the commit then fails, the retried event sends it again (at least once).
"""

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from ..events.envelope import EventEnvelope
from ..models.notification import Notification
from . import senders


async def known_email(session: AsyncSession, recipient_id: uuid.UUID) -> str | None:
    """The address a user's earlier notification (their welcome) went to, if any."""
    statement = (
        sa.select(Notification.email)
        .where(Notification.recipient_id == recipient_id, Notification.email.is_not(None))
        .order_by(Notification.created_at.desc())
        .limit(1)
    )
    email: str | None = await session.scalar(statement)
    return email


async def notify(
    session: AsyncSession,
    event: EventEnvelope,
    *,
    recipient_id: uuid.UUID,
    email: str | None,
    kind: str,
    subject: str,
    body: str,
) -> Notification:
    """Record the notification of `event` and send it; its row (SENT or FAILED)."""
    row = Notification(
        recipient_id=recipient_id,
        email=email,
        kind=kind,
        subject=subject[:200],
        body=body[:4000],
        source_event=event.id,
        status="PENDING",
    )
    message = senders.Message(str(recipient_id), email, row.subject, row.body or "")
    try:
        await senders.configured_sender().send(message)
    except senders.SendFailed as failed:
        row.status = "FAILED"
        row.error = str(failed)[:500]
    else:
        row.status = "SENT"
    session.add(row)
    await session.flush()
    return row
