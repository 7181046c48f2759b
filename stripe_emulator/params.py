"""Form decoding and parameter validation for the Stripe emulator (development/test-only code).

Stripe's API takes ``application/x-www-form-urlencoded`` bodies with nested keys
(``line_items[0][price_data][currency]=usd``), as produced by ``stripe._encode._api_encode``.
``decode_form`` turns such a body back into nested dicts and lists; ``validate_params``
checks a decoded (or plain Python) params dict against the SDK's own TypedDicts in
``stripe.params``, the way the real API rejects unknown, missing or mistyped parameters.

This module imports only the standard library and ``stripe``.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, NotRequired, Required, Union, get_args, get_origin
from urllib.parse import parse_qsl

import typing_extensions
from stripe._request_options import RequestOptions
from stripe._stripe_context import StripeContext
from stripe._stripe_object import UntypedStripeObject

__all__ = [
    "ParamError",
    "check_params",
    "decode_form",
    "encode_form",
    "validate_params",
]

#: Keys of ``RequestOptions``: they travel as HTTP headers, never as params.
REQUEST_OPTION_KEYS: frozenset[str] = frozenset(RequestOptions.__annotations__)

_INT_RE = re.compile(r"^-?\d+$")
_KEY_RE = re.compile(r"\[([^\]]*)\]")


@dataclass(frozen=True)
class ParamError:
    """One validation problem, shaped like Stripe's 400 ``invalid_request_error``."""

    message: str
    param: str


# --------------------------------------------------------------------------- decoding


def _split_key(key: str) -> list[str]:
    head, _, rest = key.partition("[")
    parts = [head]
    if rest:
        parts.extend(_KEY_RE.findall("[" + rest))
    return parts


def _listify(value: Any) -> Any:
    """Turn dicts whose keys are exactly ``0..n-1`` into lists, recursively."""
    if isinstance(value, dict):
        converted = {k: _listify(v) for k, v in value.items()}
        keys = list(converted)
        if keys and all(k.isdigit() for k in keys) and sorted(int(k) for k in keys) == list(range(len(keys))):
            return [converted[str(i)] for i in range(len(keys))]
        return converted
    if isinstance(value, list):
        return [_listify(v) for v in value]
    return value


def decode_form(body: str | bytes) -> dict[str, Any]:
    """Decode a Stripe form-encoded body or query string into nested dicts and lists.

    ``a[b][0][c]=v`` becomes ``{"a": {"b": [{"c": "v"}]}}``. Leaf values stay strings
    (the validator coerces them); ``a[]=x`` appends to a list.
    """
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        parts = _split_key(key)
        node: dict[str, Any] = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":
                part = str(sum(1 for k in node if k.isdigit()))
            if last:
                node[part] = value
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = {}
                    node[part] = child
                node = child
    result = _listify(root)
    assert isinstance(result, dict)
    return result


def encode_form(params: Mapping[str, Any]) -> str:
    """Encode params exactly as the SDK does (handy for tests and the hosted pages)."""
    from urllib.parse import urlencode

    from stripe._encode import _api_encode

    return urlencode(list(_api_encode(params))).replace("%5B", "[").replace("%5D", "]")


# --------------------------------------------------------------------------- validation

_HINT_CACHE: dict[type, dict[str, Any]] = {}


def _hints(td: type) -> dict[str, Any]:
    cached = _HINT_CACHE.get(td)
    if cached is None:
        localns = {"StripeContext": StripeContext, "Mapping": typing.Mapping, "Any": Any}
        cached = typing.get_type_hints(td, localns=localns, include_extras=True)
        _HINT_CACHE[td] = cached
    return cached


def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and typing_extensions.is_typeddict(tp)


def _join(path: str, key: str | int) -> str:
    return f"{path}[{key}]" if path else str(key)


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def _kind_matches(value: Any, tp: Any) -> bool:
    """Whether ``value`` is structurally the right kind for union arm ``tp`` (dict/list/scalar)."""
    origin = get_origin(tp)
    if (
        _is_typeddict(tp)
        or tp in (dict, UntypedStripeObject)
        or origin in (dict, Mapping, UntypedStripeObject)
    ):
        return isinstance(value, dict)
    if tp is list or origin is list:
        return isinstance(value, list | dict)
    return not isinstance(value, dict | list)


