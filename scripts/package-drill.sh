#!/bin/sh
# The package on a clean Debian 12 under a real systemd: the run that
# docs/operations.md reports, as a script (not in `make test`: it needs root,
# the network and a few minutes).
#   sudo scripts/package-drill.sh [DEB [WORKDIR]]
# DEB defaults to build/deb/smsrules_*.deb (make deb); WORKDIR to a fresh
# folder under /tmp, removed at the end unless KEEP=1.
#
# 1. debootstrap a minimal bookworm (with systemd) and `apt-get install` the
#    package into it: apt resolves Depends from the Debian archive;
# 2. boot it with systemd-nspawn (its own network namespace: the unit runs
#    exactly as shipped, on 127.0.0.1:8080) and check, inside: the service
#    enabled and running as smsrules under its sandbox, /healthz, a message
#    through the mock provider unit, `systemctl reload` picking up a rules
#    change, `smsrules backup` beside the running service, `restore` refused
#    while it runs, then stop → restore → start, and a broken rules file
#    leaving the service failed (exit 1, not restarted).
# Prints one PASS/FAIL line per check; exits 1 when one failed.
# Needs: debootstrap, systemd-container (systemd-nspawn), util-linux (nsenter).
set -u

DEB=${1:-$(ls build/deb/smsrules_*.deb 2>/dev/null | tail -1)}
WORK=${2:-$(mktemp -d /tmp/smsrules-drill.XXXXXX)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
ROOT="$WORK/root"
failed=0

[ "$(id -u)" -eq 0 ] || { echo "package-drill: run as root" >&2; exit 2; }
[ -f "$DEB" ] || { echo "package-drill: no package (make deb)" >&2; exit 2; }
for tool in debootstrap systemd-nspawn nsenter; do
    command -v "$tool" >/dev/null || { echo "package-drill: $tool is missing (apt-get install debootstrap systemd-container)" >&2; exit 2; }
done

pass() { echo "PASS package-drill:$1"; }
fail() { echo "FAIL package-drill:$1: $2"; failed=1; }
# check NAME COMMAND...: PASS when the command succeeds.
check() {
    name=$1; shift
    if out=$("$@" 2>&1); then pass "$name"; else fail "$name" "$(echo "$out" | tail -3 | tr '\n' ' ')"; fi
}

nspawn_pid=""
cleanup() {
    if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
        kill -TERM "$nspawn_pid" 2>/dev/null
        wait "$nspawn_pid" 2>/dev/null
    fi
    [ "${KEEP:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

echo "package-drill: $DEB in $ROOT"
if ! debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,curl,procps bookworm "$ROOT" "$MIRROR" \
        >"$WORK/debootstrap.log" 2>&1; then
    fail debootstrap "$(tail -3 "$WORK/debootstrap.log" | tr '\n' ' ')"
    exit 1
fi
pass debootstrap
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
cp "$DEB" "$ROOT/tmp/smsrules.deb"
check apt-install chroot "$ROOT" sh -c \
    'apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q /tmp/smsrules.deb'
check system-user chroot "$ROOT" getent passwd smsrules
check env-file-mode sh -c "[ \"\$(chroot '$ROOT' stat -c '%U:%G %a' /etc/smsrules/smsrules.env)\" = 'root:smsrules 640' ]"
check enabled test -L "$ROOT/etc/systemd/system/multi-user.target.wants/smsrules.service"

systemd-nspawn -D "$ROOT" -b --register=no --keep-unit --private-network -M smsrules-drill \
    >"$WORK/boot.log" 2>&1 </dev/null &
nspawn_pid=$!
init=""
for _ in $(seq 1 100); do
    init=$(pgrep -P "$nspawn_pid" 2>/dev/null | head -1)
    [ -n "$init" ] && [ "$(cat /proc/"$init"/comm 2>/dev/null)" = systemd ] && break
    sleep 0.2
done
[ -n "$init" ] || { fail boot "$(tail -5 "$WORK/boot.log" | tr '\n' ' ')"; exit 1; }
inside() { nsenter -t "$init" -m -u -i -n -p "$@"; }
# Until systemd inside answers and has finished starting (running, or degraded: a unit failed).
state=""
for _ in $(seq 1 300); do
    state=$(inside systemctl is-system-running 2>/dev/null)
    case "$state" in running|degraded) break ;; esac
    sleep 0.2
done
case "$state" in
running|degraded) pass boot ;;
*) fail boot "systemd inside is '$state': $(tail -5 "$WORK/boot.log" | tr '\n' ' ')"; exit 1 ;;
esac

