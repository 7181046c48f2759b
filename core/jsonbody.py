"""The one reader of JSON request bodies (the cart, promotion code and pay endpoints, Stripe's webhooks).

`parse(body, max_bytes=..., max_depth=...)` answers the decoded value, or raises `BadJSON` saying why in the
shopper's language (`kind` tells the caller which: `too_large`, `too_deep` or `invalid`), so that every endpoint
answers 400 with a message and none answers 500:

- a body over `max_bytes` is refused before it is decoded;
- nesting deeper than `max_depth` is refused: `[` x 200,000 makes the json module's scanner give up with a
  RecursionError, which is caught here, and a shallower nest is measured without recursion;
- NaN, Infinity and -Infinity are refused (they are not JSON, and a float NaN compares unequal to itself);
- bytes that are not UTF-8 text, or text that is not JSON, are refused.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

from django.utils.translation import gettext

# What the shop's own endpoints accept: a flat object of a few fields (the pages' scripts send at most four).
FORM_MAX_BYTES = 16 * 1024
FORM_MAX_DEPTH = 4


class BadJSON(ValueError):
    """A body that is not acceptable JSON; `message` says why, `kind` is `too_large`, `too_deep` or `invalid`."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def _refuse_constant(name: str) -> NoReturn:
    """json's parse_constant: NaN, Infinity and -Infinity are not JSON."""
    raise ValueError(f"{name} is not a JSON value")


def depth(value: Any, stop_after: int | None = None) -> int:
    """How deeply `value` nests (a scalar: 0, `[]`: 1), measured without recursion; stops counting once past
    `stop_after`."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            if stop_after is not None and deepest > stop_after:
                return deepest
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, level + 1) for child in children)
    return deepest


def too_deep() -> BadJSON:
    return BadJSON("too_deep", gettext("The body nests too deeply."))


def parse(body: bytes | str, *, max_bytes: int = FORM_MAX_BYTES, max_depth: int = FORM_MAX_DEPTH) -> Any:
    """The JSON value of `body`, within the limits; `BadJSON` otherwise."""
    if len(body) > max_bytes:
        raise BadJSON(
            "too_large", gettext("The body is too large (at most %(bytes)d bytes).") % {"bytes": max_bytes}
        )
    try:
        value = json.loads(body, parse_constant=_refuse_constant)
    except RecursionError:
        raise too_deep() from None
    except ValueError as exc:  # not UTF-8, not JSON, NaN or Infinity
        raise BadJSON("invalid", gettext("The body is not valid JSON.")) from exc
    if depth(value, stop_after=max_depth) > max_depth:
        raise too_deep()
    return value
