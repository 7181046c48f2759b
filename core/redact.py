"""Secrets never reach a log line: query parameters that carry secrets, and Stripe's secret-looking values.

Stripe.js returns the shopper to `/order/<id>/return?payment_intent=pi_...&payment_intent_client_secret=
pi_..._secret_...&redirect_status=succeeded`, and Stripe says a client secret must not be logged. Access logs
(gunicorn's `deploy/gunicorn.conf.py` through `core.gunicorn_logging`, and Django's own logging through
`RedactSecretsFilter`) pass every URL and message through these functions. Plain Python, no Django import:
gunicorn's master process uses it too.

- A query parameter whose *name* looks secret (secret, token, password, signature, key, code, auth) keeps its
  name and loses its value: `payment_intent_client_secret=[redacted]`.
- A *value* that looks like a Stripe secret wherever it appears (a client secret `pi_..._secret_...`, an API
  key `sk_live_...`, a webhook secret `whsec_...`) is replaced by `[redacted]`.

`redact_json` does the same to a decoded JSON value (a Stripe event, before it is stored): every `client_secret`
field, and every secret-looking string anywhere in it. A stored event is read for its ids, amounts and states,
never for a secret; whoever can read the database or the admin's event page must not be able to pay with it.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

REDACTED = "[redacted]"

# Names of query parameters whose values are secrets (matched on the decoded, lower-cased name).
_SECRET_NAME = re.compile(r"secret|token|passw|signature|(?:^|_)sig$|(?:^|_)key$|^code$|auth|session_?key")
# Values that are Stripe secrets whatever their parameter is called. Client secrets of PaymentIntents,
# SetupIntents and Checkout Sessions all contain `_secret_`; API and restricted keys, webhook secrets.
_SECRET_VALUE = re.compile(
    r"[A-Za-z0-9]+(?:_[A-Za-z0-9]+)*_secret_[A-Za-z0-9]+"
    r"|\b(?:sk|rk)_(?:test|live)_[A-Za-z0-9]+"
    r"|\bwhsec_[A-Za-z0-9]+"
)
# A `name=value` pair of a query string inside free text (a request line, a URL in a message).
_PAIR_IN_TEXT = re.compile(r"(?P<sep>[?&;])(?P<name>[^=&?#\s\"']+)=(?P<value>[^&#\s\"']*)")


def _secret_name(raw_name: str) -> bool:
    return bool(_SECRET_NAME.search(unquote_plus(raw_name).lower()))


def _secret_value(raw_value: str) -> bool:
    return bool(_SECRET_VALUE.search(unquote_plus(raw_value)))


def redact_query(query: str) -> str:
    """A query string (without `?`) with the values of secret parameters replaced."""
    if not query:
        return query
    pairs = []
    for pair in query.split("&"):
        name, eq, value = pair.partition("=")
        if eq and value and (_secret_name(name) or _secret_value(value)):
            value = REDACTED
        elif not eq and _secret_value(name):
            name = REDACTED
        pairs.append(f"{name}{eq}{value}")
    return "&".join(pairs)


def redact_uri(uri: str) -> str:
    """A request URI or URL with its query redacted (the path and fragment are kept)."""
    if not uri or "?" not in uri:
        return _SECRET_VALUE.sub(REDACTED, uri) if uri else uri
    head, _, rest = uri.partition("?")
    query, hash_, fragment = rest.partition("#")
    return f"{_SECRET_VALUE.sub(REDACTED, head)}?{redact_query(query)}{hash_}{fragment}"


def _redact_pair(match: re.Match[str]) -> str:
    name, value = match.group("name"), match.group("value")
    if value and (_secret_name(name) or _secret_value(value)):
        value = REDACTED
    return f"{match.group('sep')}{name}={value}"


def redact_text(text: str) -> str:
    """Free text (a log message) with secret query values and secret-looking values replaced."""
    if not text:
        return text
    if "=" in text:
        text = _PAIR_IN_TEXT.sub(_redact_pair, text)
    if "_" in text:
        text = _SECRET_VALUE.sub(REDACTED, text)
    return text


# Fields of Stripe objects that hold a secret whatever it looks like (PaymentIntents, SetupIntents and Checkout
# Sessions carry a `client_secret`).
SECRET_FIELDS = frozenset({"client_secret"})


def redact_json(value: object) -> object:
    """A copy of a decoded JSON value with its secrets replaced (recursively: a stored event nests a few dozen
    levels at most, `core.jsonbody` refuses deeper ones)."""
    if isinstance(value, dict):
        return {
            key: REDACTED if key in SECRET_FIELDS and item else redact_json(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact_json(item) for item in value]
    if isinstance(value, str) and "_" in value:
        return _SECRET_VALUE.sub(REDACTED, value)
    return value


def _redact_arg(value: object) -> object:
    return redact_text(value) if isinstance(value, str) else value


class RedactSecretsFilter(logging.Filter):
    """A logging filter (on the stdout handler of `settings.LOGGING`) that redacts every record's message and
    string arguments: Django's `django.server` request lines, `django.request` warnings, the shop's own lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_text(record.msg)
        if isinstance(record.args, dict):
            record.args = {key: _redact_arg(value) for key, value in record.args.items()}
        elif isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(value) for value in record.args)
        return True
