"""Orders, their lines, discounts and taxes, the Stripe payments made for them, and Stripe's events.

Every payment is for an `Order`: buying one item creates a one-line order, so there is one payment path.
Amounts sent to Stripe are integers in minor units (see `core.money`); prices are Decimals.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Protocol

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Upper
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from core.money import display_money, display_percent, format_money, to_minor_units

MAX_QUANTITY = 99


class AppendOnlyError(RuntimeError):
    """Payments, refunds, disputes and Stripe's events are the shop's ledger: nothing deletes them."""


class LedgerQuerySet(models.QuerySet[Any]):
    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError(f"{self.model.__name__} rows are never deleted (the ledger is append-only).")


class LedgerModel(models.Model):
    """A row of the ledger: written by the shop's own paths (under the order's lock), never deleted."""

    objects = LedgerQuerySet.as_manager()

    class Meta:
        abstract = True

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError(f"{type(self).__name__} rows are never deleted (the ledger is append-only).")


CODE_PATTERN = re.compile(r"[A-Z0-9_-]{1,40}")


def dashboard_url(livemode: bool, path: str) -> str:
    """A page of Stripe's dashboard (test mode's, unless `livemode`), e.g. `payments/pi_...`."""
    return f"https://dashboard.stripe.com{'' if livemode else '/test'}/{path}"


def check_currency(currency: str) -> None:
    """A currency given to a tax or discount must be one the shop has a Stripe account for."""
    if currency and currency not in settings.STRIPE_ACCOUNTS:
        known = ", ".join(c.upper() for c in settings.STRIPE_ACCOUNTS) or "none"
        raise ValidationError(
            {"currency": f"{currency.upper()} is not a currency of this shop (its Stripe accounts: {known})."}
        )


class Discount(models.Model):
    """A percentage off, or a fixed amount off in one currency. Becomes a Stripe coupon in Checkout."""

    name = models.CharField(max_length=100)
    percent_off = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.01")), MaxValueValidator(Decimal("100"))],
        help_text="Percent off the order, e.g. 10 for 10%. Leave empty for a fixed amount.",
    )
    amount_off = models.DecimalField(
        max_digits=14,
        decimal_places=3,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.001"))],
        help_text="A fixed amount off, in the currency below. Leave empty for a percentage.",
    )
    currency = models.CharField(
        max_length=3, blank=True, help_text="Currency of the fixed amount (e.g. usd)."
    )
    is_active = models.BooleanField(default=True)
    # A promotion code: shoppers type it on their cart's page (see `payments.promotions`).
    code = models.CharField(
        max_length=40,
        blank=True,
        help_text="A promotion code shoppers enter on their order page (letters, digits, - and _; not case "
        "sensitive). Empty: only staff attach this discount to orders.",
    )
    valid_from = models.DateTimeField(null=True, blank=True, help_text="The code works from then on.")
    valid_until = models.DateTimeField(null=True, blank=True, help_text="The code works until then.")
    max_uses = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="At most this many paid orders with this discount (an order being paid holds one of "
        "them). Empty: no limit.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(Upper("code"), condition=~models.Q(code=""), name="discount_unique_code"),
            models.CheckConstraint(
                condition=models.Q(valid_from__isnull=True)
                | models.Q(valid_until__isnull=True)
                | models.Q(valid_until__gt=models.F("valid_from")),
                name="discount_valid_window",
            ),
            models.CheckConstraint(
                condition=(
                    models.Q(percent_off__isnull=False, amount_off__isnull=True)
                    | models.Q(percent_off__isnull=True, amount_off__isnull=False)
                ),
                name="discount_percent_xor_amount",
            ),
            models.CheckConstraint(
                condition=models.Q(percent_off__isnull=True)
                | models.Q(percent_off__gt=0, percent_off__lte=100),
                name="discount_percent_range",
            ),
            models.CheckConstraint(
                condition=models.Q(amount_off__isnull=True)
                | (models.Q(amount_off__gt=0) & ~models.Q(currency="")),
                name="discount_amount_has_currency",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.describe()})"

    def describe(self) -> str:
        """What the discount takes off, in the shopper's language (`10% off`, `10\xa0% скидки`)."""
        if self.percent_off is not None:
            return gettext("%(discount)s off") % {"discount": display_percent(self.percent_off)}
        return gettext("%(discount)s off") % {"discount": display_money(self.amount_off or 0, self.currency)}

    def clean(self) -> None:
        super().clean()
        self.currency = self.currency.strip().lower()
        check_currency(self.currency)
        if (self.percent_off is None) == (self.amount_off is None):
            raise ValidationError("Give either a percentage or a fixed amount, not both.")
        if self.amount_off is not None and not self.currency:
            raise ValidationError({"currency": "A fixed amount needs its currency."})
        if self.percent_off is not None:
            self.currency = ""
        self.code = self.code.strip().upper()
        if self.code and not CODE_PATTERN.fullmatch(self.code):
            raise ValidationError({"code": "Use letters, digits, - and _ only (at most 40)."})
        if self.valid_from and self.valid_until and self.valid_until <= self.valid_from:
            raise ValidationError({"valid_until": "The code must end after it starts."})

    def applies_to(self, currency: str) -> bool:
        """A percentage applies to any order; a fixed amount only to orders in its currency."""
        return self.percent_off is not None or self.currency.lower() == currency.lower()


