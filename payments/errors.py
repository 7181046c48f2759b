"""Errors a shopper can cause or meet, each with the HTTP status and the words the shop answers with."""

from __future__ import annotations


class ShopError(Exception):
    """A refusal: its HTTP status, a code for scripts and the words for the shopper; `details` go into the JSON
    answer, `template` and `page` make the page a browser's form is answered with (`views.refused`)."""

    status = 400
    code = "bad_request"
    template = "payments/refused.html"

    def __init__(
        self, message: str, *, status: int | None = None, code: str | None = None, **details: object
    ) -> None:
        super().__init__(message)
        self.message = str(message)  # in the language active where it was raised (the shopper's request)
        self.details = details  # more for the shopper's script, e.g. a link
        self.page: dict[str, object] = {}
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code

    def as_json(self) -> dict[str, object]:
        return {"error": {"code": self.code, "message": self.message, **self.details}}


class OrderNotEditable(ShopError):
    status = 409
    code = "order_not_editable"


class NotOrderOwner(ShopError):
    status = 403
    code = "not_your_order"


class CurrencyMismatch(ShopError):
    status = 409
    code = "currency_mismatch"


class EmptyOrder(ShopError):
    status = 409
    code = "empty_order"


class OrderNotPayable(ShopError):
    status = 409
    code = "order_not_payable"


class AlreadyPaid(ShopError):
    """A click from a tab that did not see the item was bought in another tab meanwhile."""

    status = 409
    code = "already_paid"


class OrderChanged(ShopError):
    """The shopper's page shows another total than the order has now (changed in another tab)."""

    status = 409
    code = "order_changed"


class OrderBusy(ShopError):
    """Another request holds the order's lock for longer than we wait; retrying soon works."""

    status = 503
    code = "order_busy"


class AmountNotChargeable(ShopError):
    status = 422
    code = "amount_not_chargeable"


class PaymentsNotConfigured(ShopError):
    status = 503
    code = "payments_not_configured"


class CheckoutUnavailable(ShopError):
    """Checkout cannot take this order's payment (its total differs from ours); paying by card still works."""

    status = 502
    code = "checkout_unavailable"


class PaymentProviderError(ShopError):
    """Stripe did not do what was asked: an outage (`StripeOutage`) or a refusal (`StripeRefused`). Which one is
    decided in one place, `gateway.stripe_call`; details are in the log."""

    status = 502
    code = "payment_provider_error"


class StripeOutage(PaymentProviderError):
    """Stripe could not be reached, answered 5xx or asked us to slow down (429): trying again later may work.
    Whether a create went through is unknown (an indeterminate call)."""


class StripeRefused(PaymentProviderError):
    """Stripe answered and refused the request, for a reason (`stripe_code`, `reason` in words for staff). Sending
    the same request again gets the same answer."""

    code = "payment_provider_refused"

    def __init__(self, message: str, *, stripe_code: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.stripe_code = stripe_code
        self.reason = reason or message


class StripeNotFound(StripeRefused):
    """Stripe has no such object in this account (`resource_missing`)."""


class CardDeclined(StripeRefused):
    """The card was declined (a `card_error`): the shopper may try another card."""

    status = 402
    code = "card_declined"
