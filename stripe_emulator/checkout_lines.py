"""The steps of creating a Checkout Session that need no stored object: the request's checks, the expiry, the
total's limits, and the line items and breakdown built from the priced lines (:mod:`stripe_emulator.amounts`)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from decimal import Decimal

from stripe_emulator import amounts, money, shapes
from stripe_emulator.base import JSONDict, invalid
from stripe_emulator.shapes import new_id


@dataclass
class LinesIn:
    """A session's line items as asked: their currency, what each costs, its product, its tax rates."""

    currency: str | None = None
    lines: list[amounts.LineIn] = field(default_factory=list)
    #: ``(name, description)`` of each line's product.
    products: list[tuple[str, str | None]] = field(default_factory=list)
    #: The tax rate objects of each line.
    rates: list[list[JSONDict]] = field(default_factory=list)


def check_session_params(params: JSONDict) -> None:
    """What the emulator supports: a hosted-page payment session with a success URL and line items."""
    if params.get("mode", "payment") != "payment":
        raise invalid("The emulator only supports Checkout Sessions with mode=payment.", "mode")
    if params.get("ui_mode", "hosted_page") != "hosted_page":
        raise invalid("The emulator only supports ui_mode=hosted_page (the hosted page).", "ui_mode")
    if not params.get("success_url"):
        raise invalid("Missing required param: success_url.", "success_url", "parameter_missing")
    if not params.get("line_items"):
        raise invalid("Missing required param: line_items.", "line_items", "parameter_missing")


def check_price_data(param: str, pdata: JSONDict) -> int:
    """A line's ``unit_amount`` and ``product_data`` (its currency is checked before): the unit amount."""
    if "unit_amount" not in pdata:
        raise invalid(
            f"Missing required param: {param}[price_data][unit_amount].",
            f"{param}[price_data][unit_amount]",
            "parameter_missing",
        )
    unit_amount = int(pdata["unit_amount"])
    if unit_amount < 0:
        raise invalid("unit_amount must be >= 0.", f"{param}[price_data][unit_amount]")
    if "product_data" not in pdata:
        raise invalid(
            f"Missing required param: {param}[price_data][product_data].",
            f"{param}[price_data][product_data]",
            "parameter_missing",
        )
    return unit_amount


def check_quantity(param: str, item: JSONDict) -> int:
    quantity = item.get("quantity")
    if quantity is None:
        raise invalid(
            f"Missing required param: {param}[quantity].", f"{param}[quantity]", "parameter_missing"
        )
    if quantity < 1:
        raise invalid("Quantity must be at least 1.", f"{param}[quantity]")
    return int(quantity)


def expires_at(params: JSONDict, now: int) -> int:
    """The session's expiry: 24 hours by default, 30 minutes to 24 hours when given."""
    expiry = int(params.get("expires_at", now + 24 * 3600))
    if not (now + 30 * 60 - 5 <= expiry <= now + 24 * 3600 + 5):
        raise invalid(
            "The `expires_at` timestamp must be between 30 minutes and 24 hours "
            "from Checkout Session creation.",
            "expires_at",
        )
    return expiry


def price(asked: LinesIn, currency: str, coupon: JSONDict | None) -> amounts.Priced:
    """The session's amounts, within Stripe's minimum and maximum charge amounts."""
    priced = amounts.price_session(
        currency,
        asked.lines,
        percent_off=Decimal(str(coupon["percent_off"])) if coupon and coupon["percent_off"] else None,
        amount_off=coupon["amount_off"] if coupon else None,
    )
    minimum = money.minimum_amount(currency)
    if 0 < priced.amount_total < minimum:
        raise invalid(
            "The Checkout Session's total amount due must add up to at least "
            f"{money.format_amount(minimum, currency)} {currency}",
            "line_items",
            "amount_too_small",
        )
    if priced.amount_total > money.MAXIMUM_AMOUNT:
        raise invalid(
            "The Checkout Session's total amount due is too large.", "line_items", "amount_too_large"
        )
    return priced


def line_items(
    asked: LinesIn, currency: str, priced: amounts.Priced, discount: JSONDict | None, now: int
) -> tuple[list[JSONDict], dict[str, dict[str, list[JSONDict]]]]:
    """The session's line items, and what each one leaves out unless expanded (its taxes and discounts)."""
    items: list[JSONDict] = []
    includes: dict[str, dict[str, list[JSONDict]]] = {}
    for line, priced_line, rates, (name, _description) in zip(
        asked.lines, priced.lines, asked.rates, asked.products, strict=True
    ):
        li_id = new_id("li_")
        items.append(
            {
                "id": li_id,
                "object": "item",
                "adjustable_quantity": None,
                "amount_discount": priced_line.amount_discount,
                "amount_subtotal": priced_line.amount_subtotal,
                "amount_tax": priced_line.amount_tax,
                "amount_total": priced_line.amount_total,
                "currency": currency,
                "description": name,
                "metadata": {},
                "price": shapes.price(
                    price_id=new_id("price_"),
                    product_id=new_id("prod_"),
                    currency=currency,
                    unit_amount=line.unit_amount,
                    created=now,
                ),
                "quantity": line.quantity,
            }
        )
        includes[li_id] = {
            "discounts": (
                [{"amount": priced_line.amount_discount, "discount": copy.deepcopy(discount)}]
                if discount is not None and priced_line.amount_discount
                else []
            ),
            "taxes": [
                {
                    "amount": tax.amount,
                    "rate": copy.deepcopy(rate),
                    "taxability_reason": None,
                    "taxable_amount": tax.taxable_amount,
                }
                for tax, rate in zip(priced_line.taxes, rates, strict=True)
            ],
        }
    return items, includes


def breakdown(asked: LinesIn, priced: amounts.Priced, discount: JSONDict | None) -> JSONDict:
    """The session's ``total_details.breakdown``: its discount, and its tax by rate."""
    rate_objects = {r["id"]: r for rates in asked.rates for r in rates}
    return {
        "discounts": (
            [{"amount": priced.amount_discount, "discount": copy.deepcopy(discount)}]
            if discount is not None
            else []
        ),
        "taxes": [
            {
                "amount": amount,
                "rate": copy.deepcopy(rate_objects[rate_id]),
                "taxability_reason": None,
                "taxable_amount": taxable,
            }
            for rate_id, (amount, taxable) in priced.tax_by_rate().items()
        ],
    }