class PromotionRefusal(models.Model):
    """How often, and why, shoppers' tries of an existing promotion code were refused, for staff: shoppers all
    read the same "not valid" whatever the reason, so that a guess never learns a code exists
    (`payments.promotions`). Codes that do not exist are only logged."""

    class Reason(models.TextChoices):
        INACTIVE = "inactive", "Switched off"
        NOT_YET_VALID = "not_yet_valid", "Not valid yet"
        EXPIRED = "expired", "Expired"
        OTHER_CURRENCY = "other_currency", "Order in another currency"
        USED_UP = "used_up", "Used up (or every use held by orders being paid)"

    discount = models.ForeignKey(Discount, on_delete=models.CASCADE, related_name="refusals")
    reason = models.CharField(max_length=20, choices=Reason.choices)
    count = models.PositiveIntegerField(default=0)
    first_at = models.DateTimeField(auto_now_add=True)
    last_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-last_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["discount", "reason"], name="promotionrefusal_one_per_reason")
        ]

    def __str__(self) -> str:
        return f"{self.discount.code or self.discount.name}: {self.get_reason_display()} x{self.count}"


class Tax(models.Model):
    """A tax rate: exclusive taxes are added on top of prices, inclusive ones are already in them."""

    name = models.CharField(max_length=50, help_text="Shown to the shopper, e.g. VAT or Sales tax.")
    percentage = models.DecimalField(
        max_digits=7,
        decimal_places=4,
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
    )
    inclusive = models.BooleanField(default=False, help_text="Included in the prices (e.g. EU VAT).")
    is_active = models.BooleanField(default=True)
    applies_to_every_order = models.BooleanField(
        default=False,
        help_text="Added to every order in the currency below (shoppers' carts too), exactly as if staff had "
        "attached it to each.",
    )
    currency = models.CharField(
        max_length=3, blank=True, help_text="The currency whose every order carries this tax (e.g. usd)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        verbose_name_plural = "taxes"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(percentage__gte=0, percentage__lte=100), name="tax_percentage_range"
            ),
            models.CheckConstraint(
                condition=models.Q(applies_to_every_order=False) | ~models.Q(currency=""),
                name="tax_default_has_currency",
            ),
        ]
        indexes = [models.Index(fields=["currency", "applies_to_every_order"])]

    def __str__(self) -> str:
        return (
            f"{self.name} {self.percentage.normalize():f}% ({'inclusive' if self.inclusive else 'exclusive'})"
        )

    def clean(self) -> None:
        super().clean()
        self.currency = self.currency.strip().lower()
        check_currency(self.currency)
        if self.applies_to_every_order and not self.currency:
            raise ValidationError({"currency": "A tax added to every order needs the orders' currency."})
        if self.applies_to_every_order and self.is_active:
            other = (
                Tax.objects.filter(applies_to_every_order=True, is_active=True, currency=self.currency)
                .exclude(pk=self.pk)
                .exclude(inclusive=self.inclusive)
                .first()
            )
            if other is not None:
                raise ValidationError(
                    {
                        "inclusive": f"Every {self.currency.upper()} order already carries {other}: one order "
                        "cannot have a tax included in its prices and a tax added to them (Stripe Checkout "
                        "does not document how it would compute them together)."
                    }
                )


