"""Where amounts meet Stripe's currency rules.

Everything that turns a shop amount into the integer Stripe expects (or back)
goes through this module: ``decimal`` only, never ``float``. Its tables are Stripe's documented ones; the
Stripe emulator keeps its own copy of them (``stripe_emulator/money.py``), so the two are checked against each
other instead of sharing one guess.

Stripe expresses every amount as an integer count of the currency's *minor
unit* (https://docs.stripe.com/currencies#minor-units):

* two-decimal currencies (the default; USD, EUR, ...): 10.00 USD -> ``1000``;
* zero-decimal currencies (JPY, KRW, ...): 500 JPY -> ``500``;
* three-decimal currencies (KWD, BHD, ...): 5.120 KWD -> ``5120``; Stripe
  requires the last digit to be ``0`` (amounts in steps of 10 minor units).

Special cases (https://docs.stripe.com/currencies#special-cases), and what
this module does about them:

* ISK: card networks only accept whole krónur since 2023-04-14, but ISK stays a
  *two-decimal* currency in the API for backwards compatibility (``100`` means
  1 ISK) and Stripe rejects amounts that are not divisible by 100
  (``invalid_charge_amount_no_decimal_compatible``). So ISK has exponent 2 here,
  and ``to_minor_units`` rounds ISK to whole krónur (steps of 100 minor units),
  the same way three-decimal currencies are rounded to steps of 10.
* HUF and TWD: charges may carry two decimals; only *payouts* must be whole
  units. This module only deals with charges, so they are plain two-decimal.
* UGX: on Stripe's zero-decimal list for charges (exponent 0). Any payout-side
  rounding rule is outside this module.

The minimum charge table and ``MAX_AMOUNT`` follow
https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Context, Decimal, DivisionByZero, InvalidOperation, Overflow
from typing import Final

from django.utils.translation import gettext as _

__all__ = [
    "MAX_AMOUNT",
    "MINIMUM_CHARGE",
    "THREE_DECIMAL_CURRENCIES",
    "ZERO_DECIMAL_CURRENCIES",
    "AmountError",
    "AmountTooLarge",
    "AmountTooSmall",
    "InvalidAmount",
    "allocate",
    "check_chargeable",
    "display_money",
    "display_percent",
    "format_money",
    "from_minor_units",
    "minimum_charge",
    "minor_unit_exponent",
    "minor_unit_step",
    "to_minor_units",
]

# Stripe's zero-decimal currencies (https://docs.stripe.com/currencies#zero-decimal).
ZERO_DECIMAL_CURRENCIES: Final[frozenset[str]] = frozenset(
    {
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    }
)

# Stripe's three-decimal currencies (https://docs.stripe.com/currencies#three-decimal).
# The minor amount must end in 0, i.e. be divisible by 10.
THREE_DECIMAL_CURRENCIES: Final[frozenset[str]] = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})

# Two-decimal in the API, but only whole units may be charged (amount % 100 == 0).
_WHOLE_UNIT_TWO_DECIMAL_CURRENCIES: Final[frozenset[str]] = frozenset({"isk"})

# Stripe accepts at most eight digits in the ``amount`` field.
MAX_AMOUNT: Final[int] = 99_999_999

# Stripe's documented minimum charge amounts, in minor units.
MINIMUM_CHARGE: Final[dict[str, int]] = {
    "usd": 50,  # $0.50
    "aed": 200,  # 2.00 AED
    "aud": 50,  # 0.50 AUD
    "bgn": 100,  # 1.00 BGN
    "brl": 50,  # 0.50 BRL
    "cad": 50,  # 0.50 CAD
    "chf": 50,  # 0.50 CHF
    "czk": 1500,  # 15.00 CZK
    "dkk": 250,  # 2.50 DKK
    "eur": 50,  # €0.50
    "gbp": 30,  # £0.30
    "hkd": 400,  # 4.00 HKD
    "huf": 17500,  # 175.00 HUF
    "inr": 50,  # 0.50 INR
    "jpy": 50,  # ¥50
    "mxn": 1000,  # 10.00 MXN
    "myr": 200,  # 2.00 MYR
    "nok": 300,  # 3.00 NOK
    "nzd": 50,  # 0.50 NZD
    "pln": 200,  # 2.00 PLN
    "ron": 200,  # 2.00 RON
    "sek": 300,  # 3.00 SEK
    "sgd": 50,  # 0.50 SGD
    "thb": 1000,  # 10.00 THB
}

# Fallback minimums for currencies Stripe does not list, by exponent: 0.50 of a
# two-decimal currency, 1 unit of a zero-decimal one, 0.500 of a three-decimal
# one. (Stripe's real floor for such currencies is "about 0.50 USD converted",
# which we cannot know offline; Stripe rejects anything lower at charge time.)
_DEFAULT_MINIMUM_BY_EXPONENT: Final[dict[int, int]] = {0: 1, 2: 50, 3: 500}

_SYMBOLS: Final[dict[str, str]] = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥"}

# Refuse absurd magnitudes up front (no real shop total has 30 integer digits),
# so a hostile Decimal("1E+999999999") cannot make us allocate a huge integer.
_MAX_INTEGER_DIGITS: Final[int] = 30


class AmountError(ValueError):
    """An amount that cannot be sent to Stripe.

    ``str(error)`` is for logs; ``shopper_message`` is plain words for the shopper, in their language.
    """

    def __init__(self, message: str, *, shopper_message: str) -> None:
        super().__init__(message)
        self.shopper_message: str = shopper_message


class InvalidAmount(AmountError):
    """Not a usable amount at all: negative, NaN, infinite, or not a multiple of the currency's step."""


