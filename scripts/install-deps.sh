#!/bin/sh
# Installs the Debian packages smsrules needs to build, test and benchmark.
# As root: apt-get update, then apt-get install -y of what is missing.
# Otherwise: prints the exact command to run and exits 1.
set -eu

# libssl-dev: libcrypto (OpenSSL) for the digests, HMAC, base64 and random
# bytes of src/codec/crypto.c. clang and libclang-rt-14-dev (libFuzzer and the sanitizer runtimes, only
# recommended by clang) for `make fuzz`, which .ci/run runs. chromium: the
# headless browser that loads the simulation report in
# tests/e2e/test_sim_report_browser.py and drives the console's browser tests.
# clang-format: scripts/check-format.sh (in make test) and make fmt.
PACKAGES="make build-essential pkg-config liblua5.4-dev libcurl4-openssl-dev libuv1-dev
liblmdb-dev lua-cjson-dev libssl-dev node-llhttp python3 curl wrk clang libclang-rt-14-dev
g++ libphonenumber-dev libprotobuf-dev libicu-dev python3-phonenumbers chromium
clang-format"

# dpkg-dev (dpkg-shlibdeps) builds `make deb`; systemd brings systemd-analyze,
# which tests/e2e/test_package.py runs on the units; python3-yaml reads
# contrib/'s alert rules in tests/e2e/test_contrib.py.
PACKAGES="$PACKAGES dpkg-dev systemd python3-yaml"

# nats-server: the JetStream servers of cluster mode; the e2e tests start a
# loopback cluster of them (tests/e2e/natscluster.py). libnats-dev: the C
# client (JetStream, key-value, libuv adapter) the cluster store is built on.
PACKAGES="$PACKAGES nats-server libnats-dev"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    exit 0
fi

echo "install-deps: missing Debian packages:$missing" >&2
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: run as root:" >&2
    echo "  apt-get update && apt-get install -y$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
# shellcheck disable=SC2086
apt-get install -y --no-install-recommends $missing
