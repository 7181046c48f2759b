"""The payments admin, one module per family of records (Django's autodiscovery imports this package, which
imports them all; each registers its models).

- `orders`: orders (`order_lines` their lines, `order_actions` the list's actions, `refund_page` the refund page);
- `payments`: payments and refunds; `disputes`: disputes;
- `records`: Stripe's events and objects, stray payments, follow-ups;
- `promotions`: discounts, taxes and refused promotion codes; `revenue`: revenue per currency;
- `base`: read-only records and what the others share; `display`: how values are shown.
"""

from payments.admin import disputes, orders, payments, promotions, records, revenue

__all__ = ["disputes", "orders", "payments", "promotions", "records", "revenue"]