class AmountTooSmall(AmountError):
    """Below Stripe's minimum charge for the currency."""

    def __init__(
        self, message: str, *, shopper_message: str, amount_minor: int, minimum_minor: int, currency: str
    ) -> None:
        super().__init__(message, shopper_message=shopper_message)
        self.amount_minor = amount_minor
        self.minimum_minor = minimum_minor
        self.currency = currency


class AmountTooLarge(AmountError):
    """Above Stripe's maximum (eight digits of minor units)."""

    def __init__(
        self,
        message: str,
        *,
        shopper_message: str,
        amount_minor: int | None,
        maximum_minor: int,
        currency: str,
    ) -> None:
        super().__init__(message, shopper_message=shopper_message)
        self.amount_minor = amount_minor
        self.maximum_minor = maximum_minor
        self.currency = currency


def _normalize_currency(currency: str) -> str:
    if not isinstance(currency, str):
        raise TypeError(f"currency must be a str ISO 4217 code, not {type(currency).__name__}")
    code = currency.lower()
    if len(code) != 3 or not (code.isascii() and code.isalpha()):
        raise ValueError(f"{currency!r} is not a three-letter ISO 4217 currency code")
    return code


def minor_unit_exponent(currency: str) -> int:
    """Number of decimals Stripe's integer amounts carry for ``currency`` (0, 2 or 3)."""
    code = _normalize_currency(currency)
    if code in ZERO_DECIMAL_CURRENCIES:
        return 0
    if code in THREE_DECIMAL_CURRENCIES:
        return 3
    return 2


def minor_unit_step(currency: str) -> int:
    """Granularity Stripe accepts, in minor units: 10 for three-decimal currencies, 100 for ISK, else 1."""
    code = _normalize_currency(currency)
    if code in THREE_DECIMAL_CURRENCIES:
        return 10
    if code in _WHOLE_UNIT_TWO_DECIMAL_CURRENCIES:
        return 100
    return 1


def minimum_charge(currency: str) -> int:
    """Smallest amount (minor units) Stripe will charge in ``currency``; see ``MINIMUM_CHARGE``."""
    code = _normalize_currency(currency)
    if code in MINIMUM_CHARGE:
        return MINIMUM_CHARGE[code]
    default = _DEFAULT_MINIMUM_BY_EXPONENT[minor_unit_exponent(code)]
    step = minor_unit_step(code)
    return max(default, step)  # ISK: 0.50 is not chargeable, 1 króna is.


