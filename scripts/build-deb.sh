#!/bin/sh
# `make deb`: the Debian package of an already built binary.
#   scripts/build-deb.sh [BIN [OUTDIR]]      (defaults: build/smsrules, build/deb)
# Stages the package's tree under OUTDIR/root and writes
# OUTDIR/smsrules_VERSION_ARCH.deb with `dpkg-deb --build --root-owner-group`
# (no fakeroot, no debian/ source tree: the binary is made by the Makefile).
# The files it ships come from packaging/deb/ (units, maintainer scripts,
# conffiles, the secrets file) and the repository (quickstart rules, docs,
# examples). Depends: the Debian packages of the shared libraries the binary
# links (dpkg-shlibdeps, which reads them from the installed -dev packages'
# shlibs/symbols files), plus adduser for postinst.
# A man page, when the tree has one (docs/smsrules.1), goes to
# /usr/share/man/man1/smsrules.1.gz.
# Prints the path of the package on its last line.
set -eu

BIN=${1:-build/smsrules}
OUT=${2:-build/deb}
PKG=packaging/deb

for tool in dpkg-deb dpkg-shlibdeps dpkg-architecture; do
    command -v "$tool" >/dev/null || { echo "build-deb: $tool is missing (apt-get install dpkg-dev)" >&2; exit 1; }
done
[ -x "$BIN" ] || { echo "build-deb: no binary at $BIN (run make build first)" >&2; exit 1; }

VERSION=$(sed -n 's/^#define SR_VERSION "\(.*\)"$/\1/p' src/daemon/app.h)
[ -n "$VERSION" ] || { echo "build-deb: no SR_VERSION in src/daemon/app.h" >&2; exit 1; }
DEB_VERSION="$VERSION-1"
ARCH=$(dpkg-architecture -qDEB_HOST_ARCH)

ROOT="$OUT/root"
rm -rf "$ROOT" "$OUT/shlibs"
mkdir -p "$ROOT/DEBIAN" "$ROOT/usr/bin" "$ROOT/etc/smsrules" "$ROOT/lib/systemd/system" \
    "$ROOT/usr/share/doc/smsrules/examples"

# The binary, without its debug information (a tenth of the size).
install -m 0755 "$BIN" "$ROOT/usr/bin/smsrules"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$ROOT/usr/bin/smsrules"

# Configuration: the quickstart rules `make run` uses, and the secrets file (0640; postinst gives it
# the smsrules group). Both are conffiles: an upgrade never overwrites the admin's edits.
install -m 0644 examples/quickstart/rules.lua "$ROOT/etc/smsrules/rules.lua"
install -m 0640 "$PKG/smsrules.env" "$ROOT/etc/smsrules/smsrules.env"
install -m 0644 "$PKG/smsrules.service" "$PKG/smsrules-mock-provider.service" "$ROOT/lib/systemd/system/"

# Docs: the manual, operations, the license, every example rule set.
install -m 0644 README.md "$ROOT/usr/share/doc/smsrules/README.md"
mkdir -p "$ROOT/usr/share/doc/smsrules/docs"
install -m 0644 docs/*.md "$ROOT/usr/share/doc/smsrules/docs/"
install -m 0644 LICENSE "$ROOT/usr/share/doc/smsrules/copyright"
for d in examples/*/; do
    name=$(basename "$d")
    mkdir -p "$ROOT/usr/share/doc/smsrules/examples/$name"
    find "$d" -maxdepth 1 -type f -exec install -m 0644 {} "$ROOT/usr/share/doc/smsrules/examples/$name/" \;
done
if [ -d contrib ]; then
    cp -r contrib "$ROOT/usr/share/doc/smsrules/contrib"
    find "$ROOT/usr/share/doc/smsrules/contrib" -type f -exec chmod 0644 {} +
fi
if [ -f docs/smsrules.1 ]; then
    mkdir -p "$ROOT/usr/share/man/man1"
    gzip -9n <docs/smsrules.1 >"$ROOT/usr/share/man/man1/smsrules.1.gz"
    chmod 0644 "$ROOT/usr/share/man/man1/smsrules.1.gz"
fi

install -m 0644 "$PKG/conffiles" "$ROOT/DEBIAN/conffiles"
install -m 0755 "$PKG/postinst" "$PKG/prerm" "$PKG/postrm" "$ROOT/DEBIAN/"

# Depends. dpkg-shlibdeps wants a debian/control to read: a minimal one in a scratch folder.
mkdir -p "$OUT/shlibs/debian"
printf 'Source: smsrules\n\nPackage: smsrules\nArchitecture: any\n' >"$OUT/shlibs/debian/control"
abs_bin=$(cd "$ROOT/usr/bin" && pwd)/smsrules
SHLIBS=$(cd "$OUT/shlibs" && dpkg-shlibdeps -O -e"$abs_bin" 2>shlibdeps.log | sed -n 's/^shlibs:Depends=//p')
[ -n "$SHLIBS" ] || { echo "build-deb: dpkg-shlibdeps found no dependencies:" >&2; cat "$OUT/shlibs/shlibdeps.log" >&2; exit 1; }

SIZE=$(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)
cat >"$ROOT/DEBIAN/control" <<EOF
Package: smsrules
Version: $DEB_VERSION
Architecture: $ARCH
Maintainer: smsrules developers <smsrules@localhost>
Installed-Size: $SIZE
Depends: $SHLIBS, adduser
Section: net
Priority: optional
Description: Lua-scriptable SMS rules engine
 smsrules sends, routes and answers SMS by rules written in Lua: templated
 notifications and one-time codes from one HTTP call, provider fallback and
 least-cost routing, auto-replies to inbound SMS (STOP, HELP, keywords),
 delivery reports from the providers' webhooks. Every accepted message is on
 disk (LMDB) before it is acknowledged.
 .
 This package runs it as the systemd service smsrules.service with the
 quickstart rules in /etc/smsrules/rules.lua, and ships a mock provider as
 smsrules-mock-provider.service for trials.
EOF

DEB="$OUT/smsrules_${DEB_VERSION}_$ARCH.deb"
dpkg-deb --build --root-owner-group -Zxz "$ROOT" "$DEB" >/dev/null
echo "$DEB"
