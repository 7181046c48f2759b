"""Settings of the shop, all from the environment (and `.env` when present).

Every variable is listed in README.md and `.env.example`. The original task's lower-case names
(`debug`, `secret_key`, `allowed_hosts`) keep working as aliases of the upper-case ones.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

from core.csp import policy as csp_policy
from core.siteurl import SITE_URL_HINT, site_url_problem

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

# Public base URL of the shop (https://shop.example.com), from which the absolute URLs handed to Stripe
# (success/cancel/return) are built. Required when DEBUG is off: without it (or with a value that is not an
# absolute http(s) base URL) the settings refuse to load, so neither gunicorn nor manage.py starts and a
# request's Host header never reaches Stripe (the system check shop.E010 says the same of settings changed later).
SITE_URL: str = env.str("SITE_URL", default="http://127.0.0.1:8000" if DEBUG else "").rstrip("/")
if not DEBUG and (_site_url_problem := site_url_problem(SITE_URL)):
    raise ImproperlyConfigured(f"{_site_url_problem} It is required when DEBUG is off. {SITE_URL_HINT}")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "djmoney",
    "csp",
    "axes",
    "django_tasks",
    "django_tasks_db",
    "core",
    "catalog",
    "payments",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # A lost database is a 503 with Retry-After, whatever below raised it (core/middleware.py).
    "core.middleware.DatabaseOutageMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The shopper's language: the `django_language` cookie set by the language switch (Django's set_language
    # view), else Accept-Language, else LANGUAGE_CODE. Before the rate limits, so that their 429 is translated.
    "django.middleware.locale.LocaleMiddleware",
    # ... except in the admin, which stays in English (core/middleware.py).
    "core.middleware.AdminLanguageMiddleware",
    # Past the bound of requests waiting on Stripe, Pay and /buy are refused here, before any other work
    # (payments/bulkhead.py, STRIPE_CONCURRENCY below).
    "payments.bulkhead.BulkheadMiddleware",
    # Rate limits of the endpoints that create Stripe objects or orders (RATELIMITS below), before CSRF.
    "core.ratelimit.RateLimitMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # django-axes: turns its lockout of the admin login into the answer of AXES_LOCKOUT_CALLABLE (last, as
    # its documentation asks).
    "axes.middleware.AxesMiddleware",
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
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True  # a connection broken by an outage is replaced, no restart
# PostgreSQL connections come from a pool per process (psycopg 3's, through Django): a request holds one only
# while it runs, and a process never holds more than DB_POOL_MAX_SIZE, so that N app servers x their processes
# x the pool, plus the task workers, fit under the server's max_connections (README "Connections" has the
# arithmetic). The default is half of a process's threads (GUNICORN_THREADS): most requests never wait for the
# database, and one that finds the pool busy waits DB_POOL_TIMEOUT for a connection, then answers 503.
DB_POOL_MAX_SIZE: int = env.int(
    "DB_POOL_MAX_SIZE", default=max(4, env.int("GUNICORN_THREADS", default=32) // 2)
)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # An unreachable server fails a request in seconds (answered 503), rather than holding a thread.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=5)
    )
    if env.bool("DB_POOL", default=True):
        DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps the connections (Django requires 0)
        DATABASES["default"]["OPTIONS"]["pool"] = {
            "min_size": env.int("DB_POOL_MIN_SIZE", default=1),
            "max_size": DB_POOL_MAX_SIZE,
            # A request waits this long for a free connection, then answers 503 (core.middleware).
            "timeout": env.float("DB_POOL_TIMEOUT", default=5.0),
            "max_idle": 300,  # idle connections beyond min_size are closed after 5 minutes
        }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite (development and demo): take the write lock when a transaction starts, so that two requests
    # (a payment and its webhook) wait for each other instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The admin login: django-axes first, so that a locked-out address is refused before its password is hashed.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# The shop speaks English (the default) and Russian. Translations live in locale/<lang>/LC_MESSAGES/django.po,
# compiled to django.mo, both in the repository (README, "Languages"). Cached pages are kept per language
# (core/pagecache.py). The admin follows the same language (Django ships its Russian translation).
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("ru", "Русский")]
LOCALE_PATHS = [BASE_DIR / "locale"]
FORMAT_MODULE_PATH = ["core.formats"]
# The switch's choice, kept a year; the cookie is not read by scripts, and only sent over https in production.
LANGUAGE_COOKIE_AGE = 60 * 60 * 24 * 365
LANGUAGE_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_SAMESITE = "Lax"
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
    LANGUAGE_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
# Sessions live in a signed cookie: a shopper's session (a browser id, the cart) costs no database row, so
# viewing a page writes nothing. The cookie is signed with SECRET_KEY and HTTP-only.
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
# Requests larger than this are refused before a view sees them (webhook payloads are far smaller).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=512 * 1024)

# --- Cache: rate-limit counters (and django-axes' cache handler when chosen) ----------------------------
# Default: the database cache (core/cache.py explains why: shared by every worker process on the machine,
# atomic counts, no new service); its table is created by `migrate`. Several app servers: Redis (REDIS_URL,
# e.g. redis://127.0.0.1:6379/0), shared by all of them.
REDIS_URL: str = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "shop",
            # A Redis that does not answer costs a request at most this long (the limits then let it through).
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "core.cache.DatabaseCache",
            "LOCATION": "shop_cache",
            # Culling deletes live counters once the table is over MAX_ENTRIES: keep it far above what the
            # scheduled `clear_expired_cache` leaves.
            "OPTIONS": {"MAX_ENTRIES": 1_000_000},
        }
    }

# --- Rate limits (core/ratelimit.py) -------------------------------------------------------------------
# Requests are matched by URL name; each group has a budget per browser session and per client address,
# as N/period (12/m, 100/h, 5/10s; several that all apply: 10/m,60/h; 0 or off: no limit). Over budget: 429
# with Retry-After, nothing created.
RATELIMIT_ENABLED: bool = env.bool("RATELIMIT_ENABLED", default=True)
RATELIMIT_CACHE: str = "default"
RATELIMITS: dict[str, dict[str, Any]] = {
    # Everything that creates a Stripe object (Checkout Session, PaymentIntent). Called by the pages' scripts.
    "payment": {
        "urls": [
            "payments:buy",
            "payments:item_intent",
            "payments:order_buy",
            "payments:order_intent",
        ],
        "session": env.str("RATELIMIT_PAYMENT_PER_SESSION", default="12/m"),
        "address": env.str("RATELIMIT_PAYMENT_PER_ADDRESS", default="30/m"),
        "json": True,
    },
    # Everything that creates or changes an order (the cart).
    "cart": {
        "urls": [
            "payments:order_new",
            "payments:order_put",
            "payments:order_remove",
            "payments:cart_add",
            "payments:order_change",
        ],
        "session": env.str("RATELIMIT_CART_PER_SESSION", default="60/m"),
        "address": env.str("RATELIMIT_CART_PER_ADDRESS", default="120/m"),
    },
    # Promotion codes entered: each try is a guess at a code (README, "Promotion codes"). A shopper types one
    # or two; the budgets keep a guesser far below 30 tries a minute from one address, and a few hundred a day.
    "promo": {
        "urls": ["payments:order_promo"],
        "session": env.str("RATELIMIT_PROMO_PER_SESSION", default="10/m,30/h"),
        "address": env.str("RATELIMIT_PROMO_PER_ADDRESS", default="20/m,60/h,200/d"),
    },
    # The admin login's form (django-axes locks a username at an address after AXES_FAILURE_LIMIT failures):
    # a username tried from many addresses is slowed to these tries, and one address trying many usernames.
    "login": {
        "urls": ["admin:login"],
        "methods": ["POST"],
        "username": env.str("RATELIMIT_LOGIN_PER_USERNAME", default="5/m,50/h"),
        "address": env.str("RATELIMIT_LOGIN_PER_ADDRESS", default="10/m,100/h"),
    },
}
# Peers whose X-Forwarded-For names the client (addresses or CIDRs, `*` for any): the nginx in front. The
# same variable tells gunicorn whom to trust for X-Forwarded-Proto (deploy/gunicorn.conf.py), same default.
TRUSTED_PROXIES: list[str] = env.list(
    "TRUSTED_PROXIES", default=env.list("FORWARDED_ALLOW_IPS", default=["127.0.0.1", "::1"])
)

# --- Promotion codes (payments/promotions.py, README "Promotion codes") ----------------------------------
# How long an order being paid holds a use of a limited code: its Checkout Session expires at Stripe after this
# (Stripe's shortest is 30 minutes), its PaymentIntent is canceled by the scheduled reconcile after it.
PROMO_HOLD_MINUTES: int = env.int("PROMO_HOLD_MINUTES", default=30)
# The uses of one code a browser, and an address, may hold at once (an address never more than half of them).
PROMO_HOLDS_PER_BROWSER: int = env.int("PROMO_HOLDS_PER_BROWSER", default=1)
PROMO_HOLDS_PER_ADDRESS: int = env.int("PROMO_HOLDS_PER_ADDRESS", default=2)

# --- Admin login lockout (django-axes) ------------------------------------------------------------------
# After AXES_FAILURE_LIMIT failed logins for one username from one client address, that username cannot log in
# from that address for AXES_COOLOFF_MINUTES (429 with the message below; each attempt during the lockout starts
# it again). The same staff member signs in from any address that has not failed, and a username tried from many
# addresses is slowed by the "login" rate limit above. `manage.py axes_reset` (or `axes_reset_username NAME`)
# lifts lockouts; failed attempts are listed in the admin.
AXES_ENABLED: bool = env.bool("AXES_ENABLED", default=True)
AXES_FAILURE_LIMIT: int = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
# Who is locked out: a username at an address (default, "username+ip_address"); or e.g. "ip_address" alone.
AXES_LOCKOUT_PARAMETERS: list[str | list[str]] = [
    item.split("+") if "+" in item else item
    for item in env.list("AXES_LOCKOUT_PARAMETERS", default=["username+ip_address"])
]
# Database handler: attempts are rows (visible in the admin, shared by every process); or
# axes.handlers.cache.AxesCacheHandler to keep them in the cache above (Redis with several app servers).
AXES_HANDLER: str = env.str("AXES_HANDLER", default="axes.handlers.database.AxesDatabaseHandler")
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "core.ratelimit.axes_client_address"
AXES_LOCKOUT_CALLABLE = "core.ratelimit.admin_lockout_response"
AXES_COOLOFF_MESSAGE: str = env.str(
    "AXES_COOLOFF_MESSAGE",
    default="Too many failed logins for this account from your address. Try again in "
    f"{int(AXES_COOLOFF_TIME.total_seconds() // 60)} minutes.",
)

# A lost database is answered 503 with this Retry-After (seconds).
DATABASE_OUTAGE_RETRY_AFTER: int = env.int("DATABASE_OUTAGE_RETRY_AFTER", default=30)

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
# The bulkhead for Stripe waits (payments/bulkhead.py): per process, at most this many requests wait on Stripe
# at once (Pay, /buy, "Change order"); past it they answer 503 with Retry-After, writing nothing. Each such
# request holds a thread and, in its transaction, a pooled connection for the whole Stripe call, so the default
# is three quarters of DB_POOL_MAX_SIZE (12 of 16, with 32 threads): the other threads and connections keep the
# pages, /healthz, the admin and the webhooks answering however slow Stripe is, and honest shoppers paying at
# once are not refused (half the pool refused some in the benchmark's rows of 16 shoppers, README "Benchmark").
# 0 = no bound. README "Configuration".
STRIPE_CONCURRENCY: int = env.int("STRIPE_CONCURRENCY", default=max(2, DB_POOL_MAX_SIZE * 3 // 4))
# Staff refunds (the admin) have slots of their own, so that shoppers never refuse a refund.
STRIPE_STAFF_CONCURRENCY: int = env.int("STRIPE_STAFF_CONCURRENCY", default=2)
STRIPE_BUSY_RETRY_AFTER: int = env.int("STRIPE_BUSY_RETRY_AFTER", default=5)
# So a request waits for an order's row lock at most as long as one Stripe call may hold it (PostgreSQL's
# lock_timeout, set for every connection; a webhook delivery waits less, see payments/locks.py).
ORDER_LOCK_WAIT: float = STRIPE_TIMEOUT * (1 + STRIPE_MAX_NETWORK_RETRIES) + 1
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = (
        f"-c lock_timeout={int(ORDER_LOCK_WAIT * 1000)}"
    )
# Content Security Policy: Stripe's published list for Stripe.js and Checkout, plus a stand-in's origin when
# one is configured (core/csp.py).
CONTENT_SECURITY_POLICY = csp_policy(STRIPE_JS_URL, STRIPE_API_BASE)
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
_email = env.email_url(
    "EMAIL_URL", default="consolemail://" if DEBUG or STRIPE_DEMO_MODE else "smtp://localhost:25"
)
if _email["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend":
    # The SMTP backend that keeps the relay's answer to each message (`core.mail`).
    _email["EMAIL_BACKEND"] = "core.mail.RelayRecordingBackend"
vars().update(_email)
DEFAULT_FROM_EMAIL: str = env.str("DEFAULT_FROM_EMAIL", default="shop@localhost")
# Seconds an email may take: only task workers send email (never a request), so a slow relay is waited for
# rather than given up on and sent again.
EMAIL_TIMEOUT: int = env.int("EMAIL_TIMEOUT", default=60)

# --- Tasks: the work after a payment's news, run by workers from the shop's own database ---------------------
# Django's tasks API (the django-tasks backport of django.tasks) with the ORM backend: a task is a row, written
# in the same transaction as the news that calls for it. `manage.py db_worker` runs them (any number of
# workers, on any machine: each takes a task with SELECT ... FOR UPDATE SKIP LOCKED). See payments/followups.py.
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}
# A follow-up running this long was left by a worker that died: the sweep starts it again (payments.followups).
FOLLOWUP_STUCK_AFTER: int = env.int("FOLLOWUP_STUCK_AFTER", default=600)

# --- Logging: one line per event, to stdout -----------------------------------------------------------
LOG_LEVEL: str = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "line": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    # No log line carries a client secret or another query secret (core/redact.py).
    "filters": {"redact": {"()": "core.redact.RedactSecretsFilter"}},
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "formatter": "line",
            "stream": "ext://sys.stdout",
            "filters": ["redact"],
        }
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        "django.request": {"level": "WARNING"},
        "stripe": {"level": "WARNING"},
    },
}
