"""The catalog: items with a price in one currency (django-money), which picks the Stripe account."""

from __future__ import annotations

from decimal import Decimal
from typing import cast

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse
from djmoney.models.fields import MoneyField
from djmoney.models.validators import MinMoneyValidator
from djmoney.money import Money

from core.money import format_money, from_minor_units, to_minor_units


class ItemQuerySet(models.QuerySet["Item"]):
    def active(self) -> ItemQuerySet:
        return self.filter(is_active=True)


class Item(models.Model):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    price = MoneyField(
        max_digits=14,
        decimal_places=3,
        validators=[MinMoneyValidator(Decimal("0.001"))],
        help_text="The price and its currency; the currency picks the Stripe account that takes the payment.",
    )
    is_active = models.BooleanField(default=True, help_text="Inactive items are hidden from the shop.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ItemQuerySet.as_manager()

    class Meta:
        ordering = ["price_currency", "name", "id"]
        indexes = [models.Index(fields=["price_currency", "name"])]
        constraints = [models.CheckConstraint(condition=models.Q(price__gt=0), name="item_price_positive")]

    def __str__(self) -> str:
        return f"{self.name} ({self.display_price})"

    def get_absolute_url(self) -> str:
        return reverse("catalog:item", args=[self.pk])

    @property
    def shop_url(self) -> str:
        """The item's page in the shop as a full link (SITE_URL + its path)."""
        return f"{settings.SITE_URL}{self.get_absolute_url()}"

    @property
    def money(self) -> Money:
        """The price as django-money's `Money` (the type stubs see a MoneyField as a plain DecimalField)."""
        return cast(Money, self.price)

    @property
    def amount(self) -> Decimal:
        return Decimal(self.money.amount)

    @property
    def currency(self) -> str:
        """Lower-case ISO code, as Stripe writes it."""
        return str(self.money.currency.code).lower()

    @property
    def minor_amount(self) -> int:
        """The price as Stripe's integer amount (what a one-item order of it costs)."""
        return to_minor_units(self.amount, self.currency)

    @property
    def display_price(self) -> str:
        return format_money(self.amount, self.currency)

    def clean(self) -> None:
        super().clean()
        if self.price is None:
            return
        code = str(self.money.currency.code).upper()
        if code not in settings.CURRENCIES:
            raise ValidationError(
                {"price": f"{code} has no Stripe account here; use one of {', '.join(settings.CURRENCIES)}."}
            )
        amount = self.amount
        if amount > 0 and from_minor_units(to_minor_units(amount, code), code) != amount:
            raise ValidationError(
                {"price": f"{amount} cannot be charged exactly in {code}; round it to what Stripe accepts."}
            )
