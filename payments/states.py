"""The shop's four state machines -- orders, payments, refunds, disputes: their states, the moves allowed
between them, and the predicates the rest of the shop asks (payable, paid, made refunds, final...). Every rule
about a state is written here once; the modules that apply Stripe's news (`lifecycle`, `disputes`) and those
that act on orders ask this module.

The rule the order machine makes hold by construction: **a Stripe payment object is always for a frozen,
priced snapshot of its order; at most one such object is payable at a time; an order is paid only when Stripe
took exactly that snapshot's amount in its currency.**

    draft ──(shopper pays: freeze)──▶ awaiting_payment ──(a payment is processing)──▶ processing
      ▲                                 │        ▲                                        │
      └──(change order: every object    │        └────────(that payment failed)──────────┘
          closed at Stripe first)───────┘
    awaiting_payment / processing ──(Stripe took exactly the snapshot's total)──▶ paid
    paid ⇄ partially_refunded ⇄ refunded   (refunds, and refunds that failed)

- `draft` is the cart: lines can change; no payment object is open.
- Paying **freezes** the order (`payments.freezing`): the priced order (lines, unit prices, discount, taxes,
  total) is stored as its snapshot and its version goes up by one. Every Stripe object is created for that
  snapshot and that version.
- While frozen, the cart endpoints refuse (409). To change the cart, "change order" first closes every open
  object at Stripe (cancel the PaymentIntent, expire the Session); only when Stripe confirms none of them is
  paid or processing does the order thaw back to `draft`.
- An order flagged for staff (`needs_attention`) and not paid cannot be paid again until staff clear the flag.

Every write to an order, a payment or a refund runs under its order's row lock, taken through
`payments.locks` (where the lock order is written).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.utils import timezone
from django.utils.translation import gettext as _

from payments import locks
from payments.errors import NotOrderOwner, OrderNotEditable, OrderNotPayable
from payments.models import (
    FLAG_FIELDS,
    Dispute,
    DisputeState,
    Order,
    OrderStatus,
    PaymentStatus,
    Refund,
    StaffAction,
)

logger = logging.getLogger("payments.states")

# ------------------------------------------------------------------------------------------------ orders

EDITABLE = frozenset({OrderStatus.DRAFT})
# A payment object may be opened for the order (a one-item order keeps its browser's key only while payable).
PAYABLE = frozenset({OrderStatus.DRAFT, OrderStatus.AWAITING_PAYMENT})
# Stripe took the order's total (whatever was given back since): it counts as sold, and as a code's use.
PAID_STATES = frozenset({OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED})

MOVES: dict[str, frozenset[str]] = {
    OrderStatus.DRAFT: frozenset({OrderStatus.AWAITING_PAYMENT}),
    OrderStatus.AWAITING_PAYMENT: frozenset({OrderStatus.DRAFT, OrderStatus.PROCESSING, OrderStatus.PAID}),
    OrderStatus.PROCESSING: frozenset({OrderStatus.AWAITING_PAYMENT, OrderStatus.PAID}),
    OrderStatus.PAID: frozenset({OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED}),
    OrderStatus.PARTIALLY_REFUNDED: frozenset({OrderStatus.PAID, OrderStatus.REFUNDED}),
    OrderStatus.REFUNDED: frozenset({OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED}),
}


class IllegalMove(RuntimeError):
    """A move the state diagram does not have: a bug in the caller, never something a shopper can cause."""


def can_move(order: Order, to: str) -> bool:
    return to == order.status or to in MOVES[order.status]


# The fields `move` changes: save them together.
STATUS_FIELDS = ["status", "buy_now_key", "updated_at"]


def move(order: Order, to: str) -> None:
    """Set the order's status to `to` (not saved: save `STATUS_FIELDS`), refusing moves the diagram does not
    have. An order that leaves the payable states is no longer its browser's current one-item order, for good:
    if it comes back (a payment in flight failed), the browser's next click on the item has its own order."""
    if not can_move(order, to):
        raise IllegalMove(f"order {order.public_id}: {order.status} -> {to} is not a move orders make")
    if to != order.status:
        logger.info("order %s %s -> %s", order.public_id, order.status, to)
    order.status = to
    if to not in PAYABLE:
        order.buy_now_key = None


