"""Settings for the test suite: the real settings module, fed a test environment.

Two Stripe test accounts (USD and EUR) with their own keys; tests put the in-memory Stripe emulator behind
them at the SDK's HTTP boundary, so no test ever opens a connection to Stripe. `DATABASE_URL` picks SQLite
(default) or PostgreSQL, exactly as in production.
"""

import os
from pathlib import Path

_TEST_ENV = {
    "SECRET_KEY": "test-only-secret-key-not-for-production",
    "DEBUG": "0",
    "ALLOWED_HOSTS": "testserver,localhost,127.0.0.1",
    "STRIPE_CURRENCIES": "usd,eur",
    "STRIPE_USD_SECRET_KEY": "sk_test_usd_0000000000000000",
    "STRIPE_USD_PUBLISHABLE_KEY": "pk_test_usd_0000000000000000",
    "STRIPE_USD_WEBHOOK_SECRET": "whsec_test_usd_000000000000",
    "STRIPE_EUR_SECRET_KEY": "sk_test_eur_1111111111111111",
    "STRIPE_EUR_PUBLISHABLE_KEY": "pk_test_eur_1111111111111111",
    "STRIPE_EUR_WEBHOOK_SECRET": "whsec_test_eur_111111111111",
    "STRIPE_API_BASE": "",
    "STRIPE_JS_URL": "https://js.stripe.com/endive/stripe.js",
    "STRIPE_DEMO_MODE": "0",
    "STRIPE_MAX_NETWORK_RETRIES": "1",
    "SECURE_SSL_REDIRECT": "0",
    # Required with DEBUG off (check shop.E010): the test client's host.
    "SITE_URL": "http://testserver",
    # Tests send many requests from one client: the limits are off except in the tests of the limits
    # (core/tests/test_ratelimit.py), which turn them on with override_settings.
    "RATELIMIT_ENABLED": "0",
    # django-axes needs a request in authenticate(), which Client.login() does not pass: off except in the
    # lockout's own tests. (admin_client logs in with force_login, which axes never sees.)
    "AXES_ENABLED": "0",
    # The database cache, as in production on one machine (the Redis tests configure their own).
    "REDIS_URL": "",
}
for _name in [n for n in os.environ if n.startswith("STRIPE_")]:
    del os.environ[_name]  # a developer's real keys never reach the tests
os.environ.update({k: v for k, v in _TEST_ENV.items()})
os.environ["ENV_FILE"] = os.devnull  # ignore a local .env

import tempfile  # noqa: E402

from core.settings import *  # noqa: E402,F403
from core.settings import DATABASES  # noqa: E402

STATIC_ROOT = Path(tempfile.gettempdir()) / "shop-tests-static-root-unused"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory: the browser tests' live server and the emulator's webhooks use their own connections.
    DATABASES["default"]["TEST"] = {
        "NAME": os.path.join(tempfile.gettempdir(), f"shop-tests-{os.getpid()}.sqlite3")
    }
