"""Stripe's objects as the shop reads them: every field a handler uses, checked against Stripe's own limits before
it is used, in one place.

A signed webhook may still carry a value no Stripe object has (a PaymentIntent's `amount_received` of 10^30, a
dispute in currency `usdx`, a 300-character charge id, an evidence deadline in the year 33658). Used as it is,
such a value fails the database (a bigint overflows, a column is too short) or the datetime module, and Stripe,
answered 500, retries it for days. So each kind of object the shop reads has its fields listed here with their
limits, and:

- `webhooks.verify` checks an event's object (`check_event`) before anything is stored: out of range is a
  recorded 400 (`webhooks.record_refusal`), like any other malformed signed event;
- `lifecycle`, `disputes` and `refunds` check the objects they apply (`check`), whether from an event or from
  Stripe's API (a retrieve, a cancel, a refund), and read their timestamps and ids through `timestamp` and
  `object_id`; a value out of range there is an `OutOfRange` (a `PaymentProviderError`, 502): nothing changes.

The limits (https://docs.stripe.com/api and https://docs.stripe.com/currencies):
- amounts are integers of at most eight digits (`core.money.MAX_AMOUNT`, 99,999,999 minor units): Stripe charges
  no more, so no refund or dispute of a charge is larger; a balance transaction, in the settlement currency,
  may be negative and is bounded by twelve digits (Stripe's largest amounts, in currencies such as IDR);
- currencies are three-letter ISO codes, in lower case;
- ids are strings of at most 255 characters;
- timestamps are Unix seconds a datetime can hold (up to 9999-12-31T23:59:59Z);
- statuses and reasons are short lower-case words; metadata values at most 500 characters; the texts the shop
  keeps (emails, error messages) at most 5,000.
A field may be missing or null (the shop then reads nothing from it); any other type is out of range.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from django.utils.translation import gettext

from core.money import MAX_AMOUNT
from payments.errors import PaymentProviderError

MAX_ID_LENGTH = 255
MAX_TIMESTAMP = 253402300799  # 9999-12-31T23:59:59Z
MAX_BALANCE_AMOUNT = 999_999_999_999
MAX_METADATA_VALUE = 500
MAX_TEXT = 5000
_CURRENCY = re.compile(r"[a-z]{3}")
_WORD = re.compile(r"[a-z][a-z0-9_]*")


class OutOfRange(PaymentProviderError):
    """A field of a Stripe object is not within Stripe's limits; `reason` names it (in English, for the log and the
    refused event's record); the shopper reads that Stripe's answer could not be used."""

    code = "stripe_value_out_of_range"

    def __init__(self, reason: str) -> None:
        super().__init__(
            gettext(
                "Stripe answered with something the shop cannot use; nothing was changed. Please try again."
            )
        )
        self.reason = reason


# ------------------------------------------------------------------------------------------------ field kinds
# Each kind answers why a present, non-null value is out of range ("" when it is fine).

Kind = Callable[[Any], str]


def _integer(value: Any, low: int, high: int) -> str:
    if not isinstance(value, int) or isinstance(value, bool):
        return "is not a whole number"
    if not low <= value <= high:
        return f"is out of Stripe's range ({low} to {high})"
    return ""


def amount(value: Any) -> str:
    return _integer(value, 0, MAX_AMOUNT)


def balance_amount(value: Any) -> str:
    return _integer(value, -MAX_BALANCE_AMOUNT, MAX_BALANCE_AMOUNT)


def unix_time(value: Any) -> str:
    return _integer(value, 0, MAX_TIMESTAMP)


def currency(value: Any) -> str:
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value):
        return "is not a three-letter ISO currency code"
    return ""


def identifier(value: Any) -> str:
    """An id, or an expanded object carrying one."""
    if not 0 < len(object_id(value)) <= MAX_ID_LENGTH:
        return f"is not an id of at most {MAX_ID_LENGTH} characters"
    return ""


def word(length: int) -> Kind:
    """A status or a reason: a lower-case word of at most `length` characters."""

    def check(value: Any) -> str:
        if not isinstance(value, str) or len(value) > length or not _WORD.fullmatch(value):
            return f"is not a lower-case word of at most {length} characters"
        return ""

    return check


def text(length: int) -> Kind:
    def check(value: Any) -> str:
        if not isinstance(value, str) or len(value) > length:
            return f"is not a text of at most {length} characters"
        return ""

    return check


def flag(value: Any) -> str:
    return "" if isinstance(value, bool) else "is not true or false"


def mapping(value: Any) -> str:
    return "" if isinstance(value, Mapping) else "is not an object"


# ------------------------------------------------------------------------------------------------ objects
# The fields each handler reads, by dotted path (`a.b`: field b of object a; `a[].b`: field b of each object in
# list a). Statuses are as long as our columns hold: a session's `status/payment_status` is kept in 40.

Schema = dict[str, Kind]

PAYMENT_INTENT: Schema = {
    "id": identifier,
    "amount": amount,
    "amount_received": amount,
    "currency": currency,
    "status": word(40),
    "receipt_email": text(MAX_TEXT),
    "last_payment_error": mapping,
    "last_payment_error.message": text(MAX_TEXT),
    "created": unix_time,
    "livemode": flag,
}
CHECKOUT_SESSION: Schema = {
    "id": identifier,
    "amount_total": amount,
    "amount_subtotal": amount,
    "currency": currency,
    "status": word(20),
    "payment_status": word(19),
    "payment_intent": identifier,
    "customer_email": text(MAX_TEXT),
    "customer_details": mapping,
    "customer_details.email": text(MAX_TEXT),
    "created": unix_time,
    "expires_at": unix_time,
    "livemode": flag,
}
CHARGE: Schema = {
    "id": identifier,
    "payment_intent": identifier,
    "amount": amount,
    "amount_captured": amount,
    "amount_refunded": amount,
    "currency": currency,
    "created": unix_time,
    "livemode": flag,
}
REFUND: Schema = {
    "id": identifier,
    "payment_intent": identifier,
    "charge": identifier,
    "amount": amount,
    "currency": currency,
    "status": word(40),
    "failure_reason": text(MAX_TEXT),
    "metadata": mapping,
    "metadata.refund_ref": text(MAX_METADATA_VALUE),
    "metadata.order_id": text(MAX_METADATA_VALUE),
    "created": unix_time,
}
DISPUTE: Schema = {
    "id": identifier,
    "charge": identifier,
    "payment_intent": identifier,
    "amount": amount,
    "currency": currency,
    "status": word(30),
    "reason": word(40),
    "is_charge_refundable": flag,
    "evidence_details": mapping,
    "evidence_details.due_by": unix_time,
    "balance_transactions[].amount": balance_amount,
    "balance_transactions[].currency": currency,
    "created": unix_time,
    "livemode": flag,
}

# The object each event type's handler reads (`webhooks.HANDLERS`), by the type's prefix, most specific first.
BY_EVENT_TYPE: tuple[tuple[str, Schema], ...] = (
    ("payment_intent.", PAYMENT_INTENT),
    ("checkout.session.", CHECKOUT_SESSION),
    ("charge.dispute.", DISPUTE),
    ("charge.refund.", REFUND),
    ("refund.", REFUND),
    ("charge.", CHARGE),
)


def _values(obj: Any, path: list[str]) -> list[Any]:
    """The values at `path` in `obj` (several below a list), leaving out what is missing or null."""
    if not path:
        return [obj]
    if not isinstance(obj, Mapping):
        return []  # a parent that is not an object is reported at the parent's own path
    name, rest = path[0], path[1:]
    if name.endswith("[]"):
        items = obj.get(name[:-2])
        if not isinstance(items, list):
            return []
        return [v for item in items if isinstance(item, Mapping) for v in _values(item, rest)]
    value = obj.get(name)
    return [] if value is None else _values(value, rest)


def check(schema: Schema, obj: Mapping[str, Any], where: str = "") -> None:
    """Refuse (`OutOfRange`) an object a field of which is outside Stripe's limits."""
    for path, kind in schema.items():
        for value in _values(obj, path.split(".")):
            problem = kind(value)
            if problem:
                raise OutOfRange(f"{where}{path.replace('[]', '[…]')} {problem}.")


