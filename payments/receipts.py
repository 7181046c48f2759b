"""The shop's emails to shoppers: the order confirmation (one per paid order) and the refund notice (one per
refund Stripe made, the shop's and those made in Stripe's dashboard), in the language the shopper paid in,
sent with Django's email (the console in demo mode and with DEBUG; SMTP from `EMAIL_URL` in production, see
README).

Stripe sends its own receipt to the address the shopper gave (`receipt_email` on the PaymentIntent; Checkout
collects the address itself); the shop's confirmation goes to the same address, stored on the order.

**Once, never twice.** `send_confirmation` claims the email under the order's row lock (`states.locked`): it
stamps `confirmation_sent_at` only if no one did, and the stamp commits before the email is sent, outside
any transaction. Repeated or concurrent events (the same event delivered twice, a webhook racing the return
page, two app processes) all call it after their own work committed; only the one whose stamp went in sends.
If sending fails, the stamp is taken back so that the next event or `reconcile_payments` tries again; a crash
between the stamp and the send loses that email rather than sending it twice. `send_refund_notice` works the
same way with the refund's `notice_sent_at`, under the lock of the refund's order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import gettext

from core.money import display_money
from payments import states
from payments.models import Order, Refund
from payments.pricing import price_order

logger = logging.getLogger("payments.receipts")


def owed(order: Order) -> bool:
    return states.is_paid(order) and bool(order.email) and order.confirmation_sent_at is None


def shopper_email(order: Order, template: str, subject: Callable[[str], str], **context: Any) -> EmailMessage:
    """An email to the order's shopper in the language they paid in (the shop's default for older orders):
    `template` rendered with the order, its short id and its page's address; `subject(short_id)`."""
    short = str(order.public_id)[:8]
    context = {
        "order": order,
        "short_id": short,
        "order_url": f"{settings.SITE_URL}{order.get_absolute_url()}" if settings.SITE_URL else "",
        **context,
    }
    with translation.override(order.language or settings.LANGUAGE_CODE):
        return EmailMessage(
            subject=subject(short), body=render_to_string(template, context), to=[order.email]
        )


def send_stamped(email: EmailMessage, stamp_taken_back: Callable[[], object], what: str) -> bool:
    """Send an email whose stamp is already committed; if sending fails, take the stamp back so that a later
    call sends it. True when sent."""
    try:
        email.send()
    except Exception:  # SMTP down, refused, timed out: try again later
        logger.exception("%s not sent", what)
        stamp_taken_back()
        return False
    logger.info("%s sent", what)
    return True


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
        priced=priced,
    )


def send_confirmation(order_id: int) -> bool:
    """Send the order's confirmation if it is paid, has an email address and none was sent; True when this
    call sent it. Call it outside any transaction (after the news that paid the order committed)."""
    stamp = timezone.now()
    with states.locked(order_id) as order:
        if not owed(order):
            return False
        order.confirmation_sent_at = stamp
        order.save(update_fields=["confirmation_sent_at"])
    return send_stamped(
        message(order),
        lambda: Order.objects.filter(pk=order_id, confirmation_sent_at=stamp).update(
            confirmation_sent_at=None
        ),
        f"order {order.public_id}: confirmation to {order.email}",
    )


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
        refund=refund,
        refunded_on=refund.stripe_created or refund.updated_at,
    )


def send_refund_notice(refund_id: int) -> bool:
    """Tell the shopper of a refund Stripe made, once: True when this call sent it. Safe to call any number of
    times, from anywhere (the news of the refund committed first): only the call whose stamp went in sends."""
    refund = Refund.objects.filter(pk=refund_id).only("order_id").first()
    if refund is None:
        return False
    stamp = timezone.now()
    with states.locked(refund.order_id) as order:
        refund = Refund.objects.select_for_update().get(pk=refund_id)
        refund.order = order
        if not refund_notice_owed(refund):
            return False
        refund.notice_sent_at = stamp
        refund.save(update_fields=["notice_sent_at"])
    return send_stamped(
        refund_message(refund),
        lambda: Refund.objects.filter(pk=refund_id, notice_sent_at=stamp).update(notice_sent_at=None),
        f"refund {refund.pk} of order {order.public_id}: notice to {order.email}",
    )


def send_refund_notices(order: Order) -> None:
    """Every refund notice the order owes (what follows a refund's news: `sync.tidy_up`)."""
    if not order.email:
        return
    owed = order.refunds.filter(status=Refund.Status.SUCCEEDED, notice_sent_at__isnull=True)
    for refund_id in owed.order_by("id").values_list("pk", flat=True):
        send_refund_notice(refund_id)
