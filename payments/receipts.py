"""The shop's order confirmation: one email per paid order, sent with Django's email (the console in demo mode
and with DEBUG; SMTP from `EMAIL_URL` in production, see README).

Stripe sends its own receipt to the address the shopper gave (`receipt_email` on the PaymentIntent; Checkout
collects the address itself); the shop's confirmation goes to the same address, stored on the order.

**Once, never twice.** `send_confirmation` claims the email under the order's row lock (`states.locked`): it
stamps `confirmation_sent_at` only if no one did, and the stamp commits before the email is sent, outside
any transaction. Repeated or concurrent events (the same event delivered twice, a webhook racing the return
page, two app processes) all call it after their own work committed; only the one whose stamp went in sends.
If sending fails, the stamp is taken back so that the next event or `reconcile_payments` tries again; a crash
between the stamp and the send loses that email rather than sending it twice.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import EmailMessage
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import gettext

from core.money import display_money
from payments import states
from payments.models import Order
from payments.pricing import price_order

logger = logging.getLogger("payments.receipts")


def owed(order: Order) -> bool:
    return states.is_paid(order) and bool(order.email) and order.confirmation_sent_at is None


def message(order: Order) -> EmailMessage:
    """The confirmation, in the language the shopper paid in (the shop's default for older orders)."""
    priced = price_order(order)
    short = str(order.public_id)[:8]
    context = {
        "order": order,
        "priced": priced,
        "short_id": short,
        "order_url": f"{settings.SITE_URL}{order.get_absolute_url()}" if settings.SITE_URL else "",
    }
    with translation.override(order.language or settings.LANGUAGE_CODE):
        subject = gettext("Your order %(order)s is confirmed: %(total)s") % {
            "order": short,
            "total": display_money(priced.total, priced.currency, minor=True),
        }
        body = render_to_string("payments/email/order_confirmation.txt", context)
    return EmailMessage(subject=subject, body=body, to=[order.email])


def send_confirmation(order_id: int) -> bool:
    """Send the order's confirmation if it is paid, has an email address and none was sent; True when this
    call sent it. Call it outside any transaction (after the news that paid the order committed)."""
    stamp = timezone.now()
    with states.locked(order_id) as order:
        if not owed(order):
            return False
        order.confirmation_sent_at = stamp
        order.save(update_fields=["confirmation_sent_at"])
    try:
        message(order).send()
    except Exception:  # SMTP down, refused, timed out: try again later
        logger.exception("order %s: confirmation to %s not sent", order.public_id, order.email)
        Order.objects.filter(pk=order_id, confirmation_sent_at=stamp).update(confirmation_sent_at=None)
        return False
    logger.info("order %s: confirmation sent", order.public_id)
    return True