def default_taxes(currency: str) -> list[Tax]:
    """The active taxes staff set to apply to every order in `currency` (one query)."""
    return list(
        Tax.objects.filter(applies_to_every_order=True, is_active=True, currency=currency.lower()).order_by(
            "id"
        )
    )


class TaxKind(Protocol):
    @property
    def inclusive(self) -> bool: ...


def mixes_inclusive_and_exclusive(taxes: Iterable[TaxKind]) -> bool:
    """Whether these taxes put an inclusive and an exclusive rate on one line. Stripe's documentation does not
    say on what amount Checkout computes an exclusive rate next to an inclusive one (the price with the
    inclusive tax, or without it), so the shop never makes such an order: the admin refuses the configuration
    and Checkout is refused for an order that has it anyway (README, "What Stripe documents")."""
    kinds = {bool(t.inclusive) for t in taxes}
    return len(kinds) == 2


class OrderStatus(models.TextChoices):
    """An order's states; `payments.states` owns the moves between them."""

    DRAFT = "draft", _("Cart")
    # Frozen for paying; to a shopper, after a declined card or a Checkout left, it is simply not paid yet.
    AWAITING_PAYMENT = "awaiting_payment", _("Not paid yet")
    PROCESSING = "processing", _("Payment processing")
    PAID = "paid", _("Paid")
    PARTIALLY_REFUNDED = "partially_refunded", _("Partially refunded")
    REFUNDED = "refunded", _("Refunded")


class DisputeState(models.TextChoices):
    """An order's disputes, in a word (see `payments.disputes`)."""

    NONE = "", "Not disputed"
    OPEN = "open", "Disputed"
    WON = "won", "Dispute won"
    LOST = "lost", "Dispute lost"
    CLOSED = "closed", "Inquiry closed"


