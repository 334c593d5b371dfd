#!/bin/sh
# Installs the Debian packages consentgate needs to build, test and
# benchmark, when any is missing. Runs apt-get only as root; otherwise it
# prints the command to run. CG_PKGS="a b" installs those instead (the
# readers suite's tests/readers/deps.sh does).
PKGS="build-essential pkg-config libevent-dev libssl-dev libhttp-parser-dev
libjansson-dev libcmocka-dev zlib1g-dev libisal-dev libutf8proc-dev curl python3 openssl nginx-light
python3-gunicorn libpq-dev postgresql"
[ "${CG_BENCH:-}" = 1 ] && PKGS="$PKGS haproxy wrk gnuplot-nox strace libsimdjson-dev"
# make fuzz (CI runs it): clang and libFuzzer's runtime
[ "${CG_FUZZ:-}" = 1 ] && PKGS="$PKGS clang libclang-rt-14-dev"
# make valgrind and bench/soak.sh (both in CI)
PKGS="$PKGS valgrind wrk"
# tests/install (make test): groff renders the man pages; systemd-analyze
# checks the unit only where the systemd package already is
PKGS="$PKGS groff-base"
[ -n "${CG_PKGS:-}" ] && PKGS="$CG_PKGS"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "missing Debian packages:$missing" >&2
	echo "run: sudo apt-get install$missing" >&2
	exit 1
fi
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends $missing >/dev/null || {
	echo "apt-get install failed for:$missing" >&2
	exit 1
}
# Debian starts nginx on install; the tests start their own.
if command -v systemctl >/dev/null 2>&1; then systemctl stop nginx haproxy postgresql >/dev/null 2>&1; fi
pkill -x nginx >/dev/null 2>&1 || true
pkill -x haproxy >/dev/null 2>&1 || true
exit 0
