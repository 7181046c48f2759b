"""What shoppers send to the cart, promotion code and pay endpoints, as Django forms: form-encoded bodies and JSON bodies alike
(`submitted`), each field checked once, and a refusal that says which field and why (`ShopError`, 400)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django import forms
from django.conf import settings
from django.http import HttpRequest
from django.utils.functional import lazy
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from core import jsonbody
from payments.errors import ShopError
from payments.models import MAX_QUANTITY


def _quantity_message() -> str:
    return gettext("Quantity must be a whole number from 1 to %(max)d.") % {"max": MAX_QUANTITY}


# Shown in the language of the request that is refused (lazy: these fields are made once, at import).
QUANTITY_MESSAGE = lazy(_quantity_message, str)()
ITEM_MESSAGE = _("Choose an item.")
# The code of a refusal, by the first field that refused.
CODES = {
    "item_id": "invalid_item",
    "quantity": "invalid_quantity",
    "mode": "invalid_mode",
    "currency": "invalid_currency",
    "expected_amount": "invalid_amount",
    "page_age_ms": "invalid_page_age",
    "receipt_email": "invalid_email",
    "code": "invalid_code",
}


def submitted(request: HttpRequest) -> Mapping[str, Any]:
    """The request's fields: a JSON object body (read by `core.jsonbody`: size and depth limited), or the
    form-encoded body (or query, for a GET)."""
    if request.content_type == "application/json":
        try:
            data = jsonbody.parse(request.body or b"{}")
        except jsonbody.BadJSON as exc:
            raise ShopError(exc.message, code="invalid_json") from exc
        if not isinstance(data, dict):
            raise ShopError(gettext("The body must be a JSON object."), code="invalid_json")
        return {k: "" if v is None else v for k, v in data.items()}
    return request.POST if request.method == "POST" else request.GET


class ShopForm(forms.Form):
    def checked(self) -> dict[str, Any]:
        """The cleaned fields, or a `ShopError` naming the first field that is wrong."""
        if self.is_valid():
            return self.cleaned_data
        field, errors = next(iter(self.errors.items()))
        raise ShopError(str(errors[0]), code=CODES.get(field, "bad_request"))


class WholeNumberField(forms.IntegerField):
    """Digits only (or a JSON integer): "1.0", "1e3" or " 1" are not the whole numbers a shopper types."""

    def to_python(self, value: Any) -> int | None:
        if value in self.empty_values:
            return None
        if isinstance(value, bool | float) or (
            isinstance(value, str) and not re.fullmatch(r"-?[0-9]{1,20}", value)
        ):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        result: int | None = super().to_python(value)
        return result


def item_field(required: bool = True) -> forms.IntegerField:
    messages = {
        "required": ITEM_MESSAGE,
        "invalid": ITEM_MESSAGE,
        "min_value": ITEM_MESSAGE,
        "max_value": ITEM_MESSAGE,
    }
    return WholeNumberField(required=required, min_value=1, max_value=2**63 - 1, error_messages=messages)


def quantity_field() -> forms.IntegerField:
    messages = {"invalid": QUANTITY_MESSAGE, "min_value": QUANTITY_MESSAGE, "max_value": QUANTITY_MESSAGE}
    return WholeNumberField(required=False, min_value=1, max_value=MAX_QUANTITY, error_messages=messages)


class ItemForm(ShopForm):
    """`POST /order/remove/<id>`: which line."""

    item_id = item_field()


class ItemQuantityForm(ShopForm):
    """`POST /cart/add`: an item and how many (1 when not given)."""

    item_id = item_field()
    quantity = quantity_field()

    def clean_quantity(self) -> int:
        return self.cleaned_data.get("quantity") or 1


class PutForm(ItemQuantityForm):
    """`POST /order/put/<id>`: add to the line (`add`, the default) or set its quantity (`set`)."""

    mode = forms.ChoiceField(
        choices=[("add", "add"), ("set", "set")],
        required=False,
        error_messages={"invalid_choice": _("mode is add or set.")},
    )


class NewOrderForm(ShopForm):
    """`POST /order/new/`: a new cart, in the currency of its first item (or `currency`)."""

    item_id = item_field(required=False)
    quantity = quantity_field()
    currency = forms.CharField(required=False, max_length=3)

    def clean_quantity(self) -> int:
        return self.cleaned_data.get("quantity") or 1

    def clean_currency(self) -> str:
        given = "currency" in self.data
        currency = str(
            self.cleaned_data.get("currency") if given else settings.STRIPE_DEFAULT_CURRENCY
        ).lower()
        if currency not in settings.STRIPE_ACCOUNTS:  # the browser's word, not our setup
            raise forms.ValidationError(gettext("This shop does not sell in that currency."))
        return currency


class PayForm(ShopForm):
    """What the Pay and Checkout buttons send besides the order: the total the page showed (checked, never
    charged) and how long ago the page was loaded (in the browser's own clock)."""

    expected_amount = WholeNumberField(
        required=False,
        min_value=0,
        error_messages={"invalid": _("expected_amount must be a whole number of minor units.")},
    )
    page_age_ms = WholeNumberField(required=False, min_value=0, max_value=7 * 24 * 3600 * 1000)
    receipt_email = forms.EmailField(
        required=False,
        max_length=254,  # what the order's field and the RFC hold
        error_messages={
            "invalid": _("Enter a valid email address for your receipt, or leave it empty."),
            "max_length": _("Enter a valid email address for your receipt, or leave it empty."),
        },
    )


class PromoForm(ShopForm):
    """`POST /order/<id>/promo`: a promotion code as the shopper typed it (`promotions.apply_code` finds it)."""

    code = forms.CharField(max_length=100, required=False, strip=True)