class Order(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    currency = models.CharField(max_length=3, help_text="Lower-case ISO code; every line is in it.")
    status = models.CharField(
        max_length=20, choices=OrderStatus.choices, default=OrderStatus.DRAFT, db_index=True
    )
    browser = models.CharField(
        max_length=64,
        blank=True,
        db_index=True,
        help_text="The browser that owns the order (a random id kept in its session cookie). Empty for an order "
        "staff made for a customer: the first browser to pay it owns it.",
    )
    buy_now_item = models.ForeignKey(
        "catalog.Item",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Set for a one-item order made by an item page's Pay or Checkout button.",
    )
    discount = models.ForeignKey(
        Discount, null=True, blank=True, on_delete=models.PROTECT, related_name="orders"
    )
    taxes = models.ManyToManyField(Tax, blank=True, related_name="orders")
    snapshot = models.JSONField(
        null=True,
        blank=True,
        editable=False,
        help_text="The priced order (lines, unit prices, discount, taxes, total) frozen when paying started.",
    )
    version = models.PositiveIntegerField(
        default=0, editable=False, help_text="How many times the order was frozen for payment."
    )
    amount_refunded = models.BigIntegerField(default=0, help_text="Refunded so far, in minor units.")
    needs_attention = models.BooleanField(default=False, help_text="Flagged for staff, see the note.")
    attention_note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    email = models.EmailField(
        blank=True, help_text="The shopper's email (from the payment page or Checkout): receipts go there."
    )
    confirmation_sent_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When the shop's order confirmation was sent."
    )
    language = models.CharField(
        max_length=10,
        blank=True,
        editable=False,
        help_text="The language the shopper paid in (en, ru): the order confirmation is written in it.",
    )
    dispute_status = models.CharField(
        max_length=10,
        choices=DisputeState.choices,
        blank=True,
        db_index=True,
        help_text="Whether a payment of the order is disputed, and how its dispute ended.",
    )
    code_address = models.CharField(
        max_length=32,
        blank=True,
        editable=False,
        help_text="A digest of the client address that entered the order's promotion code (never the address "
        "itself): the uses of a code one address may hold at once are limited (`payments.promotions`).",
    )

    buy_now_key = models.CharField(
        max_length=200,
        null=True,
        blank=True,
        unique=True,
        editable=False,
        help_text="Set while this is its browser's current one-item order for its item (browser/item): two "
        "first clicks racing find the same order. Given up for good when the order is being paid, paid or "
        "held for staff; the next click makes a new order, whatever later happens to this one.",
    )
    sweep_error = models.TextField(
        blank=True,
        editable=False,
        help_text="What went wrong when reconciliation last handled this order (empty once it succeeds).",
    )
    sweep_failed_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["currency", "status"])]

    def __str__(self) -> str:
        return f"Order {str(self.public_id)[:8]} ({self.currency.upper()}, {self.get_status_display()})"

    def get_absolute_url(self) -> str:
        return reverse("payments:order", args=[self.public_id])

    @property
    def shop_url(self) -> str:
        """The order's page in the shop as a full link (SITE_URL + its path): what staff send a customer."""
        return f"{settings.SITE_URL}{self.get_absolute_url()}"

    @property
    def total(self) -> int | None:
        """The frozen total in minor units (None for a cart, whose total follows its lines)."""
        return self.snapshot["total"] if self.snapshot else None

    def clean_taxes(self, taxes: Iterable[Tax]) -> None:
        """Refuse taxes that, with the ones every order in this currency carries, would put an inclusive and an
        exclusive rate on one line (see `mixes_inclusive_and_exclusive`)."""
        chosen = [t for t in taxes if t.is_active] + default_taxes(self.currency)
        if mixes_inclusive_and_exclusive(chosen):
            names = ", ".join(sorted({str(t) for t in chosen}))
            raise ValidationError(
                {
                    "taxes": f"One order cannot have a tax included in its prices and a tax added to them "
                    f"({names}): Stripe Checkout does not document how it computes them together."
                }
            )

    def clean(self) -> None:
        super().clean()
        if self.discount is not None and not self.discount.applies_to(self.currency):
            raise ValidationError(
                {
                    "discount": f"{self.discount} is a fixed amount in {self.discount.currency.upper()}; "
                    f"this order is in {self.currency.upper()}."
                }
            )

    def flag(self, note: str) -> None:
        """Flag the order for staff, adding `note` to what they read (save `FLAG_FIELDS`). A flagged order is no
        longer its browser's current one-item order: the next click on the item makes a new one."""
        self.needs_attention = True
        self.buy_now_key = None
        self.note(note)

    def note(self, text: str) -> None:
        stamp = timezone.now().strftime("%Y-%m-%d %H:%M:%S")
        self.attention_note = f"{self.attention_note}\n{stamp} {text}".strip()


