"""`payments/gateway.py` is the one module that calls the Stripe SDK.

Every product module (core, catalog, payments; tests and migrations left out) is parsed, and none but the
gateway may touch a Stripe client (`.v1`, `.client`, `.quick_client`) or import the SDK at run time. Allowed
elsewhere: the SDK's params TypedDicts (`stripe.params`, types only), imports under `TYPE_CHECKING`, and
`payments/accounts.py`, which builds each account's `StripeClient` and calls nothing with it.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("core", "catalog", "payments")
GATEWAY = "payments/gateway.py"
# Builds the clients (`StripeClient(...)`, `RequestsClient`); makes no request.
BUILDS_CLIENTS = "payments/accounts.py"
CLIENT_ATTRIBUTES = {"v1", "client", "quick_client"}


def product_modules() -> list[Path]:
    found = []
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).parts
            if "tests" in parts or "migrations" in parts:
                continue
            found.append(path)
    return found


def _type_checking_lines(tree: ast.Module) -> set[int]:
    """Lines inside `if TYPE_CHECKING:` blocks (imports there are never run)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _sdk_module(name: str) -> bool:
    return name == "stripe" or name.startswith("stripe.")


def _types_only(name: str) -> bool:
    return name == "stripe.params" or name.startswith("stripe.params.")


def stripe_uses(source: str, relative: str) -> list[str]:
    """Where a module other than the gateway calls Stripe, or could: `file:line what`."""
    tree = ast.parse(source, filename=relative)
    typing_only = _type_checking_lines(tree)
    problems = []
    for node in ast.walk(tree):
        where = f"{relative}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Attribute) and node.attr in CLIENT_ATTRIBUTES:
            problems.append(f"{where} touches a Stripe client: .{node.attr}")
        if node.__class__ in (ast.Import, ast.ImportFrom) and node.lineno not in typing_only:
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                assert isinstance(node, ast.ImportFrom)
                module = node.module or ""
                # `from stripe import params` is the params too; `from stripe import X` is the SDK
                names = [f"{module}.{alias.name}" if module == "stripe" else module for alias in node.names]
            for name in names:
                if _sdk_module(name) and not _types_only(name) and relative != BUILDS_CLIENTS:
                    problems.append(f"{where} imports the Stripe SDK: {name}")
    return problems


def test_only_the_gateway_calls_stripe() -> None:
    modules = product_modules()
    assert ROOT / GATEWAY in modules and len(modules) > 40  # the walk found the product
    problems = []
    for path in modules:
        relative = path.relative_to(ROOT).as_posix()
        if relative != GATEWAY:
            problems += stripe_uses(path.read_text(encoding="utf-8"), relative)
    assert problems == [], "Stripe is called outside payments/gateway.py:\n" + "\n".join(problems)


def test_the_gateway_itself_is_what_the_check_would_catch() -> None:
    """The check is not blind: the gateway's own source, under another name, is caught on every count."""
    problems = stripe_uses((ROOT / GATEWAY).read_text(encoding="utf-8"), "payments/elsewhere.py")
    assert any(".v1" in p for p in problems)
    assert any("imports the Stripe SDK: stripe" in p for p in problems)


def test_the_check_reads_code_not_comments() -> None:
    caught = """
import stripe.checkout
from stripe import PaymentIntent
def f(acct):
    return acct.client.v1.refunds.create(params={})
"""
    assert len(stripe_uses(caught, "payments/x.py")) == 4  # two imports, .client and .v1
    allowed = '''
"""acct.client.v1.refunds.create(...) in a docstring"""
from typing import TYPE_CHECKING
from stripe.params import RefundCreateParams
from stripe import params
if TYPE_CHECKING:
    from stripe import Refund
# acct.client.v1.refunds.create(params={})
'''
    assert stripe_uses(allowed, "payments/x.py") == []