def _context(digits: int) -> Context:
    # A private context: independent of whatever the thread's context is, with
    # enough precision that every operation below is exact.
    return Context(
        prec=max(28, digits + 5), rounding=ROUND_HALF_UP, traps=[InvalidOperation, Overflow, DivisionByZero]
    )


def _decimal_places(currency: str) -> int:
    """Decimal places an amount is rounded to before conversion (exponent minus the step's zeros)."""
    return minor_unit_exponent(currency) - (len(str(minor_unit_step(currency))) - 1)


def _check_decimal(amount: object, *, allow_negative: bool) -> Decimal:
    if isinstance(amount, float):
        raise TypeError("floats are not accepted for money; pass a Decimal (e.g. Decimal('12.50'))")
    if isinstance(amount, bool) or not isinstance(amount, Decimal | int):
        raise TypeError(f"amount must be a Decimal, not {type(amount).__name__}")
    value = Decimal(amount)
    if not value.is_finite():
        raise InvalidAmount(
            f"amount must be a finite number, got {value}",
            shopper_message=_("The total is not a valid amount."),
        )
    if value < 0 and not allow_negative:
        raise InvalidAmount(
            f"amount must not be negative, got {value}",
            shopper_message=_("The total can't be a negative amount."),
        )
    return value


def to_minor_units(amount: Decimal, currency: str) -> int:
    """Convert ``amount`` (major units, e.g. ``Decimal("12.50")``) to Stripe's integer amount.

    Extra precision is rounded ROUND_HALF_UP to what Stripe accepts: 2 decimals
    for two-decimal currencies, whole units for zero-decimal ones and ISK, and
    2 decimals (= steps of 10 minor units) for three-decimal currencies.
    ``int`` amounts are taken as exact major units; floats raise ``TypeError``;
    NaN, infinities and negative amounts raise ``InvalidAmount``.
    """
    code = _normalize_currency(currency)
    value = _check_decimal(amount, allow_negative=False)
    exponent = minor_unit_exponent(code)
    if value.adjusted() >= _MAX_INTEGER_DIGITS:
        raise AmountTooLarge(
            f"{value} {code.upper()} is far beyond any chargeable amount",
            shopper_message=_too_large_message(None, code),
            amount_minor=None,
            maximum_minor=MAX_AMOUNT,
            currency=code,
        )
    ctx = _context(_MAX_INTEGER_DIGITS + exponent)
    quantum = Decimal(1).scaleb(-_decimal_places(code))
    rounded = value.quantize(quantum, rounding=ROUND_HALF_UP, context=ctx)
    minor = rounded.scaleb(exponent, context=ctx)
    return int(minor)


