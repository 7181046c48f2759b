from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def shop(request: HttpRequest) -> dict[str, Any]:
    """What every page needs: the demo banner. Nothing of the visitor: pages look the same for everyone, so
    the cached ones (core.pagecache, rendered without a request) and the others share one layout."""
    return {"STRIPE_DEMO_MODE": settings.STRIPE_DEMO_MODE}
