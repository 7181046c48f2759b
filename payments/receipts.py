"""The shop's emails to shoppers: the order confirmation (one per paid order) and the refund notice (one per
refund Stripe made, the shop's and those made in Stripe's dashboard), in the language the shopper paid in,
sent with Django's email (the console in demo mode and with DEBUG; SMTP from `EMAIL_URL` in production, see
README).

Stripe sends its own receipt to the address the shopper gave (`receipt_email` on the PaymentIntent; Checkout
collects the address itself); the shop's confirmation goes to the same address, stored on the order.

**Sent by workers, once.** Each email is a follow-up (`payments.followups`), queued in the transaction that
learned the news (the order paid, the refund made) and sent by a task worker, never in a request: a slow mail
server slows nobody. `deliver_confirmation` claims the email under the order's row lock (`locks.locked`): it
stamps `confirmation_sent_at` only if no one did, and the stamp commits before the email is sent. Repeated or
concurrent news queue at most one follow-up at a time, and only the one whose stamp went in sends. If sending
fails, the stamp is taken back and the follow-up tries again later (with backoff); a worker that died between
the stamp and the send leaves its follow-up running, and when the sweep starts it again it finds its own claim
and sends the same message again. Every email has a stable Message-ID per order (or refund) and kind, so that
a message sent twice after an answer that never came is one message to the recipient's mail system, and the
relay's answer is kept on the follow-up. `deliver_refund_notice` works the same way with the refund's
`notice_sent_at`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMessage
from django.db.models import Sum
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import gettext

from core.mail import relay_reply
from core.money import display_money
from payments import followups, locks, states
from payments.models import FollowUp, Order, Refund
from payments.pricing import price_order

logger = logging.getLogger("payments.receipts")


def owed(order: Order) -> bool:
    return states.is_paid(order) and bool(order.email) and order.confirmation_sent_at is None


def shopper_email(
    order: Order, template: str, subject: Callable[[str], str], msgid: str, **context: Any
) -> EmailMessage:
    """An email to the order's shopper in the language they paid in (the shop's default for older orders):
    `template` rendered with the order, its short id and its page's address; `subject(short_id)`; its stable
    Message-ID `msgid`."""
    short = str(order.public_id)[:8]
    context = {
        "order": order,
        "short_id": short,
        "order_url": f"{settings.SITE_URL}{order.get_absolute_url()}" if settings.SITE_URL else "",
        **context,
    }
    with translation.override(order.language or settings.LANGUAGE_CODE):
        return EmailMessage(
            subject=subject(short),
            body=render_to_string(template, context),
            to=[order.email],
            headers={"Message-ID": msgid},
        )


def message_id(kind: str, ref: object) -> str:
    """A stable Message-ID for the shop's email of one kind about one thing: sent again after an answer that
    never came, it is the same message to the recipient's mail system, not a second one."""
    domain = urlsplit(settings.SITE_URL).hostname or settings.DEFAULT_FROM_EMAIL.rpartition("@")[2].strip(
        "> "
    )
    return f"<{kind}.{ref}@{domain or 'localhost'}>"


def claim(row: FollowUp, record: Order | Refund, field: str, *, owed: bool) -> datetime | None:
    """Claim a send (under the caller's lock on the record): stamp `record.<field>` and note the stamp on the
    follow-up, committed before the email goes out. A follow-up run again after its worker died finds its own
    claim and sends the same message again; any other finds the stamp and sends nothing (None)."""
    claimed: datetime | None = getattr(record, field)
    if claimed is not None and row.result == f"claimed {claimed.isoformat()}":
        return claimed
    if not owed:
        return None
    claimed = timezone.now()
    setattr(record, field, claimed)
    record.save(update_fields=[field])
    FollowUp.objects.filter(pk=row.pk).update(result=f"claimed {claimed.isoformat()}")
    return claimed


