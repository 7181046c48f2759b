"""The objects the emulator answers with, shaped like Stripe's API version ``2026-10-28.endive``.

Each builder returns a plain JSON-ready dict carrying every attribute Stripe sends for that object at the top
level (``None`` where Stripe sends ``null``), with the enum values this API version knows. The attribute lists
follow the typed resource classes that ship with ``stripe`` (``stripe.PaymentIntent``,
``stripe.checkout.Session``, ...); ``stripe_emulator/tests/test_contract.py`` checks every answer against
them. Attributes Stripe only sends when asked (``expand[]``: a Checkout Session's ``line_items`` and
``total_details.breakdown``, a charge's ``refunds``, a line item's ``taxes`` and ``discounts``) are added by
the emulator when expanded, never by default.

Development/test-only code; imports only the standard library.

The builders live one module per resource family: ``common`` (ids, lists, ``present``), ``payments``
(PaymentIntents, payment methods), ``charges`` (charges, balance transactions, refunds, disputes) and
``checkout`` (Checkout Sessions, coupons, tax rates, discounts, prices).
"""

from stripe_emulator.shapes.charges import balance_transaction, charge, dispute, refund
from stripe_emulator.shapes.checkout import checkout_session, coupon, discount, price, tax_rate
from stripe_emulator.shapes.common import (
    OPTIONAL_NOT_NULLABLE,
    JSONDict,
    address,
    list_object,
    new_id,
    present,
)
from stripe_emulator.shapes.payments import payment_intent, payment_method, sepa_debit_payment_method

__all__ = [
    "OPTIONAL_NOT_NULLABLE",
    "JSONDict",
    "address",
    "balance_transaction",
    "charge",
    "checkout_session",
    "coupon",
    "discount",
    "dispute",
    "list_object",
    "new_id",
    "payment_intent",
    "payment_method",
    "present",
    "price",
    "refund",
    "sepa_debit_payment_method",
    "tax_rate",
]