# The fields `Order.flag` changes.
FLAG_FIELDS = ["needs_attention", "buy_now_key", "attention_note", "updated_at"]


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    item = models.ForeignKey("catalog.Item", on_delete=models.PROTECT, related_name="order_lines")
    quantity = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(MAX_QUANTITY)]
    )
    unit_price = models.DecimalField(
        max_digits=14,
        decimal_places=3,
        help_text="The item's price when it was added, in the order's currency.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["order", "item"], name="orderline_one_per_item"),
            models.CheckConstraint(
                condition=models.Q(quantity__gte=1, quantity__lte=MAX_QUANTITY),
                name="orderline_quantity_range",
            ),
            models.CheckConstraint(
                condition=models.Q(unit_price__gt=0), name="orderline_unit_price_positive"
            ),
        ]

    def __str__(self) -> str:
        """`2 \u00d7 Espresso beans ($24.50 each)`: the unit price copied into the order, in its currency."""
        name = self.item.name if self.item_id is not None else "(no item)"
        if self.unit_price is None or not self.order_id:
            return f"{self.quantity} \u00d7 {name}"
        return f"{self.quantity} \u00d7 {name} ({self.display_unit_price} each)"

    @property
    def display_unit_price(self) -> str:
        return format_money(self.unit_price, self.order.currency)

    @property
    def amount(self) -> int:
        """Quantity times unit price in minor units, before discount and taxes (as `payments.pricing` counts it)."""
        return to_minor_units(self.unit_price, self.order.currency) * self.quantity

    @property
    def display_amount(self) -> str:
        return format_money(self.amount, self.order.currency, minor=True)


class PaymentKind(models.TextChoices):
    PAYMENT_INTENT = "payment_intent", "PaymentIntent"
    CHECKOUT_SESSION = "checkout_session", "Checkout Session"


class PaymentStatus(models.TextChoices):
    """Our view of a Stripe object; Stripe's own status string is kept in `stripe_status`."""

    OPEN = "open", "Open"
    PROCESSING = "processing", "Processing"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"
    EXPIRED = "expired", "Expired"


class PaymentOrigin(models.TextChoices):
    SHOP = "shop", "Made by the shop"
    STRIPE = "stripe", "Found at Stripe"


class PaymentManager(models.Manager.from_queryset(LedgerQuerySet)):  # type: ignore[misc]
    def record(self, order: Order, kind: str, account: str, stripe_id: str, **fields: Any) -> Payment:
        """Record the Stripe object just created for `order`, once Stripe answered (under the order's lock: a
        replayed create has the key of an attempt that recorded nothing, so the row is always new)."""
        return self.create(
            order=order,
            kind=kind,
            account=account,
            stripe_id=stripe_id,
            currency=order.currency,
            status=PaymentStatus.OPEN,
            **fields,
        )


