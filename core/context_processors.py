from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def shop(request: HttpRequest) -> dict[str, Any]:
    """What every page needs: the demo banner and the shopper's cart link."""
    return {
        "STRIPE_DEMO_MODE": settings.STRIPE_DEMO_MODE,
        "cart_order_id": request.session.get("cart_order_id") if hasattr(request, "session") else None,
    }
