"""An item saved or deleted drops the cached renders of its page and of the catalog."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from catalog.models import Item
from catalog.views import CATALOG_PAGE, item_page_name
from core import pagecache


@receiver(post_save, sender=Item)
@receiver(post_delete, sender=Item)
def forget_item_pages(sender: type[Item], instance: Item, **kwargs: Any) -> None:
    pagecache.forget(CATALOG_PAGE, item_page_name(instance.pk))