class Payment(LedgerModel):
    """One Stripe object (PaymentIntent or Checkout Session) created for an order, in one account."""

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="payments")
    kind = models.CharField(max_length=20, choices=PaymentKind.choices)
    account = models.CharField(
        max_length=3, help_text="Currency of the Stripe account that holds the object."
    )
    livemode = models.BooleanField(default=False)
    stripe_id = models.CharField(max_length=255)
    payment_intent_id = models.CharField(
        max_length=255, blank=True, db_index=True, help_text="The PaymentIntent (for a session: once paid)."
    )
    order_version = models.PositiveIntegerField(
        default=0, help_text="The order's version (frozen snapshot) this object was created for."
    )
    amount = models.BigIntegerField(
        help_text="What the shop asked for (the snapshot's total), in minor units."
    )
    currency = models.CharField(max_length=3)
    stripe_amount_total = models.BigIntegerField(
        null=True, blank=True, help_text="The total Stripe computed (Checkout), in minor units."
    )
    amount_received = models.BigIntegerField(default=0)
    amount_refunded = models.BigIntegerField(default=0)
    status = models.CharField(
        max_length=20, choices=PaymentStatus.choices, default=PaymentStatus.OPEN, db_index=True
    )
    stripe_status = models.CharField(max_length=40, blank=True)
    url = models.URLField(
        max_length=2000, blank=True, help_text="Checkout's hosted page, while the session is open."
    )
    idempotency_key = models.CharField(max_length=255)
    last_error = models.TextField(blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    checked_at = models.DateTimeField(
        null=True, blank=True, help_text="When reconciliation last asked Stripe about this object."
    )
    succeeded_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the shop learned the payment succeeded (revenue counts it then).",
    )
    refunds_to_check = models.BooleanField(
        default=False,
        help_text="Stripe reported a refunded amount the shop's refunds do not explain (a refund made in "
        "Stripe's dashboard, or one whose news is missing): its refunds are looked up at Stripe.",
    )
    origin = models.CharField(
        max_length=10,
        choices=PaymentOrigin.choices,
        default=PaymentOrigin.SHOP,
        help_text="Made by the shop for a shopper, or found at Stripe naming this order (an answer the shop "
        "never got): such an object was never handed to a shopper, and is closed if still open.",
    )
    browser = models.CharField(
        max_length=64, blank=True, help_text="The browser that opened it (it owns the order once it pays)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PaymentManager()  # type: ignore[misc]

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "stripe_id"], name="payment_unique_stripe_object"),
        ]
        indexes = [models.Index(fields=["status", "checked_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.stripe_id}"

    @property
    def dashboard_url(self) -> str:
        if self.kind == PaymentKind.PAYMENT_INTENT:
            return dashboard_url(self.livemode, f"payments/{self.stripe_id}")
        return dashboard_url(self.livemode, f"checkout/sessions/{self.stripe_id}")


class Refund(LedgerModel):
    """Money given back on one payment: asked by staff, or automatic when an order was paid twice.

    The row is written before Stripe is called, with an idempotency key of its own, so one row is one refund
    at Stripe however often sending it is retried, and two refunds staff asked for are two rows.
    """

    class Reason(models.TextChoices):
        REQUESTED_BY_CUSTOMER = "requested_by_customer", "Requested by the customer"
        DUPLICATE = "duplicate", "Duplicate payment"
        FRAUDULENT = "fraudulent", "Fraudulent"
        REQUESTED_BY_STAFF = "requested_by_staff", "Other (see the note)"
        OUTSIDE = "outside", "Made outside the shop (Stripe's dashboard)"

    class Status(models.TextChoices):
        PENDING = "pending", "Not yet sent to Stripe"
        SENT = "sent", "Pending at Stripe"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed (the money stayed with the shop)"
        CANCELED = "canceled", "Canceled"

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="refunds")
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    amount = models.BigIntegerField(help_text="In minor units of the payment's currency.")
    currency = models.CharField(max_length=3)
    reason = models.CharField(max_length=30, choices=Reason.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True)
    stripe_id = models.CharField(max_length=255, blank=True)
    idempotency_key = models.CharField(max_length=255, unique=True)
    last_error = models.TextField(blank=True)
    requested_by = models.CharField(max_length=150, blank=True, help_text="The staff member who asked.")
    description = models.CharField(max_length=500, blank=True, help_text="What was refunded, in words.")
    lines = models.JSONField(
        default=dict,
        blank=True,
        help_text="Units refunded per order line (item id -> units), when chosen so.",
    )
    stripe_created = models.DateTimeField(null=True, blank=True, help_text="When Stripe made the refund.")
    note = models.CharField(max_length=500, blank=True, help_text="Why, in staff's words.")
    attempts = models.PositiveIntegerField(
        default=0,
        help_text="Requests sent to Stripe. Each has its own idempotency key; before another is sent, Stripe "
        "is asked whether an earlier one (whose answer was lost) made the refund.",
    )
    # The shopper's refund notice, sent once: stamped under the order's lock before it is sent (`receipts`).
    notice_sent_at = models.DateTimeField(
        null=True, blank=True, help_text="When the shopper was told of this refund by email."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="refund_amount_positive"),
            models.UniqueConstraint(
                fields=["stripe_id"], condition=~models.Q(stripe_id=""), name="refund_unique_stripe_id"
            ),
        ]

    def __str__(self) -> str:
        return f"Refund {self.stripe_id or self.idempotency_key}"


class StripeObject(models.Model):
    """A coupon or tax rate created in one Stripe account for a Discount or Tax as it was then.

    Stripe's coupons and tax rates are immutable; the fingerprint of the attributes Stripe holds tells when
    an edit needs a new one.
    """

    class Kind(models.TextChoices):
        COUPON = "coupon", "Coupon"
        TAX_RATE = "tax_rate", "Tax rate"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    local_id = models.BigIntegerField()
    account = models.CharField(max_length=3)
    fingerprint = models.CharField(max_length=64)
    stripe_id = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "local_id", "account", "fingerprint"], name="stripeobject_unique_version"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.stripe_id} ({self.account})"