def buy_now_key(browser: str, item_id: int) -> str:
    """The key a browser's current one-item order for an item holds (unique: at most one such order)."""
    return f"{browser}/{item_id}"


def is_editable(order: Order) -> bool:
    return order.status in EDITABLE


def is_payable(order: Order) -> bool:
    return order.status in PAYABLE and not order.needs_attention


def is_paid(order: Order) -> bool:
    return order.status in PAID_STATES


# ------------------------------------------------------------------------------------------------ payments
# A payment object is `open` (Stripe could still take it), `processing` (being paid), or final. It never leaves
# a final state: a late or repeated event changes nothing (`lifecycle` applies Stripe's news through this rule).
#
#     open ⇄ processing ──▶ succeeded | failed | canceled | expired   (open ──▶ any final state as well)

OPEN_PAYMENTS = frozenset({PaymentStatus.OPEN})
LIVE_PAYMENTS = frozenset({PaymentStatus.OPEN, PaymentStatus.PROCESSING})
FINAL_PAYMENTS = frozenset(
    {PaymentStatus.SUCCEEDED, PaymentStatus.FAILED, PaymentStatus.CANCELED, PaymentStatus.EXPIRED}
)


def payment_may_move(before: str, to: str) -> bool:
    """Whether a payment in `before` takes the status `to` that Stripe reported (maybe in an old event)."""
    return to == before or before not in FINAL_PAYMENTS


# ------------------------------------------------------------------------------------------------ refunds
# A refund row is written before Stripe is asked (`pending`), then follows Stripe's refund object, forward only:
#
#     pending ──▶ sent ──▶ succeeded ──▶ failed | canceled   (a refund that fails gives its amount back)

UNSENT_REFUNDS = frozenset({Refund.Status.PENDING})
# Refunds whose money went (or is going) back to the cardholder: the refunded amounts and revenue count these.
MADE_REFUNDS = frozenset({Refund.Status.SENT, Refund.Status.SUCCEEDED})
# Refunds asked for and not failed: what is left to refund counts these.
ASKED_REFUNDS = frozenset({*UNSENT_REFUNDS, *MADE_REFUNDS})
FAILED_REFUNDS = frozenset({Refund.Status.FAILED, Refund.Status.CANCELED})
REFUND_RANK = {
    Refund.Status.PENDING: 0,
    Refund.Status.SENT: 1,
    Refund.Status.SUCCEEDED: 2,
    Refund.Status.FAILED: 3,
    Refund.Status.CANCELED: 3,
}


def refund_may_move(before: str, to: str) -> bool:
    """Whether a refund in `before` takes the status `to` (never backwards, never out of a final state)."""
    return REFUND_RANK[Refund.Status(to)] > REFUND_RANK[Refund.Status(before)]


# ------------------------------------------------------------------------------------------------ disputes
# A dispute opens as an inquiry or a chargeback and only moves forward, then closes for good:
#
#     warning_needs_response ──▶ warning_under_review ──▶ needs_response ──▶ under_review
#     any open status ──▶ won | lost | warning_closed | prevented

DISPUTE_FINAL = frozenset(
    {Dispute.Status.WON, Dispute.Status.LOST, Dispute.Status.WARNING_CLOSED, Dispute.Status.PREVENTED}
)
DISPUTE_OPEN = frozenset(
    {
        Dispute.Status.WARNING_NEEDS_RESPONSE,
        Dispute.Status.WARNING_UNDER_REVIEW,
        Dispute.Status.NEEDS_RESPONSE,
        Dispute.Status.UNDER_REVIEW,
    }
)
DISPUTE_RANK = {
    Dispute.Status.WARNING_NEEDS_RESPONSE: 0,
    Dispute.Status.WARNING_UNDER_REVIEW: 1,
    Dispute.Status.NEEDS_RESPONSE: 2,
    Dispute.Status.UNDER_REVIEW: 3,
}