check service-active inside systemctl is-active smsrules
check runs-as-smsrules sh -c "[ \"\$(nsenter -t $init -m -u -i -n -p ps -o user= -C smsrules)\" = smsrules ]"
check healthz inside sh -c 'curl -sf http://127.0.0.1:8080/healthz | grep -q "\"status\":\"ok\""'
check mock-unit inside systemctl start smsrules-mock-provider
send='id=$(curl -sf -H "Authorization: Bearer demo-key" -d "{\"to\":\"+84912345678\",\"text\":\"drill\"}" http://127.0.0.1:8080/v1/messages | sed "s/.*\"id\":\"\([^\"]*\)\".*/\1/")
for i in $(seq 1 50); do curl -sf -H "Authorization: Bearer demo-key" http://127.0.0.1:8080/v1/messages/$id | grep -q "\"status\":\"sent\"" && exit 0; sleep 0.2; done; exit 1'
check message-sent inside sh -c "$send"
cp "$ROOT/etc/smsrules/rules.lua" "$WORK/rules.lua"
echo 'sms.template("drill_reload", "reloaded")' >>"$ROOT/etc/smsrules/rules.lua"
check reload inside sh -c 'systemctl reload smsrules && for i in $(seq 1 50); do journalctl -u smsrules -o cat | grep -q "\"msg\":\"rules reloaded\".*\"templates\":3" && exit 0; sleep 0.2; done; exit 1'
check backup-while-running inside smsrules backup --data /var/lib/smsrules /root/drill.mdb
check restore-refused-while-running inside sh -c 'smsrules restore --data /var/lib/smsrules /root/drill.mdb; [ $? -eq 2 ]'
check restore-stopped inside sh -c 'systemctl stop smsrules && smsrules restore --data /var/lib/smsrules /root/drill.mdb && systemctl start smsrules'
check restored-owner sh -c "[ \"\$(nsenter -t $init -m -u -i -n -p stat -c %U /var/lib/smsrules/data.mdb)\" = smsrules ]"
check healthz-after-restore inside sh -c 'for i in $(seq 1 50); do curl -sf http://127.0.0.1:8080/healthz >/dev/null && exit 0; sleep 0.2; done; exit 1'
echo 'this is not lua' >>"$ROOT/etc/smsrules/rules.lua"
inside systemctl restart smsrules >/dev/null 2>&1
check broken-rules-not-restarted inside sh -c 'sleep 5; [ "$(systemctl show -p ExecMainStatus --value smsrules)" = 1 ] && [ "$(systemctl is-active smsrules)" = failed ]'
cp "$WORK/rules.lua" "$ROOT/etc/smsrules/rules.lua"
check start-again inside sh -c 'systemctl start smsrules && systemctl is-active smsrules'
exposure=$(inside systemd-analyze security smsrules 2>/dev/null | sed -n 's/.*Overall exposure level for smsrules.service: \([0-9.]*\).*/\1/p')
check sandbox-exposure sh -c "[ -n '$exposure' ] && awk 'BEGIN{exit !($exposure <= 2.0)}'"
echo "package-drill: systemd-analyze security smsrules: $exposure"
inside systemctl poweroff >/dev/null 2>&1
wait "$nspawn_pid" 2>/dev/null
nspawn_pid=""
exit $failed