class PayAttempt(models.Model):
    """How many times the shop has set out to open a payment object for an order (one per Pay or Checkout click
    that reaches `paying.open_object`). Counted in a write of its own, committed before Stripe is called: when
    that call ends without an answer (a 500, a lost connection), the order's transaction rolls back but this
    count does not, so the next click is a new attempt with a new idempotency key, never the key whose saved
    500 Stripe would replay for a day. Keyed by the order's public id, which exists before its row does."""

    order_public_id = models.UUIDField(unique=True)
    count = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.order_public_id}: {self.count}"


class StripeEvent(LedgerModel):
    """A webhook event, stored once per account and processed in the same transaction."""

    class Status(models.TextChoices):
        PROCESSED = "processed", "Processed"
        PENDING = "pending", "Waiting for its object (tried again)"
        IGNORED = "ignored", "Nothing to do"
        FAILED = "failed", "Failed"
        INVALID = "invalid", "Refused (signed, but not a well-formed event)"

    account = models.CharField(max_length=3)
    event_id = models.CharField(max_length=255)
    type = models.CharField(max_length=100, db_index=True)
    livemode = models.BooleanField(default=False)
    stripe_created = models.DateTimeField(null=True, blank=True)
    object_id = models.CharField(max_length=255, blank=True, db_index=True)
    payload = models.JSONField()
    status = models.CharField(max_length=20, choices=Status.choices, db_index=True)
    attempts = models.PositiveIntegerField(default=1)
    last_error = models.TextField(blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "event_id"], name="stripeevent_unique_per_account")
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"

    @property
    def dashboard_url(self) -> str:
        return dashboard_url(self.livemode, f"events/{self.event_id}")


class Dispute(LedgerModel):
    """A chargeback (or an inquiry before one) a cardholder's bank opened on one of the shop's payments.

    Kept in step with Stripe's `charge.dispute.*` events by `payments.disputes`; answered in Stripe's dashboard.
    """

    class Status(models.TextChoices):
        WARNING_NEEDS_RESPONSE = "warning_needs_response", "Inquiry: needs a response"
        WARNING_UNDER_REVIEW = "warning_under_review", "Inquiry: under review"
        WARNING_CLOSED = "warning_closed", "Inquiry closed"
        NEEDS_RESPONSE = "needs_response", "Needs a response"
        UNDER_REVIEW = "under_review", "Under review"
        WON = "won", "Won"
        LOST = "lost", "Lost"
        PREVENTED = "prevented", "Prevented"

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="disputes")
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="disputes")
    account = models.CharField(max_length=3, help_text="Currency of the Stripe account that holds it.")
    livemode = models.BooleanField(default=False)
    stripe_id = models.CharField(max_length=255)
    charge_id = models.CharField(max_length=255, blank=True)
    amount = models.BigIntegerField(help_text="The disputed amount, in minor units of its currency.")
    currency = models.CharField(max_length=3)
    reason = models.CharField(max_length=40, blank=True, help_text="The bank's reason, in Stripe's words.")
    status = models.CharField(max_length=30, choices=Status.choices, db_index=True)
    evidence_due_by = models.DateTimeField(null=True, blank=True, help_text="Answer before this.")
    is_charge_refundable = models.BooleanField(default=False)
    funds_withdrawn = models.BigIntegerField(default=0, help_text="Taken from the balance, in minor units.")
    funds_reinstated = models.BigIntegerField(default=0, help_text="Given back to the balance, minor units.")
    stripe_created = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True, help_text="When the shop learned it was closed.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "stripe_id"], name="dispute_unique_stripe_object"),
        ]

    def __str__(self) -> str:
        return f"Dispute {self.stripe_id}"

    @property
    def dashboard_url(self) -> str:
        return dashboard_url(self.livemode, f"disputes/{self.stripe_id}")


