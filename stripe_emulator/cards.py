"""Stripe's test cards, test PaymentMethods and test IBANs, and what paying with each one does
(https://docs.stripe.com/testing)."""

from __future__ import annotations

from dataclasses import dataclass

AUTH_FAILURE_MESSAGE = (
    "We are unable to authenticate your payment method. "
    "Please choose a different payment method and try again."
)
INVALID_NUMBER_MESSAGE = "Your card number is invalid."


@dataclass(frozen=True)
class CardOutcome:
    """What confirming with a test card does (https://docs.stripe.com/testing)."""

    result: str  # "succeeded" | "declined" | "requires_action"
    brand: str = "visa"
    code: str | None = None
    decline_code: str | None = None
    message: str | None = None
    #: After the payment succeeds: a dispute with this reason is opened at once.
    dispute: str | None = None
    #: What a refund of the charge does: "succeeded" (default), "pending" (then succeeds), or
    #: "fails" (starts as succeeded, fails later: see ``Emulator.fail_refund``).
    refund: str = "succeeded"


GENERIC_DECLINE = CardOutcome(
    "declined", "visa", "card_declined", "generic_decline", "Your card was declined."
)


def _declined(code: str, decline_code: str, message: str) -> CardOutcome:
    return CardOutcome("declined", "visa", code, decline_code, message)


#: The test cards of https://docs.stripe.com/testing that a Payment Element can take, and what they do; any
#: other valid number is a generic decline.
CARD_OUTCOMES: dict[str, CardOutcome] = {
    # "Cards by brand": each one succeeds.
    "4242424242424242": CardOutcome("succeeded", "visa"),
    "4000056655665556": CardOutcome("succeeded", "visa"),  # debit
    "5555555555554444": CardOutcome("succeeded", "mastercard"),
    "2223003122003222": CardOutcome("succeeded", "mastercard"),  # 2-series
    "5200828282828210": CardOutcome("succeeded", "mastercard"),  # debit
    "5105105105105100": CardOutcome("succeeded", "mastercard"),  # prepaid
    "378282246310005": CardOutcome("succeeded", "amex"),
    "371449635398431": CardOutcome("succeeded", "amex"),
    "6011111111111117": CardOutcome("succeeded", "discover"),
    "6011000990139424": CardOutcome("succeeded", "discover"),
    "3056930009020004": CardOutcome("succeeded", "diners"),
    "36227206271667": CardOutcome("succeeded", "diners"),  # 14 digits
    "3566002020360505": CardOutcome("succeeded", "jcb"),
    "6200000000000005": CardOutcome("succeeded", "unionpay"),
    # "Declined payments".
    "4000000000000002": GENERIC_DECLINE,
    "4000000000009995": _declined("card_declined", "insufficient_funds", "Your card has insufficient funds."),
    "4000000000009987": _declined("card_declined", "lost_card", "Your card was declined."),
    "4000000000009979": _declined("card_declined", "stolen_card", "Your card was declined."),
    "4000000000000069": _declined("expired_card", "expired_card", "Your card has expired."),
    "4000000000000127": _declined(
        "incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect."
    ),
    "4000000000000119": _declined(
        "processing_error",
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
    ),
    # "Authentication and setup": 3D Secure asked on every payment ("always authenticate"), or unless the
    # card was set up for future payments ("authenticate unless set up"; this shop never sets cards up).
    "4000002760003184": CardOutcome("requires_action", "visa"),
    "4000002500003155": CardOutcome("requires_action", "visa"),
    "4000000000003220": CardOutcome("requires_action", "visa"),  # 3D Secure 2, required
    # "Disputes": "the charge succeeds, then is disputed" for the reason given.
    "4000000000000259": CardOutcome("succeeded", "visa", dispute="fraudulent"),
    "4000000000002685": CardOutcome("succeeded", "visa", dispute="product_not_received"),
    "4000000000001976": CardOutcome("succeeded", "visa", dispute="inquiry"),
    # "Refunds": "its status begins as pending ... transitions to succeeded" / "begins as succeeded and
    # transitions to failed".
    "4000000000007726": CardOutcome("succeeded", "visa", refund="pending"),
    "4000000000005126": CardOutcome("succeeded", "visa", refund="fails"),
}

#: Stripe's test PaymentMethod ids (https://docs.stripe.com/testing, "PaymentMethods" tabs), mapped to the
#: card number they stand for.
TEST_PAYMENT_METHODS: dict[str, str] = {
    "pm_card_visa": "4242424242424242",
    "pm_card_visa_debit": "4000056655665556",
    "pm_card_mastercard": "5555555555554444",
    "pm_card_amex": "378282246310005",
    "pm_card_discover": "6011111111111117",
    "pm_card_jcb": "3566002020360505",
    "pm_card_unionpay": "6200000000000005",
    "pm_card_visa_chargeDeclined": "4000000000000002",
    "pm_card_chargeDeclined": "4000000000000002",
    "pm_card_visa_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_visa_chargeDeclinedLostCard": "4000000000009987",
    "pm_card_chargeDeclinedLostCard": "4000000000009987",
    "pm_card_visa_chargeDeclinedStolenCard": "4000000000009979",
    "pm_card_chargeDeclinedStolenCard": "4000000000009979",
    "pm_card_chargeDeclinedExpiredCard": "4000000000000069",
    "pm_card_chargeDeclinedIncorrectCvc": "4000000000000127",
    "pm_card_chargeDeclinedProcessingError": "4000000000000119",
    "pm_card_authenticationRequired": "4000002760003184",
    "pm_card_authenticationRequiredOnSetup": "4000002500003155",
    "pm_card_createDispute": "4000000000000259",
    "pm_card_createDisputeProductNotReceived": "4000000000002685",
    "pm_card_createDisputeInquiry": "4000000000001976",
    "pm_card_pendingRefund": "4000000000007726",
    "pm_card_refundFail": "4000000000005126",
}

#: Stripe's test IBANs for SEPA Direct Debit (https://docs.stripe.com/testing, "Bank debits"): the payment stays
#: ``processing`` for days, then "transitions from processing to succeeded" or "to requires_payment_method".
#: The emulator waits for ``Emulator.settle_bank_debit`` instead of days.
TEST_IBANS: dict[str, str] = {
    "DE89370400440532013000": "succeeds",
    "DE62370400440532013001": "fails",
    "AT611904300234573201": "succeeds",
    "AT861904300235473202": "fails",
}


def card_number_is_valid(number: str) -> bool:
    """A card number Stripe.js would accept: 12 to 19 digits passing the Luhn check."""
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for i, ch in enumerate(reversed(number)):
        digit = int(ch)
        if i % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def redirect_status(pi_status: str) -> str:
    """The ``redirect_status`` Stripe puts on the return URL for a PaymentIntent in ``pi_status``."""
    if pi_status in ("succeeded", "requires_capture"):
        return "succeeded"
    if pi_status == "processing":
        return "processing"
    return "failed"