def from_minor_units(amount: int, currency: str) -> Decimal:
    """Exact inverse of ``to_minor_units``: Stripe integer -> Decimal with the currency's decimals.

    Negative values are allowed here (Stripe reports refunds and fees as
    negative balance amounts); ``from_minor_units(-1250, "usd") == Decimal("-12.50")``.
    """
    code = _normalize_currency(currency)
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError(f"minor-unit amounts are ints, not {type(amount).__name__}")
    exponent = minor_unit_exponent(code)
    ctx = _context(amount.bit_length() // 3 + 1 + exponent)  # bit_length/3 bounds the decimal digits
    return Decimal(amount).scaleb(-exponent, context=ctx).quantize(Decimal(1).scaleb(-exponent), context=ctx)


def format_money(amount: Decimal | int, currency: str, *, minor: bool = False) -> str:
    """Locale-independent display string: ``$12.50``, ``€9.99``, ``¥1,500``, ``12.500 KWD``.

    ``amount`` is in major units (``Decimal`` or ``int``) unless ``minor=True``,
    in which case it is a Stripe integer amount. Major-unit amounts are shown
    with the currency's number of decimals (rounded half up for display only).
    """
    code = _normalize_currency(currency)
    if minor:
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise TypeError(f"with minor=True the amount must be an int, not {type(amount).__name__}")
        value = from_minor_units(amount, code)
    else:
        value = _check_decimal(amount, allow_negative=True)
    exponent = minor_unit_exponent(code)
    ctx = _context(max(value.adjusted(), 0) + exponent + 1)
    shown = value.copy_abs().quantize(Decimal(1).scaleb(-exponent), rounding=ROUND_HALF_UP, context=ctx)
    sign = "-" if value < 0 and shown != 0 else ""
    number = f"{shown:,.{exponent}f}"
    symbol = _SYMBOLS.get(code)
    if symbol is not None:
        return f"{sign}{symbol}{number}"
    return f"{sign}{number} {code.upper()}"


def display_money(
    amount: Decimal | int, currency: str, *, minor: bool = False, locale: str | None = None
) -> str:
    """What a shopper reads: the amount formatted for their locale by py-moneyed's Babel formatting
    (``moneyed.l10n.format_money``, CLDR's patterns): ``€89.90`` in English, ``89,90\xa0€`` in Russian.

    ``locale`` is a Babel locale (``"ru"``, ``"en_US"``); by default the active Django language's. The amount
    is exact: minor units become a Decimal through ``from_minor_units``, and the number always shows the
    currency's Stripe decimals (``¥1,500``, ``KWD\xa012.500``), never CLDR's own digits where they differ
    (CLDR rounds ALL or RSD to whole units, which Stripe charges with two decimals). The admin and the logs
    keep the locale-independent ``format_money``.
    """
    code = _normalize_currency(currency)
    if minor:
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise TypeError(f"with minor=True the amount must be an int, not {type(amount).__name__}")
        value = from_minor_units(amount, code)
    else:
        value = _check_decimal(amount, allow_negative=True)
    exponent = minor_unit_exponent(code)
    ctx = _context(max(value.adjusted(), 0) + exponent + 1)
    value = value.quantize(Decimal(1).scaleb(-exponent), rounding=ROUND_HALF_UP, context=ctx)
    return _localized(value, code, exponent, locale or _active_locale())


def display_percent(value: Decimal | int, *, locale: str | None = None) -> str:
    """A rate (a tax, a discount) as the shopper's locale writes it: ``2.5%`` in English, ``2,5\xa0%`` in
    Russian; up to four decimals, as rates are stored."""
    from babel import Locale
    from babel.numbers import format_percent

    locale = locale or _active_locale()
    pattern = copy.copy(Locale.parse(locale).percent_formats[None])
    pattern.frac_prec = (0, 4)
    text: str = format_percent(Decimal(value) / 100, format=pattern, locale=locale)
    return text


def plain_percent(value: Decimal | int) -> str:
    """A rate as staff and logs read it, whatever the language: ``20`` for 20.0000, ``2.5`` for 2.5000 (the
    shopper's pages use ``display_percent``)."""
    return format(Decimal(value).normalize(), "f")


def _active_locale() -> str:
    from django.utils.translation import get_language, to_locale

    return to_locale(get_language() or "en")


def _localized(value: Decimal, code: str, exponent: int, locale: str) -> str:
    from babel import Locale, UnknownLocaleError
    from moneyed import Money
    from moneyed.classes import CurrencyDoesNotExist
    from moneyed.l10n import format_money as moneyed_format_money

    try:
        pattern = copy.copy(Locale.parse(locale).currency_formats["standard"])
        money = Money(value, code.upper())
    except (UnknownLocaleError, ValueError, CurrencyDoesNotExist):
        return format_money(value, code)
    pattern.frac_prec = (exponent, exponent)  # Stripe's decimals for the currency, not CLDR's
    text: str = moneyed_format_money(money, format=pattern, locale=locale, currency_digits=False)
    # CLDR's currency spacing, which Babel leaves out: a code written as letters is kept apart from the digits
    # ("KWD 12.500", not "KWD12.500").
    return re.sub(r"(?<=[A-Z]{3})(?=[\d-])|(?<=\d)(?=[A-Z]{3})", "\xa0", text)


def _too_large_message(amount_minor: int | None, currency: str) -> str:
    label = currency.upper()
    maximum = display_money(MAX_AMOUNT - MAX_AMOUNT % minor_unit_step(currency), currency, minor=True)
    if amount_minor is None:
        return _("The total is above the maximum of %(maximum)s that can be charged in %(currency)s.") % {
            "maximum": maximum,
            "currency": label,
        }
    return _(
        "The total of %(total)s is above the maximum of %(maximum)s that can be charged in %(currency)s."
    ) % {
        "total": display_money(amount_minor, currency, minor=True),
        "maximum": maximum,
        "currency": label,
    }


def check_chargeable(amount_minor: int, currency: str) -> None:
    """Raise an ``AmountError`` unless Stripe will accept ``amount_minor`` in ``currency``.

    Call this before every Stripe call that carries an amount. Raises
    ``AmountTooSmall`` below the minimum charge, ``AmountTooLarge`` above
    ``MAX_AMOUNT``, and ``InvalidAmount`` for negative amounts or amounts that
    are not a multiple of the currency's step (10 for KWD etc., 100 for ISK).
    """
    code = _normalize_currency(currency)
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise TypeError(f"amount_minor must be an int, not {type(amount_minor).__name__}")
    label = code.upper()
    if amount_minor < 0:
        raise InvalidAmount(
            f"negative amount {amount_minor} {label}",
            shopper_message=_("The total can't be a negative amount."),
        )
    if amount_minor > MAX_AMOUNT:
        raise AmountTooLarge(
            f"{amount_minor} minor units of {label} exceeds Stripe's maximum of {MAX_AMOUNT}",
            shopper_message=_too_large_message(amount_minor, code),
            amount_minor=amount_minor,
            maximum_minor=MAX_AMOUNT,
            currency=code,
        )
    minimum = minimum_charge(code)
    if amount_minor < minimum:
        total = display_money(amount_minor, code, minor=True)
        lowest = display_money(minimum, code, minor=True)
        raise AmountTooSmall(
            f"{amount_minor} minor units of {label} is below Stripe's minimum of {minimum}",
            shopper_message=_(
                "The total of %(total)s is below the minimum of %(minimum)s that can be charged in %(currency)s."
            )
            % {"total": total, "minimum": lowest, "currency": label},
            amount_minor=amount_minor,
            minimum_minor=minimum,
            currency=code,
        )
    step = minor_unit_step(code)
    if amount_minor % step:
        total = display_money(amount_minor, code, minor=True)
        increment = display_money(step, code, minor=True)
        raise InvalidAmount(
            f"{amount_minor} minor units of {label} is not a multiple of {step}",
            shopper_message=_(
                "The total of %(total)s can't be charged: amounts in %(currency)s must be in steps of %(step)s."
            )
            % {"total": total, "currency": label, "step": increment},
        )


def allocate(total: int, weights: Sequence[int], step: int = 1) -> list[int]:
    """Split ``total`` minor units over ``weights`` in proportion, in multiples of ``step``, so that the shares
    add up exactly: every share is rounded down, then the steps left over go one each to the shares with the
    largest remainders (the earlier weight first on a tie). How Stripe spreads an order-level coupon over
    Checkout's lines, and so how the shop spreads its discount, so that both ways tax the same cents.

    Integer arithmetic throughout: a Decimal quotient is rounded to 28 digits, so equal remainders of shares
    with different whole parts could compare unequal and send a tie to the wrong share.
    """
    weight_sum = sum(weights)
    if weight_sum <= 0:
        return [0 for _ in weights]
    units = total // step
    shares = [units * w // weight_sum for w in weights]
    remainders = [units * w % weight_sum for w in weights]
    leftover = units - sum(shares)
    by_remainder = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in by_remainder[:leftover]:
        shares[i] += 1
    return [s * step for s in shares]
