"""Gunicorn settings of the shop, all from the environment.

Used the same way everywhere: `gunicorn -c deploy/gunicorn.conf.py core.wsgi` (Docker image, compose, systemd,
the loopback smoke test in deploy/smoke.sh).

| variable                  | default                   | meaning                                            |
| ------------------------- | ------------------------- | -------------------------------------------------- |
| GUNICORN_BIND             | 127.0.0.1:$PORT           | where to listen (comma-separated; unix:/path too)  |
| PORT                      | 8000                      | port of the default bind                           |
| WEB_CONCURRENCY           | usable cores, at least 2  | worker processes                                   |
| GUNICORN_THREADS          | 32                        | threads per worker (gthread; sizing below)         |
| GUNICORN_TIMEOUT          | 60                        | seconds before a silent worker is killed           |
| GUNICORN_GRACEFUL_TIMEOUT | 30                        | seconds given to in-flight requests on stop/reload |
| GUNICORN_KEEPALIVE        | 5                         | seconds a keep-alive connection waits (nginx)      |
| GUNICORN_MAX_REQUESTS     | 1000 (0 = never)          | recycle a worker after that many requests (+jitter)|
| FORWARDED_ALLOW_IPS       | 127.0.0.1                 | proxies whose X-Forwarded-* headers are trusted    |
| GUNICORN_CONTROL_SOCKET   | unset = no control socket | path of gunicorn's control socket (gunicornc)      |
| GUNICORN_LOG_LEVEL        | info                      | gunicorn's own log level                           |
"""

from __future__ import annotations

import os


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {value!r}") from exc


def _cores() -> int:
    """Cores this process may run on (a container's or systemd's CPU affinity), not the host's total."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# --- Concurrency ----------------------------------------------------------------------------------------
# Most of a request's time in this shop is spent waiting on Stripe (network I/O of up to STRIPE_TIMEOUT
# seconds, with retries) or on PostgreSQL, during which a thread gives up the GIL. So concurrency comes from
# threads, and processes only need to cover the CPU work (template rendering, JSON): the classic
# `2 * cores + 1` sync workers would waste memory (each worker is a full Django process, ~60-80 MB) and
# still serve only that many requests at a time.
#
# How many threads: a request waiting on Stripe holds its thread for the whole Stripe call, and a slow Stripe
# must not leave the pages that never call it (/healthz, the catalog, item pages) queueing behind those
# waits. gthread also queues every connection a worker accepted behind that worker's own busy threads, even
# when another worker is idle. So size the threads for the shoppers that may be waiting on Stripe at once,
# plus room for everything else:
#
#     threads per worker >= shoppers waiting on Stripe at once (per worker) + the rest of the traffic
#
# Waiting threads are cheap: a few hundred KB of stack and no CPU. The default, one worker per usable core
# (at least 2, so that one busy or recycling worker never takes the site down) x 32 threads, is 64 requests
# in flight on 2 cores: 20 shoppers stuck on a Stripe answering in 15 s (deploy/tests/test_live.py) leave
# the other pages answering in milliseconds. The rate limits (RATELIMITS in core/settings.py, and nginx's
# limit_req) keep one client from taking those threads, and nginx's proxy timeouts bound every wait.
# The ceiling is the database: every thread keeps its own connection (CONN_MAX_AGE), so keep
# workers x threads (+ the reconciliation job and a margin) under PostgreSQL's max_connections (100 by
# default): 2 x 32 = 64. With more workers, lower the threads or raise max_connections (or add pgbouncer).
# However many shoppers press Pay, at most STRIPE_CONCURRENCY (3/4 of the DB pool, 12) requests per worker wait on Stripe;
# the rest answer 503 at once (payments/bulkhead.py), so the other threads always serve the pages.
workers = _int("WEB_CONCURRENCY", max(2, _cores()))
threads = _int("GUNICORN_THREADS", 32)
worker_class = "gthread"
if workers < 1 or threads < 1:
    raise ValueError("WEB_CONCURRENCY and GUNICORN_THREADS must be at least 1")

# --- Listening ------------------------------------------------------------------------------------------
# Loopback by default: only the local nginx talks to gunicorn.
# The Docker image sets GUNICORN_BIND=0.0.0.0:8000.
port = _int("PORT", 8000)
bind = [b.strip() for b in os.environ.get("GUNICORN_BIND", f"127.0.0.1:{port}").split(",") if b.strip()]
backlog = 2048

# --- Timeouts -------------------------------------------------------------------------------------------
# A Stripe call may take STRIPE_TIMEOUT (10 s) times 1 + STRIPE_MAX_NETWORK_RETRIES (2) attempts: 60 s leaves
# room for that. With gthread the timeout guards against a hung worker process, not a slow request.
timeout = _int("GUNICORN_TIMEOUT", 60)
# On SIGTERM (docker stop, systemctl stop/restart) in-flight requests get this long to finish.
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _int("GUNICORN_KEEPALIVE", 5)

# Worker recycling is off by default: a worker's memory stays flat (bench/run.py measured a 78 MB peak), and
# recycling every 1000 requests cost a third of the throughput under load (a restart every few seconds, each
# re-importing Django on the same cores). Set GUNICORN_MAX_REQUESTS (e.g. 50000) if a leak ever shows up.
max_requests = _int("GUNICORN_MAX_REQUESTS", 0)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", max(1, max_requests // 10) if max_requests else 0)

# Heartbeat files on tmpfs when there is one (in Docker /tmp may be an overlay on a slow disk).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None  # noqa: S108

# --- Proxy ----------------------------------------------------------------------------------------------
# X-Forwarded-Proto/-For are honoured only from these addresses (nginx on the same host by default).
# Django's SECURE_PROXY_SSL_HEADER reads X-Forwarded-Proto itself, which is why gunicorn must never be
# reachable except through the proxy: bind to loopback (or a private container network) and let nginx
# overwrite the header on every request.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# --- Logging: everything on stdout/stderr, collected by Docker or journald ------------------------------
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# peer (nginx), client (X-Forwarded-For set by nginx), request line (method, path, query), status, response
# bytes, duration in ms, nginx's request id (to match its log), user agent. No referer: it is a whole URL.
access_log_format = (
    '%(h)s client=%({x-forwarded-for}i)s "%(r)s" %(s)s %(B)s %(M)sms rid=%({x-request-id}i)s "%(a)s"'
)
# Query secrets never reach a log line: Stripe.js returns the shopper to
# /order/<id>/return?payment_intent=pi_...&payment_intent_client_secret=pi_..._secret_...&redirect_status=...
# and a client secret must not be logged. This logger writes the request line (%(r)s, %(q)s) and the error
# log's "Error handling request <uri>" with such values replaced by [redacted] (core/redact.py).
logger_class = "core.gunicorn_logging.RedactingLogger"
capture_output = False

# --- Control socket -------------------------------------------------------------------------------------
# Gunicorn >= 25 opens a control socket under $HOME by default; two instances on one machine (or a read-only
# home in a container) would clash, so it is only opened where asked for.
_control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", "").strip()
if _control_socket:
    control_socket = _control_socket
else:
    control_socket_disable = True

proc_name = "shop"
# Not preloaded: each worker imports the app itself, so that SIGHUP (`systemctl reload shop`, after a
# deploy) replaces the workers gracefully with ones running the new code.
preload_app = False
