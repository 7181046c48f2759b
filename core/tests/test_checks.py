"""SITE_URL is required when DEBUG is off: the links handed to Stripe are built from it, never from the Host
header of a request (which anyone can set)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.checks import Error, Warning
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from core.checks import check_site_url, check_site_url_https

BAD = [
    "",
    "shop.example.com",
    "//shop.example.com",
    "ftp://shop.example.com",
    "javascript:alert(1)",
    "https://",
    "https://shop.example.com/?next=1",
    "https://shop.example.com/#top",
    "https://user:pass@shop.example.com",
    "https://shop.example.com:port",
]


@pytest.mark.parametrize("url", BAD)
def test_site_url_missing_or_not_an_absolute_http_url_is_an_error(url: str) -> None:
    with override_settings(DEBUG=False, SITE_URL=url):
        [message] = check_site_url()
    assert isinstance(message, Error) and message.id == "shop.E010"
    assert "SITE_URL" in message.msg and "SITE_URL=https://" in (message.hint or "")


@pytest.mark.parametrize(
    "url",
    [
        "https://shop.example.com",
        "https://shop.example.com:8443",
        "http://127.0.0.1:8000",
        "https://x.y/shop",
    ],
)
def test_absolute_http_urls_pass(url: str) -> None:
    with override_settings(DEBUG=False, SITE_URL=url):
        assert check_site_url() == []


def test_debug_needs_no_site_url() -> None:
    with override_settings(DEBUG=True, SITE_URL=""):
        assert check_site_url() == [] and check_site_url_https() == []


def test_deploy_check_warns_about_plain_http() -> None:
    with override_settings(DEBUG=False, SITE_URL="http://shop.example.com"):
        [message] = check_site_url_https()
    assert isinstance(message, Warning) and message.id == "shop.W011"
    with override_settings(DEBUG=False, SITE_URL="https://shop.example.com"):
        assert check_site_url_https() == []


def test_manage_check_and_check_deploy_fail_without_site_url() -> None:
    with override_settings(DEBUG=False, SITE_URL=""):
        for options in ({}, {"deploy": True}):
            with pytest.raises(SystemCheckError, match=r"shop\.E010"):
                call_command("check", **options)
    with override_settings(DEBUG=False, SITE_URL="https://shop.example.com"):
        call_command("check")


def _load_settings(**env: str) -> subprocess.CompletedProcess[str]:
    """Load the production settings module in a fresh interpreter, as gunicorn's `core.wsgi` does."""
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "ENV_FILE": os.devnull,
        "DJANGO_SETTINGS_MODULE": "core.settings",
        "SECRET_KEY": "a-production-secret-key-for-this-test-only",
        "ALLOWED_HOSTS": "shop.example.com",
        **env,
    }
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; print(settings.SITE_URL)",
        ],
        cwd=Path(__file__).resolve().parents[2],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("url", ["", "shop.example.com", "https://shop.example.com/?next=1"])
def test_production_settings_refuse_to_load_without_a_usable_site_url(url: str) -> None:
    """gunicorn imports the settings before serving anything: without SITE_URL it does not start at all."""
    loaded = _load_settings(DEBUG="0", **({"SITE_URL": url} if url else {}))
    assert loaded.returncode != 0
    assert "ImproperlyConfigured" in loaded.stderr and "SITE_URL" in loaded.stderr, loaded.stderr[-2000:]


def test_production_settings_load_with_site_url_and_debug_needs_none() -> None:
    loaded = _load_settings(DEBUG="0", SITE_URL="https://shop.example.com/")
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.strip().splitlines()[-1] == "https://shop.example.com"
    debug = _load_settings(DEBUG="1")
    assert debug.returncode == 0, debug.stderr[-2000:]
    assert debug.stdout.strip().splitlines()[-1] == "http://127.0.0.1:8000"


def test_the_test_settings_set_it() -> None:
    from django.conf import settings

    assert settings.SITE_URL == "http://testserver"


def test_rate_limit_budgets_and_trusted_proxies_must_parse() -> None:
    from core.checks import check_rate_limits

    assert check_rate_limits() == []
    broken = {"payment": {"urls": [], "session": "12 per minute", "address": "30/m"}}
    with override_settings(
        RATELIMITS=broken, TRUSTED_PROXIES=["127.0.0.1", "nginx.local", "*", "10.0.0.0/8"]
    ):
        messages = check_rate_limits()
    assert [m.id for m in messages] == ["shop.E011", "shop.E012"]
    assert "RATELIMIT_PAYMENT_PER_SESSION" in (messages[0].hint or "")
    assert "nginx.local" in messages[1].msg
