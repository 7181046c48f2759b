"""A tax saved or deleted can change what every item page shows and charges (a tax that applies to every order
in a currency is added to one-item orders): the cached catalog and item pages are dropped."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from catalog.models import Item
from catalog.pages import CATALOG_PAGE, item_page_name
from core import pagecache
from payments.models import Tax


@receiver(post_save, sender=Tax)
@receiver(post_delete, sender=Tax)
def forget_item_pages(sender: type[Tax], instance: Tax, **kwargs: Any) -> None:
    items = Item.objects.values_list("pk", flat=True)
    pagecache.forget(CATALOG_PAGE, *[item_page_name(pk) for pk in items])
