"""Check a JSON answer against the typed resource classes that ship with ``stripe`` (API ``2026-10-28.endive``).

``problems(answer, stripe.PaymentIntent)`` walks the answer and the class's annotations together and returns
every difference, as ``"path: what is wrong"`` strings:

- an attribute whose annotation is not ``Optional`` is missing (Stripe always sends it);
- a value is not of the annotated type (``int``, ``str``, ``bool``, ``float``, lists, maps, nested objects,
  expandable fields as an id or the expanded object, ``ListObject`` pages);
- an enum value is not one of the annotation's ``Literal`` values (the SDK types open enums as
  ``Literal[...] | str`` to keep old clients working when Stripe adds a value; the emulator must send one of
  the values this API version knows);
- an attribute the class does not declare (a field Stripe does not have, or a private helper key).

``missing_nullable(answer, cls, allowed_absent)`` adds the stricter rule for top-level objects that Stripe
sends whole: every declared attribute is present (``null`` when it has no value), except the few that only
appear when expanded or in some flows.
"""

from __future__ import annotations

import ast
import decimal
import functools
import importlib
import inspect
import sys
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Literal, Union, get_args, get_origin

import stripe
from stripe._list_object import ListObject
from stripe._stripe_object import StripeObject, UntypedStripeObject

__all__ = ["declared", "missing_nullable", "problems"]


@functools.cache
def _namespace(module_name: str) -> dict[str, Any]:
    """The module's globals plus the names it imports only under ``if TYPE_CHECKING:`` (forward references)."""
    module = importlib.import_module(module_name)
    namespace = dict(vars(module))
    source = inspect.getsource(module)
    for node in ast.parse(source).body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            block = ast.Module(body=node.body, type_ignores=[])
            exec(compile(block, module.__file__ or module_name, "exec"), namespace)
    return namespace


@functools.cache
def declared(cls: type) -> dict[str, Any]:
    """The attributes ``cls`` declares (its own annotations, without ClassVars and private names), resolved."""
    raw = inspect.get_annotations(cls)
    namespace = _namespace(cls.__module__)
    localns = dict(vars(cls))
    outer = sys.modules[cls.__module__]
    # Nested classes refer to their siblings by bare name (``"Card"``): make the enclosing classes visible.
    for part in cls.__qualname__.split(".")[:-1]:
        outer = getattr(outer, part)
        localns = {**vars(outer), **localns}
    hints: dict[str, Any] = {}
    for name, annotation in raw.items():
        if name.startswith("_") or name == "OBJECT_NAME":
            continue
        if isinstance(annotation, str):
            annotation = eval(annotation, namespace, localns)
        resolved = typing._eval_type(annotation, namespace, localns)  # type: ignore[attr-defined]
        if get_origin(resolved) is typing.ClassVar:
            continue
        hints[name] = resolved
    return hints


