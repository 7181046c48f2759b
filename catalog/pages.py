"""The names of the catalog's pages in the shared page cache (`core.pagecache`): the views serve them, and a
change of an item (`catalog.signals`) or of a tax (`payments.signals`) forgets them."""

from __future__ import annotations

CATALOG_PAGE = "catalog"


def item_page_name(item_id: int) -> str:
    return f"item:{item_id}"
