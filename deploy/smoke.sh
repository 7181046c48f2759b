#!/usr/bin/env bash
# Loopback production test of the files in deploy/: the shop with its production settings, served by gunicorn
# (deploy/gunicorn.conf.py) behind Debian's nginx (deploy/nginx.conf, changed only in its paths and ports),
# on a fresh PostgreSQL database; every check goes through nginx on 127.0.0.1.
#
#   bash deploy/smoke.sh            # from anywhere; CI runs it as root
#
# Environment (all optional):
#   PYTHON              python with the requirements installed      (default: .venv/bin/python)
#   SMOKE_PG_ADMIN_URL  a PostgreSQL URL allowed to create databases (default: postgres://postgres@127.0.0.1:5432/postgres)
#   SMOKE_DB            the throw-away database's name               (default: shop_smoke; dropped at the end)
#   SMOKE_KEEP_LOGS     a folder to copy gunicorn's and nginx's logs into
#
# Prints PASS/FAIL per check and exits non-zero if any failed. gunicorn and nginx are stopped and the database
# dropped whatever happens (trap).

set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-.venv/bin/python}"
PG_ADMIN_URL="${SMOKE_PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
DB_NAME="${SMOKE_DB:-shop_smoke}"
START_TS=$(date +%s)

FAILED=0
PASSED=0
pass() { echo "PASS: $*"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL: $*"; FAILED=$((FAILED + 1)); }
die() { echo "FAIL: $*"; FAILED=$((FAILED + 1)); exit 1; }  # the EXIT trap cleans up and reports
note() { echo "----- $*"; }

if [[ ! -x "$PYTHON" ]] && ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "FAIL: python not found: $PYTHON (set PYTHON)"
    exit 1
fi
[[ "$DB_NAME" =~ ^[a-z_][a-z0-9_]*$ ]] || { echo "FAIL: SMOKE_DB must be a plain lower-case identifier"; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/shop-smoke.XXXXXX")"
GUNICORN_PID=""
NGINX_PID=""
DB_CREATED=0

# --- SQL through psycopg (installed with the app), so psql is not needed ------------------------------------
admin_sql() {  # admin_sql "STATEMENT"   (autocommit, on the admin database)
    "$PYTHON" - "$PG_ADMIN_URL" "$1" <<'PY'
import sys
import psycopg
with psycopg.connect(sys.argv[1], autocommit=True, connect_timeout=5) as conn:
    conn.execute(sys.argv[2])
PY
}

cleanup() {
    local rc=$?
    set +e
    note "cleanup"
    if [[ -n "$NGINX_PID" ]] && kill -0 "$NGINX_PID" 2>/dev/null; then
        kill -QUIT "$NGINX_PID" 2>/dev/null  # graceful shutdown
        for _ in $(seq 50); do kill -0 "$NGINX_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$NGINX_PID" 2>/dev/null
        wait "$NGINX_PID" 2>/dev/null
        echo "nginx stopped"
    fi
    if [[ -n "$GUNICORN_PID" ]] && kill -0 "$GUNICORN_PID" 2>/dev/null; then
        kill -TERM "$GUNICORN_PID" 2>/dev/null  # graceful: in-flight requests finish
        for _ in $(seq 150); do kill -0 "$GUNICORN_PID" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$GUNICORN_PID" 2>/dev/null
        wait "$GUNICORN_PID" 2>/dev/null
        echo "gunicorn stopped"
    fi
    if [[ "$DB_CREATED" == 1 ]]; then
        if admin_sql "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)"; then
            echo "database $DB_NAME dropped"
        else
            echo "FAIL: could not drop database $DB_NAME"
            FAILED=$((FAILED + 1))
        fi
    fi
    if [[ -n "${SMOKE_KEEP_LOGS:-}" ]]; then
        mkdir -p "$SMOKE_KEEP_LOGS" && cp "$WORK"/*.log "$SMOKE_KEEP_LOGS"/ 2>/dev/null
    fi
    if [[ "$FAILED" -gt 0 || "$rc" -ne 0 ]]; then
        for log in gunicorn.log nginx-error.log; do
            [[ -s "$WORK/$log" ]] && { echo "----- last lines of $log"; tail -n 40 "$WORK/$log"; }
        done
    fi
    rm -rf "$WORK"
    echo "smoke: $PASSED passed, $FAILED failed in $(( $(date +%s) - START_TS ))s"
    if [[ "$FAILED" -gt 0 ]]; then exit 1; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- nginx (Debian's package) -----------------------------------------------------------------------------
if ! command -v nginx >/dev/null 2>&1 && [[ ! -x /usr/sbin/nginx ]]; then
    note "installing nginx-light with apt-get"
    if [[ "$(id -u)" -ne 0 ]]; then die "nginx is missing and installing it needs root"; fi
    export DEBIAN_FRONTEND=noninteractive
    (apt-get update -qq && apt-get install -y -qq --no-install-recommends nginx-light) >"$WORK/apt.log" 2>&1 \
        || { tail -n 20 "$WORK/apt.log"; die "apt-get install nginx-light"; }
    # The package starts a system nginx on port 80 where systemd runs; this test needs none of it.
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet nginx 2>/dev/null; then
        systemctl stop nginx || true
    fi
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
MIME_TYPES=/etc/nginx/mime.types
[[ -f "$MIME_TYPES" ]] || die "$MIME_TYPES not found (nginx-common)"

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
APP_PORT="${SMOKE_APP_PORT:-$(free_port)}"
NGINX_PORT="${SMOKE_NGINX_PORT:-$(free_port)}"
while [[ "$NGINX_PORT" == "$APP_PORT" ]]; do NGINX_PORT="$(free_port)"; done
BASE="http://127.0.0.1:$NGINX_PORT"

# --- Production settings (DEBUG unset; no .env read) -------------------------------------------------------
unset DEBUG debug secret_key allowed_hosts STRIPE_API_BASE STRIPE_DEMO_MODE STRIPE_SECRET_KEY \
    STRIPE_PUBLISHABLE_KEY STRIPE_WEBHOOK_SECRET 2>/dev/null || true
export ENV_FILE="$WORK/no.env"  # a developer's .env must not leak into a production test
export DJANGO_SETTINGS_MODULE=core.settings
export PYTHONUNBUFFERED=1
SECRET_KEY="$("$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(50))')"
export SECRET_KEY
export ALLOWED_HOSTS=127.0.0.1,localhost
export CSRF_TRUSTED_ORIGINS="http://127.0.0.1:$NGINX_PORT,http://localhost:$NGINX_PORT"
export SITE_URL="http://127.0.0.1:$NGINX_PORT"  # required with DEBUG off (check shop.E010)
export DATABASE_URL="${PG_ADMIN_URL%/*}/$DB_NAME"  # default: postgres://postgres@127.0.0.1:5432/shop_smoke
export SECURE_SSL_REDIRECT=0  # no TLS on loopback; check --deploy below runs with the production value
export STRIPE_CURRENCIES=usd,eur
export STRIPE_USD_SECRET_KEY=sk_test_smoke_usd_0000000000000000
export STRIPE_USD_PUBLISHABLE_KEY=pk_test_smoke_usd_0000000000000000
export STRIPE_USD_WEBHOOK_SECRET=whsec_smoke_usd_00000000000000000000
export STRIPE_EUR_SECRET_KEY=sk_test_smoke_eur_0000000000000000
export STRIPE_EUR_PUBLISHABLE_KEY=pk_test_smoke_eur_0000000000000000
export STRIPE_EUR_WEBHOOK_SECRET=whsec_smoke_eur_00000000000000000000
# gunicorn: deploy/gunicorn.conf.py reads these
export GUNICORN_BIND="127.0.0.1:$APP_PORT"
export FORWARDED_ALLOW_IPS=127.0.0.1
export WEB_CONCURRENCY=2
export GUNICORN_THREADS=4
# The app's rate limit of the cart endpoints, small so that the check below is quick (default 120/m).
export RATELIMIT_CART_PER_ADDRESS=5/m

manage() { "$PYTHON" manage.py "$@"; }

# --- Database, migrations, static files, demo data ---------------------------------------------------------
note "database $DB_NAME"
admin_sql "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" || die "PostgreSQL not reachable at $PG_ADMIN_URL"
admin_sql "CREATE DATABASE $DB_NAME" || die "create database $DB_NAME"
DB_CREATED=1
pass "fresh database $DB_NAME created"

manage migrate --noinput >"$WORK/migrate.log" 2>&1 \
    && pass "migrate" || { tail -n 30 "$WORK/migrate.log"; die "migrate"; }
manage collectstatic --noinput --clear >"$WORK/collectstatic.log" 2>&1 \
    && pass "collectstatic ($(tail -n 1 "$WORK/collectstatic.log"))" \
    || { tail -n 30 "$WORK/collectstatic.log"; die "collectstatic"; }

if manage help seed_demo >/dev/null 2>&1; then
    manage seed_demo >"$WORK/seed.log" 2>&1 && pass "seed_demo" || { tail -n 30 "$WORK/seed.log"; fail "seed_demo"; }
else
    echo "NOTE: manage.py seed_demo does not exist; creating one item with manage.py shell instead"
    manage shell -c "
from djmoney.money import Money
from catalog.models import Item
Item.objects.create(name='Smoke test item', description='Created by deploy/smoke.sh', price=Money('12.50', 'USD'))
" && pass "item created (seed_demo missing)" || fail "item creation"
fi
ITEM_ID="$(manage shell -c "
from catalog.models import Item
print(Item.objects.order_by('pk').values_list('pk', flat=True).first() or '')
" 2>"$WORK/item.log" | tail -n 1)"
[[ "$ITEM_ID" =~ ^[0-9]+$ ]] && pass "first item id $ITEM_ID" || { cat "$WORK/item.log"; fail "no item in the database"; }

# The reconciliation timer's command (deploy/systemd/shop-reconcile.service) exists and takes --older-than.
if manage help reconcile_payments 2>&1 | grep -q -- '--older-than'; then
    pass "manage.py reconcile_payments --older-than (the timer's command) exists"
else
    fail "manage.py reconcile_payments with --older-than, run by shop-reconcile.timer, is missing"
fi

# The timer's housekeeping (the same unit's ExecStartPre lines): expired sessions and cache entries go.
if manage clearsessions >"$WORK/clearsessions.log" 2>&1 && manage clear_expired_cache >"$WORK/clearcache.log" 2>&1 \
    && grep -q "expired entries deleted" "$WORK/clearcache.log"; then
    pass "manage.py clearsessions and clear_expired_cache (the timer's housekeeping) run"
else
    cat "$WORK/clearsessions.log" "$WORK/clearcache.log"; fail "manage.py clearsessions / clear_expired_cache"
fi

# --- gunicorn ---------------------------------------------------------------------------------------------
note "gunicorn on 127.0.0.1:$APP_PORT"
"$PYTHON" -m gunicorn -c deploy/gunicorn.conf.py core.wsgi >"$WORK/gunicorn.log" 2>&1 &
GUNICORN_PID=$!
ready=0
for _ in $(seq 100); do
    kill -0 "$GUNICORN_PID" 2>/dev/null || break
    if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$APP_PORT/healthz"; then ready=1; break; fi
    sleep 0.2
done
[[ "$ready" == 1 ]] && pass "gunicorn started (pid $GUNICORN_PID)" || die "gunicorn did not start"

# --- nginx: deploy/nginx.conf with only its paths and ports changed -----------------------------------------
note "nginx on 127.0.0.1:$NGINX_PORT"
mkdir -p "$WORK/nginx"
SITE="$WORK/nginx/shop.conf"
IPV6_LISTEN="listen [::1]:$NGINX_PORT;"
grep -qE '^0{31}1 .* lo$' /proc/net/if_inet6 2>/dev/null || IPV6_LISTEN="# (no IPv6 loopback here)"
sed -e "s|server 127\.0\.0\.1:8000|server 127.0.0.1:$APP_PORT|" \
    -e "s|listen 80;|listen 127.0.0.1:$NGINX_PORT;|" \
    -e "s|listen \[::\]:80;|$IPV6_LISTEN|" \
    -e "s|alias /srv/shop/staticfiles/|alias $ROOT/staticfiles/|" \
    -e "s|access_log /var/log/nginx/access.log|access_log $WORK/nginx-access.log|" \
    deploy/nginx.conf >"$SITE"
changed="$(diff deploy/nginx.conf "$SITE" | grep -c '^>')"
if grep -q "127.0.0.1:$APP_PORT" "$SITE" && grep -q "listen 127.0.0.1:$NGINX_PORT;" "$SITE" \
    && grep -q "$ROOT/staticfiles/" "$SITE" && grep -q "access_log $WORK/nginx-access.log" "$SITE" \
    && [[ "$changed" -le 6 ]]; then
    pass "nginx site config = deploy/nginx.conf with $changed lines changed (ports, paths)"
else
    diff deploy/nginx.conf "$SITE"
    die "deploy/nginx.conf no longer has the upstream 127.0.0.1:8000 / listen 80 / /srv/shop/staticfiles/ / access_log the test rewrites"
fi
# The main file a Debian server's /etc/nginx/nginx.conf would be, with its paths in $WORK.
NGINX_USER=""
[[ "$(id -u)" -eq 0 ]] && NGINX_USER="user root;"  # workers must read the checkout's staticfiles/ wherever CI puts it
cat >"$WORK/nginx/nginx.conf" <<EOF
$NGINX_USER
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 256; }
http {
    include $MIME_TYPES;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    access_log $WORK/nginx-access.log;
    client_body_temp_path $WORK/nginx/client_body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    include $SITE;
}
EOF
"$NGINX" -t -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx-error.log" >"$WORK/nginx-t.log" 2>&1 \
    && pass "nginx -t" || { cat "$WORK/nginx-t.log"; die "nginx -t"; }
"$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx-error.log" >>"$WORK/nginx-error.log" 2>&1 &
NGINX_PID=$!
ready=0
for _ in $(seq 50); do
    kill -0 "$NGINX_PID" 2>/dev/null || break
    if curl -s -o /dev/null --max-time 2 "$BASE/favicon.ico"; then ready=1; break; fi
    sleep 0.1
done
[[ "$ready" == 1 ]] && pass "nginx started (pid $NGINX_PID)" || die "nginx did not start"

# --- Checks through nginx -----------------------------------------------------------------------------------
note "checks through nginx at $BASE"
# fetch PATH [curl args...] -> sets STATUS, HEADERS (file), BODY (file)
HEADERS="$WORK/headers"
BODY="$WORK/body"
fetch() {
    local path="$1"; shift
    STATUS="$(curl -s -o "$BODY" -D "$HEADERS" -w '%{http_code}' --max-time 20 "$@" "$BASE$path")" || STATUS="000"
}
header() { grep -i "^$1:" "$HEADERS" | head -n 1 | cut -d: -f2- | tr -d '\r' | sed 's/^ *//'; }
expect_status() {  # expect_status CODE LABEL PATH [curl args...]
    local code="$1" label="$2"; shift 2
    fetch "$@"
    [[ "$STATUS" == "$code" ]] && pass "$label -> $STATUS" || fail "$label -> $STATUS (expected $code)"
}

expect_status 200 "GET /healthz" /healthz
expect_status 200 "GET /" /
if [[ "$STATUS" == 200 ]]; then
    csp="$(header Content-Security-Policy)"; xfo="$(header X-Frame-Options)"; nosniff="$(header X-Content-Type-Options)"
    if [[ "$csp" == *"default-src 'self'"* && "$xfo" == "DENY" && "$nosniff" == "nosniff" ]]; then
        pass "security headers on / (Content-Security-Policy, X-Frame-Options: DENY, nosniff)"
    else
        fail "security headers on / (CSP='$csp' X-Frame-Options='$xfo' X-Content-Type-Options='$nosniff')"
    fi
fi
if [[ "$ITEM_ID" =~ ^[0-9]+$ ]]; then
    expect_status 200 "GET /item/$ITEM_ID" "/item/$ITEM_ID"
else
    fail "GET /item/<id>: no item"
fi
expect_status 200 "GET /admin/login/" /admin/login/

# A static file under its hashed name (from collectstatic's manifest): long cache, served by nginx from disk.
STATIC_NAME="$("$PYTHON" - "$ROOT/staticfiles/staticfiles.json" <<'PY'
import json, sys
paths = json.load(open(sys.argv[1]))["paths"]
name = paths.get("css/shop.css") or next((v for k, v in sorted(paths.items()) if k.endswith(".css")), "")
print(name)
PY
)"
if [[ -n "$STATIC_NAME" ]]; then
    fetch "/static/$STATIC_NAME"
    cache="$(header Cache-Control)"
    max_age="$(sed -n 's/.*max-age=\([0-9]*\).*/\1/p' <<<"$cache")"
    if [[ "$STATUS" == 200 && "${max_age:-0}" -ge 31536000 && "$cache" == *immutable* ]] \
        && cmp -s "$BODY" "$ROOT/staticfiles/$STATIC_NAME"; then
        pass "GET /static/$STATIC_NAME -> 200, Cache-Control: $cache"
    else
        fail "GET /static/$STATIC_NAME -> $STATUS, Cache-Control: '$cache' (expected max-age >= 31536000, immutable, the file's bytes)"
    fi
    fetch "/static/$STATIC_NAME" -H 'Accept-Encoding: gzip'
    [[ "$STATUS" == 200 && "$(header Content-Encoding)" == gzip ]] \
        && pass "static file served precompressed (gzip_static)" \
        || fail "static file with Accept-Encoding: gzip -> $STATUS, Content-Encoding '$(header Content-Encoding)'"
else
    fail "no CSS file in staticfiles/staticfiles.json"
fi

# Webhook: an event signed with the USD webhook secret as Stripe signs it, passed through nginx to the app.
SIGNED="$("$PYTHON" - <<'PY'
import hashlib, hmac, json, os, time
t = int(time.time())
body = json.dumps({
    "id": "evt_smoke_1", "object": "event", "type": "payment_intent.created", "created": t,
    "livemode": False, "api_version": "2026-10-28.endive",
    "data": {"object": {"id": "pi_smoke", "object": "payment_intent"}},
}, separators=(",", ":"))
secret = os.environ["STRIPE_USD_WEBHOOK_SECRET"]
sig = hmac.new(secret.encode(), f"{t}.{body}".encode(), hashlib.sha256).hexdigest()
print(f"t={t},v1={sig}")
print(body)
PY
)"
SIG_HEADER="$(sed -n 1p <<<"$SIGNED")"
printf '%s' "$(sed -n 2p <<<"$SIGNED")" >"$WORK/event.json"
event_rows() {
    "$PYTHON" - "$DATABASE_URL" <<'PY'
import sys
import psycopg
with psycopg.connect(sys.argv[1], connect_timeout=5) as conn:
    row = conn.execute(
        "SELECT count(*) FROM payments_stripeevent t WHERE row_to_json(t)::text LIKE '%evt_smoke_1%'"
    ).fetchone()
    print(row[0])
PY
}
expect_status 200 "signed webhook POST /webhooks/stripe/usd/" /webhooks/stripe/usd/ \
    -X POST -H 'Content-Type: application/json' -H "Stripe-Signature: $SIG_HEADER" --data-binary "@$WORK/event.json"
rows="$(event_rows 2>"$WORK/rows.log")"
[[ "$rows" =~ ^[0-9]+$ && "$rows" -ge 1 ]] && pass "event evt_smoke_1 recorded in payments_stripeevent ($rows row)" \
    || { cat "$WORK/rows.log"; fail "event evt_smoke_1 not in payments_stripeevent (got '$rows')"; }
expect_status 400 "unsigned webhook POST /webhooks/stripe/usd/" /webhooks/stripe/usd/ \
    -X POST -H 'Content-Type: application/json' --data-binary "@$WORK/event.json"
expect_status 400 "webhook signed with the wrong secret" /webhooks/stripe/usd/ \
    -X POST -H 'Content-Type: application/json' \
    -H "Stripe-Signature: t=$(date +%s),v1=$(printf '%064d' 0)" --data-binary "@$WORK/event.json"

# Access logs never contain a client secret: Stripe.js returns the shopper to this kind of URL.
CLIENT_SECRET="pi_3SmokeTest000000000_secret_SmokeSecret000000"
RETURN_PATH="/order/00000000-0000-4000-8000-000000000000/return"
RETURN_QUERY="payment_intent=pi_3SmokeTest000000000&payment_intent_client_secret=$CLIENT_SECRET&redirect_status=succeeded"
expect_status 404 "GET $RETURN_PATH?...client_secret... (an unknown order)" "$RETURN_PATH?$RETURN_QUERY" \
    -H "Referer: $BASE$RETURN_PATH?$RETURN_QUERY"
sleep 0.5  # both access logs are written after the response
if grep -q "$CLIENT_SECRET" "$WORK/gunicorn.log" "$WORK/nginx-access.log"; then
    fail "a client secret is in an access log: $(grep -l "$CLIENT_SECRET" "$WORK/gunicorn.log" "$WORK/nginx-access.log" | xargs)"
elif grep -q "payment_intent_client_secret=\[redacted\]&redirect_status=succeeded" "$WORK/gunicorn.log" \
    && grep -q "\"GET $RETURN_PATH HTTP/1.1\" 404" "$WORK/nginx-access.log"; then
    pass "no client secret in gunicorn's or nginx's access log (gunicorn redacts it, nginx logs the path only)"
else
    fail "the return URL's request is missing from an access log"
fi

# Static files come from disk through nginx: none of those requests reached gunicorn.
if grep -q '"GET /static/' "$WORK/gunicorn.log"; then
    fail "static files were proxied to gunicorn instead of served by nginx"
else
    pass "static files served by nginx itself (no /static/ request in gunicorn's log)"
fi

# Access log: gunicorn writes each request's path, status and duration to stdout.
if grep -qE '"GET /healthz HTTP/1\.[01]" 200 [0-9-]+ [0-9]+ms' "$WORK/gunicorn.log"; then
    pass "gunicorn access log has path, status and duration"
else
    fail "gunicorn access log has no line like '\"GET /healthz HTTP/1.1\" 200 <bytes> <n>ms'"
fi

# --- Limits: the app's rate limits and admin lockout through nginx, then nginx's own limit_req -----------------
# The app counts the address nginx saw: a client's own X-Forwarded-For is overwritten, so changing it does not
# buy a new budget. The requests fail CSRF (403) but count: the 6th within the minute is refused first.
codes=""
for i in 1 2 3 4 5 6; do
    fetch /order/new/ -X POST -H 'Accept: application/json' -H "X-Forwarded-For: 10.0.0.$i" -d "item_id=$ITEM_ID"
    codes="$codes $STATUS"
done
if [[ "$codes" == " 403 403 403 403 403 429" ]] && grep -q '"rate_limited"' "$BODY" && [[ -n "$(header Retry-After)" ]]; then
    pass "app rate limit through nginx: 5 requests a minute per address, then 429 rate_limited with Retry-After"
else
    fail "app rate limit through nginx: statuses$codes, last body $(head -c 200 "$BODY")"
fi

# The admin login: after 5 wrong passwords for one username from one address, django-axes locks that username out
# there (429, Retry-After); a 6th try of the username within the minute is the app's per-username rate limit.
JAR="$WORK/cookies.txt"
fetch /admin/login/ -c "$JAR"
TOKEN="$(grep -o 'name="csrfmiddlewaretoken" value="[^"]*"' "$BODY" | head -n 1 | sed 's/.*value="//; s/"$//')"
codes=""
for i in 1 2 3 4 5; do
    fetch /admin/login/ -b "$JAR" -c "$JAR" -X POST -H "Referer: $BASE/admin/login/" -H 'Accept: text/html' \
        --data-urlencode "csrfmiddlewaretoken=$TOKEN" --data-urlencode "username=admin" \
        --data-urlencode "password=wrong-$i" --data-urlencode "next=/admin/"
    codes="$codes $STATUS"
done
if [[ "$codes" == " 200 200 200 200 429" ]] && grep -q "Too many failed logins" "$BODY" \
    && [[ "$(header Retry-After)" -ge 60 ]]; then
    pass "admin login lockout after 5 failures: 429, Retry-After $(header Retry-After)s, the configured message"
else
    fail "admin login lockout: statuses$codes, Retry-After '$(header Retry-After)'"
fi

# nginx itself: a flood of the login page is cut at its burst (its own 429 page, not the app's).
nginx_429=0
for i in $(seq 25); do
    fetch /admin/login/
    [[ "$STATUS" == 429 ]] && grep -q "429 Too Many Requests" "$BODY" && nginx_429=$((nginx_429 + 1))
done
[[ "$nginx_429" -ge 10 ]] && pass "nginx limit_req on /admin/login/: $nginx_429 of 25 flooding requests refused with 429" \
    || fail "nginx limit_req on /admin/login/: only $nginx_429 of 25 flooding requests refused"
nginx_429=0
for i in $(seq 40); do
    fetch /order/put/00000000-0000-4000-8000-000000000000 -X POST -H 'Accept: application/json'
    [[ "$STATUS" == 429 ]] && grep -q "429 Too Many Requests" "$BODY" && nginx_429=$((nginx_429 + 1))
done
[[ "$nginx_429" -ge 10 ]] && pass "nginx limit_req on the payment endpoints: $nginx_429 of 40 flooding requests refused with 429" \
    || fail "nginx limit_req on the payment endpoints: only $nginx_429 of 40 flooding requests refused"
# Promotion code guesses: at most rate + burst (15) get through nginx from one address in a minute.
nginx_429=0
for i in $(seq 30); do
    fetch /order/00000000-0000-4000-8000-000000000000/promo -X POST -H 'Accept: application/json' -d "code=GUESS$i"
    [[ "$STATUS" == 429 ]] && grep -q "429 Too Many Requests" "$BODY" && nginx_429=$((nginx_429 + 1))
done
[[ "$nginx_429" -ge 15 ]] && pass "nginx limit_req on promotion codes: $nginx_429 of 30 guesses refused with 429" \
    || fail "nginx limit_req on promotion codes: only $nginx_429 of 30 guesses refused"

# --- Django's deployment checklist, with the production values of SECURE_SSL_REDIRECT and SITE_URL ------------
SECURE_SSL_REDIRECT=1 SITE_URL=https://shop.example.com manage check --deploy --fail-level WARNING \
    >"$WORK/check.log" 2>&1 \
    && pass "manage.py check --deploy --fail-level WARNING (SECURE_SSL_REDIRECT=1, an https SITE_URL)" \
    || { cat "$WORK/check.log"; fail "manage.py check --deploy --fail-level WARNING"; }
# Without SITE_URL, production settings refuse to load (links handed to Stripe would come from the Host
# header): manage.py, and gunicorn, which imports the same settings, do not start.
if SITE_URL= manage check >"$WORK/check-site-url.log" 2>&1; then
    fail "manage.py check passes without SITE_URL (expected the settings to refuse to load)"
elif grep -q "SITE_URL is not set" "$WORK/check-site-url.log"; then
    pass "production settings without SITE_URL refuse to load (manage.py says so)"
else
    cat "$WORK/check-site-url.log"; fail "manage.py check without SITE_URL failed, but not for SITE_URL"
fi
if SITE_URL= timeout 30 "$PYTHON" -m gunicorn -c deploy/gunicorn.conf.py --bind "127.0.0.1:$(( NGINX_PORT + 7 ))" \
        core.wsgi >"$WORK/gunicorn-site-url.log" 2>&1; then
    fail "gunicorn ran without SITE_URL"
elif grep -q "SITE_URL is not set" "$WORK/gunicorn-site-url.log"; then
    pass "gunicorn does not start without SITE_URL"
else
    tail -20 "$WORK/gunicorn-site-url.log"; fail "gunicorn without SITE_URL stopped, but not for SITE_URL"
fi

note "done"