class Revenue(Payment):
    """The admin's revenue report (net sales per day and currency, see `payments.revenue`): no table of its
    own, a proxy so that the report has its place and permission in the admin."""

    class Meta:
        proxy = True
        verbose_name = "revenue per currency"
        verbose_name_plural = "revenue per currency"


class StaffAction(LedgerModel):
    """Something staff did to an order through the shop's actions, with who and when (append-only)."""

    class Kind(models.TextChoices):
        SAVED = "saved", "Changed the cart"
        REFUND = "refund", "Asked for a refund"
        CLOSE = "close", "Closed its open payment"
        REVIEWED = "reviewed", "Marked reviewed"

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="staff_actions")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    who = models.CharField(max_length=150)
    note = models.TextField(blank=True)
    at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} by {self.who}"


class SweepMark(models.Model):
    """How far reconciliation has listed an account's objects at Stripe (their `created`, a Unix time): the
    next sweep lists from a little before it (see `payments.sweep`)."""

    account = models.CharField(max_length=3)
    kind = models.CharField(max_length=20, choices=PaymentKind.choices)
    created_gte = models.BigIntegerField(default=0)
    swept_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "kind"], name="sweepmark_one_per_kind")]

    def __str__(self) -> str:
        return f"{self.account} {self.kind} from {self.created_gte}"


class StrayPayment(LedgerModel):
    """A payment Stripe took (or is taking) in one of the shop's accounts that names no order of the shop:
    listed for staff, who look at it in Stripe's dashboard (refund it there, or explain it)."""

    account = models.CharField(max_length=3)
    kind = models.CharField(max_length=20, choices=PaymentKind.choices)
    stripe_id = models.CharField(max_length=255)
    livemode = models.BooleanField(default=False)
    amount = models.BigIntegerField(help_text="In minor units.")
    currency = models.CharField(max_length=3)
    stripe_status = models.CharField(max_length=40)
    metadata = models.JSONField(default=dict, blank=True)
    stripe_created = models.DateTimeField(null=True, blank=True)
    found_at = models.DateTimeField(auto_now_add=True)
    reviewed_by = models.CharField(max_length=150, blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-found_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "stripe_id"], name="straypayment_unique_object")
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.stripe_id} ({self.account})"

    @property
    def dashboard_url(self) -> str:
        if self.kind == PaymentKind.PAYMENT_INTENT:
            return dashboard_url(self.livemode, f"payments/{self.stripe_id}")
        return dashboard_url(self.livemode, f"checkout/sessions/{self.stripe_id}")


class FollowUp(models.Model):
    """Work that follows a payment's news, queued in the same transaction as the news and done by a task worker
    (`payments.followups`): its attempts, last error and result, for staff."""

    class Kind(models.TextChoices):
        TIDY_ORDER = "tidy_order", "Close, refund and look up what the order owes at Stripe"
        CONFIRMATION = "confirmation", "Send the order confirmation"
        REFUND_NOTICE = "refund_notice", "Send a refund notice"
        PENDING_EVENT = "pending_event", "Process an event that waited for its object"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed (the next sweep starts it again)"

    key = models.CharField(max_length=100, help_text="The kind and the object it is for.")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    order = models.ForeignKey(
        Order, null=True, blank=True, on_delete=models.PROTECT, related_name="followups"
    )
    target_id = models.BigIntegerField(
        null=True, blank=True, help_text="The refund or the event it is for (the order's work: none)."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    result = models.TextField(blank=True, help_text="What the work reported (e.g. the mail relay's answer).")
    run_after = models.DateTimeField(default=timezone.now)
    task_id = models.CharField(max_length=64, blank=True, help_text="Its current task in the queue.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # At most one queued follow-up per kind and object: news arriving while one waits needs no other.
            models.UniqueConstraint(
                fields=["key"], condition=models.Q(status="queued"), name="followup_one_queued_per_key"
            ),
        ]
        indexes = [models.Index(fields=["status", "started_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.key}, {self.status})"