def deliver(email: EmailMessage, record: Order | Refund, field: str, claimed: datetime, what: str) -> str:
    """Send an email whose claim (`record.<field>` = `claimed`) is committed; if sending fails, take the claim
    back and raise, so that the follow-up tries again. Returns the mail relay's answer."""
    try:
        email.send()
    except Exception:  # SMTP down, refused, timed out: the follow-up tries again later
        logger.exception("%s not sent", what)
        type(record)._default_manager.filter(pk=record.pk, **{field: claimed}).update(**{field: None})
        raise
    reply = relay_reply(email)
    logger.info("%s sent (%s)", what, reply)
    return reply


def message(order: Order) -> EmailMessage:
    """The order confirmation."""
    priced = price_order(order)
    return shopper_email(
        order,
        "payments/email/order_confirmation.txt",
        lambda short: (
            gettext("Your order %(order)s is confirmed: %(total)s")
            % {"order": short, "total": display_money(priced.total, priced.currency, minor=True)}
        ),
        message_id("confirmation", order.public_id),
        priced=priced,
    )


@followups.handles(FollowUp.Kind.CONFIRMATION)
def deliver_confirmation(row: FollowUp) -> str:
    """The follow-up queued when the order was paid: send its confirmation if it has an address and none was
    sent. The order's `confirmation_sent_at` is the claim, stamped under the order's lock and committed before
    the email is sent (and recorded on the follow-up): another follow-up finds it stamped and sends nothing,
    and this one, run again after its worker died, finds its own claim and sends the same message again."""
    assert row.order_id is not None
    with locks.locked(row.order_id) as order:
        claimed = claim(row, order, "confirmation_sent_at", owed=owed(order))
    if claimed is None:
        return "nothing to send (not paid, no address, or sent already)"
    what = f"order {order.public_id}: confirmation to {order.email}"
    return deliver(message(order), order, "confirmation_sent_at", claimed, what)


# ------------------------------------------------------------------------------------------------ refunds


def refund_notice_owed(refund: Refund) -> bool:
    """Stripe made the refund (it succeeded), the shopper left an address, and nobody told them yet."""
    return (
        refund.status == Refund.Status.SUCCEEDED
        and bool(refund.order.email)
        and refund.notice_sent_at is None
    )


def refund_message(refund: Refund) -> EmailMessage:
    """The refund notice."""
    return shopper_email(
        refund.order,
        "payments/email/refund_notice.txt",
        lambda short: (
            gettext("Refund for your order %(order)s: %(amount)s")
            % {"order": short, "amount": display_money(refund.amount, refund.currency, minor=True)}
        ),
        message_id("refund", f"{refund.pk}.{refund.order.public_id}"),
        refund=refund,
        refunded_on=refund.stripe_created or refund.updated_at,
        # The refunds Stripe made so far, this one included (the order's own figure follows Stripe's events,
        # which may come after the answer that told the shop this refund succeeded).
        refunded_so_far=refund.order.refunds.filter(status__in=states.MADE_REFUNDS)
        .exclude(stripe_id="")
        .aggregate(total=Sum("amount"))["total"]
        or 0,
    )


@followups.handles(FollowUp.Kind.REFUND_NOTICE)
def deliver_refund_notice(row: FollowUp) -> str:
    """The follow-up queued when Stripe made a refund: tell the shopper once, claimed like the confirmation
    (`notice_sent_at`, under the order's lock)."""
    if row.target_id is None or (refund := Refund.objects.filter(pk=row.target_id).first()) is None:
        return "no such refund"
    with locks.locked(refund.order_id) as order:
        refund = locks.lock_refund(refund.pk)
        refund.order = order
        claimed = claim(row, refund, "notice_sent_at", owed=refund_notice_owed(refund))
    if claimed is None:
        return "nothing to send (not made, no address, or sent already)"
    what = f"refund {refund.pk} of order {order.public_id}: notice to {order.email}"
    return deliver(refund_message(refund), refund, "notice_sent_at", claimed, what)
