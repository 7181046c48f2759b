"""What every emulated object shares: ids, addresses, lists, and leaving out what Stripe leaves out."""

from __future__ import annotations

import secrets
import string
from typing import Any

JSONDict = dict[str, Any]

_ID_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def address() -> JSONDict:
    return {"city": None, "country": None, "line1": None, "line2": None, "postal_code": None, "state": None}


def list_object(data: list[JSONDict], url: str, has_more: bool = False) -> JSONDict:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


#: Top-level fields API version ``2026-10-28.endive`` marks optional but not nullable (``field?: T`` in the
#: types of Stripe's Node library for that version, ``stripe@23.1.0``): Stripe leaves such a field out when it
#: has no value, and never sends it as ``null``.
OPTIONAL_NOT_NULLABLE: dict[str, frozenset[str]] = {
    "payment_intent": frozenset({"amount_details", "hooks", "payment_details", "presentment_details"}),
    "checkout.session": frozenset(
        {
            "branding_settings",
            "excluded_payment_method_types",
            "line_items",
            "name_collection",
            "phone_number_collection",
            "presentment_details",
            "redirect_on_completion",
            "return_url",
            "tax_id_collection",
        }
    ),
    "charge": frozenset({"authorization_code", "level3", "presentment_details", "radar_options", "transfer"}),
    "refund": frozenset(
        {
            "description",
            "destination_details",
            "failure_balance_transaction",
            "failure_reason",
            "instructions_email",
            "next_action",
            "pending_reason",
            "presentment_details",
        }
    ),
    "event": frozenset({"account", "context"}),
}


def present(value: Any) -> Any:
    """``value`` as Stripe sends it: in every object it contains, the optional non-nullable fields without a
    value are left out rather than sent as ``null`` (see ``OPTIONAL_NOT_NULLABLE``)."""
    if isinstance(value, list):
        return [present(v) for v in value]
    if not isinstance(value, dict):
        return value
    absent = OPTIONAL_NOT_NULLABLE.get(str(value.get("object")), frozenset())
    return {k: present(v) for k, v in value.items() if not (v is None and k in absent)}
