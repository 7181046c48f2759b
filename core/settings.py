"""Settings of the shop, all from the environment (and `.env` when present).

Every variable is listed in README.md and `.env.example`. The original task's lower-case names
(`debug`, `secret_key`, `allowed_hosts`) keep working as aliases of the upper-case ones.
"""

from __future__ import annotations

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
_env_file = Path(os.environ.get("ENV_FILE", BASE_DIR / ".env"))
if _env_file.is_file():
    env.read_env(str(_env_file), overwrite=False)


def _alias(name: str, *aliases: str) -> str | None:
    """The value of `name`, or of the first alias set (the task's lower-case spelling)."""
    for key in (name, *aliases):
        if key in os.environ:
            return os.environ[key]
    return None


for _name, _old in (("DEBUG", "debug"), ("SECRET_KEY", "secret_key"), ("ALLOWED_HOSTS", "allowed_hosts")):
    _value = _alias(_name, _old)
    if _value is not None:
        os.environ[_name] = _value

DEBUG: bool = env.bool("DEBUG", default=False)

SECRET_KEY: str = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set SECRET_KEY in the environment or in .env "
            "(for local development you may set DEBUG=1 instead, which uses an insecure development key)."
        )
    SECRET_KEY = "django-insecure-development-only-key"

ALLOWED_HOSTS: list[str] = env.list(
    "ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS: list[str] = env.list("CSRF_TRUSTED_ORIGINS", default=[])
CSRF_FAILURE_VIEW = "core.views.csrf_failure"

# Public base URL of the shop, used for absolute URLs handed to Stripe (success/cancel/return) when set;
# otherwise they are built from the request.
SITE_URL: str = env.str("SITE_URL", default="").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "djmoney",
    "core",
    "catalog",
    "payments",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "core.middleware.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "core.urls"
WSGI_APPLICATION = "core.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "core.context_processors.shop",
            ],
        },
    },
]

_database_url = env.str("DATABASE_URL", default="") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
DATABASES = {"default": env.db_url_config(_database_url)}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite (development and demo): take the write lock when a transaction starts, so that two requests
    # (a payment and its webhook) wait for each other instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- Security (see `manage.py check --deploy`) -------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True  # pages carry the token in their markup; scripts never read the cookie
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin-allow-popups"
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
# Requests larger than this are refused before a view sees them (webhook payloads are far smaller).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=512 * 1024)

# --- Stripe ------------------------------------------------------------------------------------------
# One Stripe account per currency. STRIPE_CURRENCIES lists them; each reads
# STRIPE_<CUR>_SECRET_KEY / _PUBLISHABLE_KEY / _WEBHOOK_SECRET. The task's STRIPE_SECRET_KEY,
# STRIPE_PUBLISHABLE_KEY and STRIPE_WEBHOOK_SECRET form the default account, used for the
# STRIPE_DEFAULT_CURRENCY (default usd) when no per-currency keys are given for it.
STRIPE_CURRENCIES: list[str] = [
    c.strip().lower() for c in env.list("STRIPE_CURRENCIES", default=[]) if c.strip()
]
STRIPE_DEFAULT_CURRENCY: str = env.str("STRIPE_DEFAULT_CURRENCY", default="usd").lower()


def _stripe_accounts() -> dict[str, dict[str, str]]:
    accounts: dict[str, dict[str, str]] = {}
    default = {
        "secret_key": env.str("STRIPE_SECRET_KEY", default=""),
        "publishable_key": env.str("STRIPE_PUBLISHABLE_KEY", default=""),
        "webhook_secret": env.str("STRIPE_WEBHOOK_SECRET", default=""),
    }
    currencies = list(STRIPE_CURRENCIES)
    if any(default.values()) and STRIPE_DEFAULT_CURRENCY not in currencies:
        currencies.insert(0, STRIPE_DEFAULT_CURRENCY)
    for currency in currencies:
        prefix = f"STRIPE_{currency.upper()}_"
        keys = {
            "secret_key": env.str(prefix + "SECRET_KEY", default=""),
            "publishable_key": env.str(prefix + "PUBLISHABLE_KEY", default=""),
            "webhook_secret": env.str(prefix + "WEBHOOK_SECRET", default=""),
        }
        if currency == STRIPE_DEFAULT_CURRENCY:
            keys = {name: keys[name] or default[name] for name in keys}
        accounts[currency] = keys
    return accounts


STRIPE_ACCOUNTS: dict[str, dict[str, str]] = _stripe_accounts()
# A local stand-in for api.stripe.com (the emulator in demo mode and tests); empty means the real Stripe.
STRIPE_API_BASE: str = env.str("STRIPE_API_BASE", default="").rstrip("/")
STRIPE_JS_URL: str = env.str("STRIPE_JS_URL", default="https://js.stripe.com/endive/stripe.js")
# The budget of a Stripe call made while a shopper (or Stripe's webhook delivery) waits: STRIPE_TIMEOUT seconds
# per attempt, 1 + STRIPE_MAX_NETWORK_RETRIES attempts (a retry carries the same idempotency key). An order's
# row lock is held across such a call, so this is also the longest any other request waits for that order.
STRIPE_TIMEOUT: float = env.float("STRIPE_TIMEOUT", default=5.0)
STRIPE_MAX_NETWORK_RETRIES: int = env.int("STRIPE_MAX_NETWORK_RETRIES", default=1)
# Shown on every page when payments go to the local emulator rather than Stripe.
STRIPE_DEMO_MODE: bool = env.bool("STRIPE_DEMO_MODE", default=False)

# django-money: the currencies items can be priced in are exactly the configured accounts' (USD and EUR
# when none are set, so that the catalog and admin work before keys are added).
CURRENCIES = [c.upper() for c in STRIPE_ACCOUNTS] or ["USD", "EUR"]
DEFAULT_CURRENCY = CURRENCIES[0]

# --- Email: the shop's order confirmations ---------------------------------------------------------------
# EMAIL_URL (django-environ's form): smtp+tls://user:password@smtp.example.com:587, smtps://... for SSL,
# consolemail:// to write emails to the log. Default: the console with DEBUG or in demo mode, else the local
# mail server (smtp://localhost:25).
vars().update(
    env.email_url(
        "EMAIL_URL", default="consolemail://" if DEBUG or STRIPE_DEMO_MODE else "smtp://localhost:25"
    )
)
DEFAULT_FROM_EMAIL: str = env.str("DEFAULT_FROM_EMAIL", default="shop@localhost")
EMAIL_TIMEOUT: int = env.int("EMAIL_TIMEOUT", default=10)  # seconds; a webhook waits for it

# --- Logging: one line per event, to stdout -----------------------------------------------------------
LOG_LEVEL: str = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "line": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "stdout": {"class": "logging.StreamHandler", "formatter": "line", "stream": "ext://sys.stdout"}
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        "django.request": {"level": "WARNING"},
        "stripe": {"level": "WARNING"},
    },
}