def check_event(event: Mapping[str, Any]) -> None:
    """Check the object of an event whose type the shop handles (its envelope is `webhooks.verify`'s)."""
    event_type = str(event.get("type") or "")
    for prefix, schema in BY_EVENT_TYPE:
        if event_type.startswith(prefix):
            check(schema, event["data"]["object"], "The event's data.object.")
            return


# ------------------------------------------------------------------------------------------------ readers


# The one reader of each kind of field: every module reads Stripe's objects through these.


def timestamp(value: Any) -> datetime | None:
    """A Unix timestamp as a datetime; None when missing or not one a datetime can hold."""
    if unix_time(value) if value is not None else "missing":
        return None
    return datetime.fromtimestamp(value, tz=UTC)


def integer(value: Any) -> int:
    """A whole-number field (an amount); 0 when missing or not a whole number (`True` is not one)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def object_id(value: Any) -> str:
    """The id of an object, or of a field that Stripe sends either as an id or as the expanded object; "" when
    there is none (or it is not a string)."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) else ""


def payment_intent_id(obj: Mapping[str, Any]) -> str:
    """The PaymentIntent a Stripe object is about: the object itself if it is one, otherwise its `payment_intent`
    (a Checkout Session's, a charge's, a refund's, a dispute's); "" when it names none."""
    return object_id(obj if obj.get("object") == "payment_intent" else obj.get("payment_intent"))