def _check(value: Any, tp: Any, path: str) -> tuple[Any, list[ParamError]]:
    origin = get_origin(tp)
    if origin in (NotRequired, Required, typing_extensions.NotRequired, typing_extensions.Required):
        return _check(value, get_args(tp)[0], path)
    if origin is typing.Annotated:
        return _check(value, get_args(tp)[0], path)
    if tp is Any or tp is object:
        return value, []
    if tp is type(None):
        if value is None:
            return None, []
        return value, [ParamError(f"Invalid null value for {path}", path)]
    if origin is Union or origin is types.UnionType:
        arms = list(get_args(tp))
        # The SDK types open enums as ``Literal[...] | str`` for forward compatibility;
        # the API itself rejects values outside the enum, so the emulator does too.
        if str in arms and any(get_origin(a) is Literal and any(o != "" for o in get_args(a)) for a in arms):
            arms.remove(str)
        if value is None and type(None) in arms:
            return None, []
        first_errors: list[ParamError] | None = None
        for arm in arms:
            if arm is type(None):
                continue
            coerced, arm_errors = _check(value, arm, path)
            if not arm_errors:
                return coerced, []
            if first_errors is None and _kind_matches(value, arm) and get_origin(arm) is not Literal:
                first_errors = arm_errors
        if first_errors is None:
            candidates = [a for a in arms if a is not type(None)]
            preferred = [a for a in candidates if get_origin(a) is not Literal] or candidates
            if preferred:
                first_errors = _check(value, preferred[0], path)[1]
        return value, first_errors or [ParamError(f"Invalid value for {path}", path)]
    if origin is Literal or origin is typing_extensions.Literal:
        allowed = get_args(tp)
        for option in allowed:
            if isinstance(option, bool):
                if value is option or (isinstance(value, str) and value == str(option).lower()):
                    return option, []
            elif value == option or (isinstance(value, str) and value == str(option)):
                return option, []
        shown = ", ".join(str(a) for a in allowed if a != "")
        if allowed == ("",):
            return value, [ParamError(f"Invalid {path}: must be an empty string", path)]
        return value, [ParamError(f"Invalid {path}: must be one of {shown}", path)]
    if _is_typeddict(tp):
        if not isinstance(value, dict):
            return value, [ParamError(f"Invalid object for {path}", path)]
        return _check_typeddict(value, tp, path, top=False)
    if tp is list or origin is list:
        item_tp = get_args(tp)[0] if get_args(tp) else Any
        items: list[Any]
        if isinstance(value, list):
            items = value
        elif isinstance(value, dict) and all(str(k).isdigit() for k in value):
            items = [value[k] for k in sorted(value, key=lambda k: int(k))]
        else:
            return value, [ParamError(f"Invalid array for {path}", path)]
        out: list[Any] = []
        errors: list[ParamError] = []
        for i, item in enumerate(items):
            coerced, errs = _check(item, item_tp, _join(path, i))
            out.append(coerced)
            errors.extend(errs)
        return out, errors
    if tp in (dict, UntypedStripeObject) or origin in (dict, Mapping, UntypedStripeObject):
        args = get_args(tp)
        val_tp = args[-1] if args else Any
        mapping: dict[str, Any]
        if isinstance(value, dict):
            mapping = value
        elif isinstance(value, list):
            mapping = {str(i): v for i, v in enumerate(value)}
        else:
            return value, [ParamError(f"Invalid object for {path}", path)]
        out_map: dict[str, Any] = {}
        errors = []
        for key, item in mapping.items():
            coerced, errs = _check(item, val_tp, _join(path, key))
            out_map[str(key)] = coerced
            errors.extend(errs)
        return out_map, errors
    if tp is bool:
        if isinstance(value, bool):
            return value, []
        if value in ("true", "false"):
            return value == "true", []
        return value, [ParamError(f"Invalid boolean: {_short(value)}", path)]
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value, []
        if isinstance(value, str) and _INT_RE.match(value):
            return int(value), []
        return value, [ParamError(f"Invalid integer: {_short(value)}", path)]
    if tp in (float, Decimal):
        if isinstance(value, Decimal):
            return value, []
        if isinstance(value, int | float) and not isinstance(value, bool):
            return Decimal(str(value)), []
        if isinstance(value, str):
            try:
                dec = Decimal(value)
            except InvalidOperation:
                dec = None
            if dec is not None and dec.is_finite():
                return dec, []
        return value, [ParamError(f"Invalid decimal: {_short(value)}", path)]
    if tp is str:
        if isinstance(value, str):
            return value, []
        if isinstance(value, int | Decimal) and not isinstance(value, bool):
            return str(value), []
        return value, [ParamError(f"Invalid string: {_short(value)}", path)]
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value, []
        return value, [ParamError(f"Invalid value for {path}", path)]
    return value, []


def _check_typeddict(
    params: Mapping[str, Any], td: type, path: str, *, top: bool
) -> tuple[dict[str, Any], list[ParamError]]:
    hints = _hints(td)
    required: frozenset[str] = getattr(td, "__required_keys__", frozenset())
    allowed = {k: v for k, v in hints.items() if not (top and k in REQUEST_OPTION_KEYS)}
    out: dict[str, Any] = {}
    errors: list[ParamError] = []
    for key, value in params.items():
        key_path = _join(path, key)
        if key not in allowed:
            errors.append(ParamError(f"Received unknown parameter: {key_path}", key_path))
            continue
        coerced, errs = _check(value, allowed[key], key_path)
        out[key] = coerced
        errors.extend(errs)
    for key in sorted(required):
        if key in allowed and key not in params:
            key_path = _join(path, key)
            errors.append(ParamError(f"Missing required param: {key_path}.", key_path))
    return out, errors


def check_params(params: Mapping[str, Any], typed_dict: type) -> tuple[dict[str, Any], list[ParamError]]:
    """Validate ``params`` against a ``stripe.params`` TypedDict and coerce wire strings.

    Returns the coerced params (ints, bools, Decimals, lists) and the list of problems.
    The ``RequestOptions`` keys (api_key, idempotency_key, ...) are not params: they are
    reported as unknown if they appear.
    """
    return _check_typeddict(params, typed_dict, "", top=True)


def validate_params(params: Mapping[str, Any], typed_dict: type) -> list[str]:
    """Return Stripe-style error messages for ``params`` checked against ``typed_dict``.

    An empty list means the params are acceptable. Works on wire-decoded params
    (strings, index dicts) and on the Python dicts given to the SDK.
    """
    return [e.message for e in check_params(params, typed_dict)[1]]
