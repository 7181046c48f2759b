"""The SMTP backend of the shop's emails: Django's, keeping the relay's answer to each message.

The answer to the message's data (`250 2.0.0 Ok: queued as 4Xyz...`) is what says the relay took it; it is kept
on the message (`relay_reply`) so that the follow-up that sent it can record it for staff (see
`payments.receipts`).
"""

from __future__ import annotations

from typing import Any

from django.core.mail import EmailMessage
from django.core.mail.backends.smtp import EmailBackend


class RelayRecordingBackend(EmailBackend):
    def _send(self, email_message: EmailMessage) -> bool:
        connection = self.connection
        assert connection is not None
        send_data = connection.data

        def data(msg: Any) -> tuple[int, bytes]:
            code, reply = send_data(msg)
            email_message.relay_reply = f"{code} {reply.decode('utf-8', 'replace')}"  # type: ignore[attr-defined]
            return code, reply

        connection.data = data  # type: ignore[method-assign]
        try:
            return bool(super()._send(email_message))  # type: ignore[misc]
        finally:
            del connection.data  # the bound method again


def relay_reply(email: EmailMessage) -> str:
    """What the mail server answered when it took `email` (the console and test backends: where it went)."""
    return str(getattr(email, "relay_reply", "") or "accepted by the email backend (no SMTP relay)")
