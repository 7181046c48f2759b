"""The payment, refund and dispute state machines (payments/states.py), move by move, against the lifecycles
Stripe documents: a PaymentIntent that succeeded or was canceled and a Checkout Session that expired never
change again (docs.stripe.com/payments/paymentintents/lifecycle, /api/checkout/sessions/object); a refund goes
pending -> succeeded and may fail or be canceled after that, never back (/api/refunds/object, "status"); a
dispute moves from inquiry to chargeback review and closes as won, lost, warning_closed or prevented
(/disputes/how-disputes-work). Expected values are written from those pages, not from the code."""

from __future__ import annotations

import pytest

from payments import states

PAYMENT_MOVES = [
    # (the shop's payment row, what Stripe reports, taken?)
    ("open", "processing", True),
    ("open", "succeeded", True),
    ("processing", "succeeded", True),
    ("processing", "failed", True),  # a bank debit that fails after processing
    ("open", "canceled", True),
    ("open", "expired", True),
    ("succeeded", "succeeded", True),  # the same news again
    ("succeeded", "failed", False),  # a success is final (refunds and disputes are other objects)
    ("succeeded", "canceled", False),
    ("canceled", "succeeded", False),  # a canceled PaymentIntent cannot be confirmed again
    ("expired", "succeeded", False),  # an expired Checkout Session cannot be completed
    ("failed", "succeeded", False),  # the shop's failed attempt is closed; a new attempt is a new object
    ("canceled", "open", False),
]


@pytest.mark.parametrize(("before", "to", "taken"), PAYMENT_MOVES)
def test_a_payment_takes_only_the_moves_stripe_can_make(before: str, to: str, taken: bool) -> None:
    assert states.payment_may_move(before, to) is taken


REFUND_MOVES = [
    ("pending", "sent", True),
    ("pending", "succeeded", True),
    ("sent", "succeeded", True),
    ("succeeded", "failed", True),  # Stripe: a refund can fail after it succeeded (the money comes back)
    ("succeeded", "canceled", True),
    ("sent", "pending", False),
    ("succeeded", "pending", False),
    ("succeeded", "succeeded", False),  # nothing to do: the same news again
    ("failed", "succeeded", False),
    ("canceled", "failed", False),
]


@pytest.mark.parametrize(("before", "to", "taken"), REFUND_MOVES)
def test_a_refund_moves_forward_only(before: str, to: str, taken: bool) -> None:
    assert states.refund_may_move(before, to) is taken


DISPUTE_MOVES = [
    ("warning_needs_response", "warning_under_review", True),
    ("warning_under_review", "needs_response", True),  # an inquiry escalated to a chargeback
    ("needs_response", "under_review", True),  # evidence submitted
    ("under_review", "needs_response", False),  # an old event, not a move back
    ("needs_response", "warning_needs_response", False),
    ("under_review", "won", True),
    ("under_review", "lost", True),
    ("needs_response", "lost", True),  # no evidence by the due date
    ("warning_under_review", "warning_closed", True),
    ("warning_needs_response", "prevented", True),
    ("won", "lost", False),  # closed for good
    ("lost", "under_review", False),
    ("warning_closed", "needs_response", False),
    ("under_review", "under_review", False),  # the same news again changes nothing
]


@pytest.mark.parametrize(("current", "new", "taken"), DISPUTE_MOVES)
def test_a_dispute_moves_forward_and_closes_for_good(current: str, new: str, taken: bool) -> None:
    assert states.dispute_may_move(current, new) is taken


@pytest.mark.parametrize(
    ("statuses", "word"),
    [
        (["needs_response", "lost"], "open"),  # any open dispute makes the order disputed
        (["warning_under_review"], "open"),
        (["won", "lost"], "lost"),
        (["won"], "won"),
        (["warning_closed"], "closed"),
        (["prevented"], "closed"),
        ([], ""),
    ],
)
def test_an_orders_disputes_in_one_word(statuses: list[str], word: str) -> None:
    assert states.dispute_state(statuses) == word