def dispute_may_move(current: str, new: str) -> bool:
    """Whether a dispute in `current` takes the status `new` reported by an event (maybe an old one)."""
    if current == new or current in DISPUTE_FINAL:
        return False
    if new in DISPUTE_FINAL:
        return True
    return DISPUTE_RANK.get(new, -1) >= DISPUTE_RANK.get(current, -1)  # type: ignore[call-overload]


def dispute_state(statuses: Iterable[str]) -> str:
    """An order's disputes in one word (`DisputeState`): open while any is open, else lost, won or closed."""
    found = set(statuses)
    if found & DISPUTE_OPEN:
        return DisputeState.OPEN
    if Dispute.Status.LOST in found:
        return DisputeState.LOST
    if Dispute.Status.WON in found:
        return DisputeState.WON
    if found:
        return DisputeState.CLOSED
    return DisputeState.NONE


# ------------------------------------------------------------------------------------------------ moves


def not_owner() -> NotOrderOwner:
    """The refusal of another browser's order (the one wording of it)."""
    return NotOrderOwner(_("This order belongs to another shopper."))


def no_longer_changeable(order: Order) -> OrderNotEditable:
    """The refusal to change an order past its cart and payment (paid, processing, canceled...)."""
    return OrderNotEditable(
        _("This order is %(status)s and can no longer be changed.")
        % {"status": str(order.get_status_display()).lower()}
    )


def nothing_to_pay(*, processing: bool) -> OrderNotPayable:
    """The refusal to pay an order whose payment is processing or made (the one wording of each)."""
    if processing:
        return OrderNotPayable(
            _("A payment for this order is being processed; there is nothing more to pay now.")
        )
    return OrderNotPayable(_("This order has been paid."))


def check_editable(order: Order, may_change: bool) -> None:
    """The cart endpoints' rule: only the owner (or staff) changes an order, and only while it is a draft."""
    if not may_change:
        raise not_owner()
    if order.status == OrderStatus.AWAITING_PAYMENT:
        raise OrderNotEditable(
            _("This order is being paid, so its contents are fixed. Reload its page and try again.")
        )
    if not is_editable(order):
        raise no_longer_changeable(order)


def check_payable(order: Order) -> None:
    if order.status == OrderStatus.PROCESSING:
        raise nothing_to_pay(processing=True)
    if is_paid(order):
        raise nothing_to_pay(processing=False)
    if order.needs_attention:
        raise OrderNotPayable(
            _("Our staff is checking a payment for this order; it cannot be paid again now.")
        )


def thaw(order: Order) -> None:
    """awaiting_payment -> draft, once every payment object of the order is closed at Stripe."""
    live = order.payments.filter(status__in=LIVE_PAYMENTS)
    if live.exists():
        raise IllegalMove(f"order {order.public_id} still has open payments: {list(live)}")
    move(order, OrderStatus.DRAFT)
    order.snapshot = None
    order.save(update_fields=["snapshot", *STATUS_FIELDS])


def flag_order(order_pk: int, note: str) -> None:
    """Flag an order for staff with `note` (once: the same note again changes nothing)."""
    with locks.locked(order_pk) as order:
        if note in order.attention_note and order.needs_attention:
            return
        order.flag(note)
        order.save(update_fields=FLAG_FIELDS)


def note_sweep_failure(order_pk: int, error: str) -> None:
    """Reconciliation failed on this order: what went wrong, for staff (bookkeeping only, no state moves; no
    lock taken, since the failure may be that the order is locked)."""
    Order.objects.filter(pk=order_pk).update(sweep_error=error[:2000], sweep_failed_at=timezone.now())


def clear_sweep_failure(order_pk: int) -> None:
    Order.objects.filter(pk=order_pk, sweep_failed_at__isnull=False).update(
        sweep_error="", sweep_failed_at=None
    )


def mark_reviewed(order_pk: int, who: str, note: str) -> None:
    """Staff handled what the order was flagged for: the flag is cleared, with their note, who and when. The
    order's one-item key is not given back (a newer order may hold it)."""
    with locks.locked(order_pk) as order:
        order.needs_attention = False
        order.note(f"Reviewed by {who}: {note}")
        order.save(update_fields=["needs_attention", "attention_note", "updated_at"])
        StaffAction.objects.create(order=order, kind=StaffAction.Kind.REVIEWED, who=who, note=note)