def _is_none_allowed(tp: Any) -> bool:
    return tp is Any or (get_origin(tp) in (Union, types.UnionType) and type(None) in get_args(tp))


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check(value: Any, tp: Any, path: str) -> list[str]:
    origin = get_origin(tp)
    if tp is Any or tp is object:
        return []
    if tp is type(None):
        return [] if value is None else [f"{path}: expected null, got {_describe(value)}"]
    if origin in (Union, types.UnionType):
        arms = list(get_args(tp))
        if value is None:
            return [] if type(None) in arms else [f"{path}: null is not allowed here"]
        arms = [a for a in arms if a is not type(None)]
        literals = [a for a in arms if get_origin(a) is Literal]
        if literals and str in arms:
            arms.remove(str)  # an open enum: the value must be one this API version lists
        errors_by_arm = [_check(value, arm, path) for arm in arms]
        if any(not errors for errors in errors_by_arm):
            return []
        # Report the arm of the same kind (an object for a dict, an id for a string) to keep messages useful.
        for arm, errors in zip(arms, errors_by_arm, strict=True):
            if isinstance(value, dict) == _is_object_type(arm):
                return errors
        return errors_by_arm[0]
    if origin is Literal:
        allowed = get_args(tp)
        if value in allowed and type(value) in {type(a) for a in allowed}:
            return []
        return [f"{path}: {_describe(value)} is not one of {list(allowed)}"]
    if tp is bool:
        return [] if isinstance(value, bool) else [f"{path}: expected a boolean, got {_describe(value)}"]
    if tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return [] if ok else [f"{path}: expected an integer, got {_describe(value)}"]
    if tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return [] if ok else [f"{path}: expected a number, got {_describe(value)}"]
    if tp is str:
        return [] if isinstance(value, str) else [f"{path}: expected a string, got {_describe(value)}"]
    if tp is decimal.Decimal:  # decimal strings on the wire (``unit_amount_decimal``)
        try:
            ok = isinstance(value, str) and decimal.Decimal(value).is_finite()
        except decimal.InvalidOperation:
            ok = False
        return [] if ok else [f"{path}: expected a decimal string, got {_describe(value)}"]
    if origin in (list, typing.List):  # noqa: UP006 - the SDK annotates with typing.List
        if not isinstance(value, list):
            return [f"{path}: expected a list, got {_describe(value)}"]
        (item_tp,) = get_args(tp) or (Any,)
        return [e for i, item in enumerate(value) for e in _check(item, item_tp, f"{path}[{i}]")]
    if origin in (dict, typing.Dict, Mapping) or origin is UntypedStripeObject or tp is UntypedStripeObject:  # noqa: UP006
        if not isinstance(value, dict):
            return [f"{path}: expected a map, got {_describe(value)}"]
        args = get_args(tp)
        value_tp = args[-1] if args else Any
        return [e for k, v in value.items() for e in _check(v, value_tp, f"{path}.{k}")]
    if origin is ListObject or tp is ListObject:
        (item_tp,) = get_args(tp) or (Any,)
        return _check_list(value, item_tp, path)
    if isinstance(tp, type) and issubclass(tp, StripeObject):
        return _check_object(value, tp, path)
    return [f"{path}: the contract checker does not know the type {tp!r}"]


def _is_object_type(tp: Any) -> bool:
    origin = get_origin(tp)
    if origin is ListObject or origin in (dict, typing.Dict, Mapping) or origin is UntypedStripeObject:  # noqa: UP006
        return True
    return isinstance(tp, type) and issubclass(tp, StripeObject)


def _check_list(value: Any, item_tp: Any, path: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{path}: expected a list object, got {_describe(value)}"]
    errors = []
    expected = {"object", "data", "has_more", "url"}
    for key in sorted(set(value) - expected):
        errors.append(f"{path}.{key}: a list object has no such attribute")
    for key in sorted(expected - set(value)):
        errors.append(f"{path}.{key}: missing (a list object always has it)")
    if value.get("object") != "list":
        errors.append(f"{path}.object: {_describe(value.get('object'))} is not 'list'")
    if "has_more" in value:
        errors += _check(value["has_more"], bool, f"{path}.has_more")
    if "url" in value:
        errors += _check(value["url"], str, f"{path}.url")
    if "data" in value:
        errors += _check(value["data"], list[item_tp], f"{path}.data")  # type: ignore[valid-type]
    return errors


def _check_object(value: Any, cls: type, path: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{path}: expected a {cls.__qualname__} object, got {_describe(value)}"]
    hints = declared(cls)
    errors = []
    for key in value:
        if key not in hints:
            errors.append(f"{path}.{key}: {cls.__qualname__} has no such attribute")
    for key, tp in hints.items():
        if key not in value:
            if not _is_none_allowed(tp):
                errors.append(f"{path}.{key}: missing ({cls.__qualname__} always has it)")
            continue
        errors += _check(value[key], tp, f"{path}.{key}")
    return errors


def problems(answer: Any, cls: type, path: str | None = None) -> list[str]:
    """Every way ``answer`` (decoded JSON) differs from what the typed class ``cls`` says Stripe sends."""
    return _check(answer, cls, path or cls.__qualname__)


def missing_nullable(answer: Mapping[str, Any], cls: type, allowed_absent: Iterable[str] = ()) -> list[str]:
    """Declared top-level attributes absent from ``answer`` (Stripe sends them, ``null`` when empty)."""
    skip = set(allowed_absent)
    return [
        f"{cls.__qualname__}.{key}: missing (Stripe sends it, null when empty)"
        for key in declared(cls)
        if key not in answer and key not in skip
    ]


# Resolve the classes once at import, so a broken SDK layout fails loudly here rather than in every test.
for _cls in (stripe.PaymentIntent, stripe.checkout.Session):
    declared(_cls)
