#!/bin/sh
# A self-signed certificate for compose's `nginx` profile, made on its first start when no certificate is there
# (the nginx image runs /docker-entrypoint.d/*.sh before nginx starts; deploy/Dockerfile puts this file there).
#
# Yours instead: set TLS_CERTS_DIR in .env to a folder holding fullchain.pem and privkey.pem (README, "Going
# live"); this script then leaves them alone. The self-signed one lives in the `tls-certs` volume, so it stays
# the same across restarts; browsers warn about it (fine for trying the stack, not for shoppers).
#
#   TLS_CERTS_PATH        where nginx reads the certificate (default /etc/nginx/certs)
#   TLS_SELF_SIGNED_NAME  the host name it is made for (default: the host of SITE_URL, else localhost)
set -eu

dir="${TLS_CERTS_PATH:-/etc/nginx/certs}"
if [ -s "$dir/fullchain.pem" ] && [ -s "$dir/privkey.pem" ]; then
    echo "shop: TLS certificate found in $dir"
    exit 0
fi
host="$(printf '%s' "${SITE_URL:-}" | sed -e 's#^[A-Za-z]*://##' -e 's#[:/].*$##')"
name="${TLS_SELF_SIGNED_NAME:-${host:-localhost}}"
mkdir -p "$dir"
umask 077
openssl req -x509 -newkey rsa:2048 -sha256 -nodes -days 397 \
    -subj "/CN=$name" -addext "subjectAltName=DNS:$name" \
    -keyout "$dir/privkey.pem" -out "$dir/fullchain.pem" 2>/dev/null
chmod 644 "$dir/fullchain.pem"
echo "shop: no TLS certificate in $dir, made a self-signed one for $name (browsers will warn; see README, Going live)"
