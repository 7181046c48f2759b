"""No log line carries a client secret or another query secret (core/redact.py, core/gunicorn_logging.py)."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from core.redact import REDACTED, RedactSecretsFilter, redact_query, redact_text, redact_uri

SECRET = "pi_3PqA1b2C3d4E5f6G_secret_Zx9Yw8Vu7Ts6"
RETURN_QUERY = (
    f"payment_intent=pi_3PqA1b2C3d4E5f6G&payment_intent_client_secret={SECRET}&redirect_status=succeeded"
)
RETURN_URI = f"/order/5b1c0c56-2a7e-4c43-9d0b-0c0de0c0de00/return?{RETURN_QUERY}"


def test_the_return_url_of_stripe_js_keeps_everything_but_the_secret() -> None:
    redacted = redact_uri(RETURN_URI)
    assert SECRET not in redacted
    assert redacted == (
        "/order/5b1c0c56-2a7e-4c43-9d0b-0c0de0c0de00/return?payment_intent=pi_3PqA1b2C3d4E5f6G"
        f"&payment_intent_client_secret={REDACTED}&redirect_status=succeeded"
    )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("setup_intent_client_secret=seti_1_secret_2", f"setup_intent_client_secret={REDACTED}"),
        ("token=abc&page=2", f"token={REDACTED}&page=2"),
        ("password=hunter2", f"password={REDACTED}"),
        ("api_key=k&key=v", f"api_key={REDACTED}&key={REDACTED}"),
        ("code=oauth-code", f"code={REDACTED}"),
        ("sig=abc", f"sig={REDACTED}"),
        # A secret value under any name, percent-encoded or not.
        ("x=pi_1_secret_2", f"x={REDACTED}"),
        ("next=%2Freturn%3Fpayment_intent_client_secret%3Dpi_1_secret_2", f"next={REDACTED}"),
        ("k=sk_live_abc123", f"k={REDACTED}"),
        ("w=whsec_abc", f"w={REDACTED}"),
        # Harmless parameters stay.
        ("session_id=cs_test_a1&redirect_status=failed", "session_id=cs_test_a1&redirect_status=failed"),
        ("q=espresso&page=2&flag", "q=espresso&page=2&flag"),
        ("", ""),
    ],
)
def test_redact_query(query: str, expected: str) -> None:
    assert redact_query(query) == expected


def test_redact_text_finds_query_strings_and_secrets_anywhere() -> None:
    line = f'"GET {RETURN_URI} HTTP/1.1" 200 1234 and a stray {SECRET} and sk_test_ABC'
    redacted = redact_text(line)
    assert SECRET not in redacted and "sk_test_ABC" not in redacted
    assert "payment_intent=pi_3PqA1b2C3d4E5f6G" in redacted and "redirect_status=succeeded" in redacted
    assert redact_text("no secrets here: /order/1?page=2") == "no secrets here: /order/1?page=2"


def test_django_log_records_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    """The filter on settings.LOGGING's stdout handler: what runserver's django.server logger writes (the
    request line as an argument), and any message of ours."""
    record = logging.LogRecord(
        "django.server",
        logging.INFO,
        __file__,
        1,
        '"%s" %s %s',
        (f"GET {RETURN_URI} HTTP/1.1", "200", "5"),
        None,
    )
    assert RedactSecretsFilter().filter(record)
    assert (
        SECRET not in record.getMessage()
        and f"payment_intent_client_secret={REDACTED}" in record.getMessage()
    )
    mapping = logging.LogRecord("x", logging.INFO, __file__, 1, "%(url)s", None, None)
    mapping.args = {"url": RETURN_URI}
    RedactSecretsFilter().filter(mapping)
    assert SECRET not in mapping.getMessage()


def test_the_stdout_handler_of_the_settings_has_the_filter() -> None:
    from django.conf import settings

    logging_config: dict[str, Any] = settings.LOGGING
    assert "redact" in logging_config["handlers"]["stdout"]["filters"]
    assert logging_config["filters"]["redact"]["()"] == "core.redact.RedactSecretsFilter"


def test_gunicorn_access_atoms_are_redacted() -> None:
    from gunicorn.config import Config

    from core.gunicorn_logging import RedactingLogger

    logger = RedactingLogger(Config())
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": RETURN_URI,
        "PATH_INFO": RETURN_URI.split("?")[0],
        "QUERY_STRING": RETURN_QUERY,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_REFERER": f"https://shop.example.com{RETURN_URI}",
        "REMOTE_ADDR": "127.0.0.1",
    }
    response = SimpleNamespace(status="200 OK", sent=10, headers=[])
    request = SimpleNamespace(headers=[("REFERER", environ["HTTP_REFERER"])])
    atoms = logger.atoms(response, request, environ, SimpleNamespace(seconds=0, microseconds=1500))
    for name in ("r", "q", "f", "{referer}i", "{raw_uri}e", "{query_string}e", "{http_referer}e"):
        assert SECRET not in str(atoms[name]), name
    assert atoms["r"].startswith("GET /order/") and atoms["r"].endswith(" HTTP/1.1")
    assert "redirect_status=succeeded" in atoms["r"]


def test_gunicorn_error_log_lines_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    from gunicorn.config import Config

    from core.gunicorn_logging import RedactingLogger

    logger = RedactingLogger(Config())
    logger.error_log.propagate = True
    with caplog.at_level(logging.ERROR, logger="gunicorn.error"):
        logger.error("Error handling request %s", RETURN_URI)
        logger.log("error", "Error handling request %s", RETURN_URI)
    assert caplog.records and all(SECRET not in r.getMessage() for r in caplog.records)
