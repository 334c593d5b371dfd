#!/bin/sh
# run.sh: `make install DESTDIR=<tmp> PREFIX=/usr` lays out every file, and
# what it installs works: the binary runs, both man pages render without a
# warning and name every flag and setting the code has, the example
# configuration passes `serve --check`, systemd accepts the unit, and
# `make uninstall` removes every file again.
# Called by `make test-install` (and `make test`) from the repository root
# with BUILD=<build dir, as make knows it> (and SANITIZER when set).
# Prints one line per check, then "N passed, N failed".
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-build}
cd "$root" || exit 2
tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT
d=$tmp/root
passed=0
failed=0

ok() { echo "ok   $1"; passed=$((passed + 1)); }
fail() {
	echo "FAIL $1"
	[ -s "$tmp/why" ] && sed 's/^/    /' "$tmp/why"
	failed=$((failed + 1))
}
check() { # NAME COMMAND...: ok when COMMAND exits 0
	name=$1
	shift
	if "$@" >"$tmp/why" 2>&1; then ok "$name"; else fail "$name"; fi
}
silent() { # COMMAND...: exits 0, and prints nothing on stderr
	"$@" 2>"$tmp/err" >/dev/null
	rc=$?
	cat "$tmp/err"
	[ $rc = 0 ] && ! [ -s "$tmp/err" ]
}

# ---------------------------------------------------------------- install
if ! make --no-print-directory BUILD="$BUILD" SANITIZER="${SANITIZER:-}" \
	install DESTDIR="$d" PREFIX=/usr >"$tmp/why" 2>&1; then
	fail "make install DESTDIR=... PREFIX=/usr"
	echo "0 passed, 1 failed"
	exit 1
fi
ok "make install DESTDIR=... PREFIX=/usr"

# Exactly these files, with these modes: nothing missing, nothing extra.
cat >"$tmp/want" <<'EOF'
755 usr/bin/consentgate
644 usr/lib/systemd/system/consentgate.service
644 usr/share/consentgate/consent.sql
644 usr/share/doc/consentgate/LICENSE
644 usr/share/doc/consentgate/README.md
644 usr/share/doc/consentgate/examples/ai-training.json
644 usr/share/doc/consentgate/examples/consent-example.csv
644 usr/share/doc/consentgate/examples/consentgate.json
644 usr/share/man/man1/consentgate.1
644 usr/share/man/man5/consentgate-policy.5
EOF
layout() {
	(cd "$d" && find . -type f -printf '%m %P\n' | LC_ALL=C sort -k2) >"$tmp/got"
	diff -u "$tmp/want" "$tmp/got"
}
check "files laid out: $(wc -l <"$tmp/want") files, modes as expected" layout
check "the configuration directory etc/consentgate exists" test -d "$d/etc/consentgate"

bin=$d/usr/bin/consentgate
version() {
	"$bin" --version >"$tmp/version" || return 1
	head -n 1 "$tmp/version" |
		grep -E '^consentgate [0-9]+\.[0-9]+\.[0-9]+ \(commit [^)]+\)$' ||
		{ cat "$tmp/version"; return 1; }
	for lib in openssl libevent jansson zlib utf8proc libpq; do
		grep -q "^$lib [0-9]" "$tmp/version" ||
			{ echo "no $lib line"; cat "$tmp/version"; return 1; }
	done
}
check "installed binary runs --version (commit and six libraries)" version
check "LICENSE installed is the Apache License 2.0" \
	grep -q "Apache License" "$d/usr/share/doc/consentgate/LICENSE"

# ---------------------------------------------------------------- man pages
man1=$d/usr/share/man/man1/consentgate.1
man5=$d/usr/share/man/man5/consentgate-policy.5
for page in "$man1" "$man5"; do
	check "groff -man -ww -z $(basename "$page"): no warning" \
		silent groff -man -ww -z "$page"
	if command -v man >/dev/null 2>&1; then
		check "man --warnings -l $(basename "$page"): no warning" \
			silent env MANWIDTH=80 man --warnings -l "$page"
	else
		echo "skip man --warnings -l $(basename "$page") (man-db is not installed; groff checked it)"
	fi
done
groff -man -Tutf8 -P-cbou "$man1" 2>/dev/null >"$tmp/man1.txt"
groff -man -Tutf8 -P-cbou "$man5" 2>/dev/null >"$tmp/man5.txt"

# Every flag each command's --help names is in consentgate(1).
flags_documented() {
	missing=""
	for cmd in serve demo check test eval consent; do
		for f in $("$bin" "$cmd" --help 2>&1 |
			grep -oE -- '--[a-z][a-z-]*' | sort -u); do
			grep -qE -- "$f([^a-z-]|\$)" "$tmp/man1.txt" ||
				missing="$missing $cmd:$f"
		done
	done
	[ -z "$missing" ] || { echo "not in consentgate(1):$missing"; return 1; }
}
check "consentgate(1) names every flag of every command's --help" flags_documented

# Every setting proxy/config.c takes is in consentgate(1), and the example
# configuration takes none it does not know.
settings_documented() {
	missing=""
	for k in $(grep -oE '^ *\{"[a-z_]+", *offsetof' proxy/config.c |
		grep -oE '"[a-z_]+"' | tr -d '"'); do
		grep -qw -- "$k" "$tmp/man1.txt" || missing="$missing $k"
	done
	[ -z "$missing" ] || { echo "not in consentgate(1):$missing"; return 1; }
}
check "consentgate(1) names every setting of proxy/config.c" settings_documented

# Every key the rule-file loader takes is in consentgate-policy(5).
policy_documented() {
	missing=""
	for k in $(sed -n '/keys\[\] = {/,/};/p' policy/policy.c \
		policy/route_load.c policy/rule_load.c |
		grep -oE '"[a-z_]+"' | tr -d '"' | sort -u); do
		grep -qw -- "$k" "$tmp/man5.txt" || missing="$missing $k"
	done
	[ -z "$missing" ] || { echo "not in consentgate-policy(5):$missing"; return 1; }
}
check "consentgate-policy(5) names every key the rule-file loader takes" policy_documented

# ---------------------------------------------------------------- example configuration
ex=$d/usr/share/doc/consentgate/examples
config_ok() {
	"$bin" serve --config "$ex/consentgate.json" --check \
		--policy "$ex/ai-training.json" --consent "$ex/consent-example.csv" \
		--decision-log "$tmp/decisions.jsonl" \
		--listen 127.0.0.1:0 --admin 127.0.0.1:0 >"$tmp/out" 2>&1
	rc=$?
	cat "$tmp/out"
	[ $rc = 0 ] && grep -qx "configuration OK" "$tmp/out"
}
check "example configuration passes serve --check" config_ok
check "the example policy passes check" "$bin" check "$ex/ai-training.json"

# ---------------------------------------------------------------- systemd unit
unit=$d/usr/lib/systemd/system/consentgate.service
check "unit runs /usr/bin/consentgate with /etc/consentgate/consentgate.json" \
	grep -qx 'ExecStart=/usr/bin/consentgate serve --config /etc/consentgate/consentgate.json' "$unit"
check "unit reloads with SIGHUP" grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' "$unit"
check "unit has no placeholder left" sh -c "! grep -n '@[A-Z]*@' '$unit'"
if command -v systemd-analyze >/dev/null 2>&1; then
	# The unit as installed, but running the binary under DESTDIR (verify
	# checks that ExecStart exists) and finding the man pages there.
	mkdir -p "$tmp/unit"
	sed "s|^ExecStart=/usr/bin/|ExecStart=$d/usr/bin/|" "$unit" \
		>"$tmp/unit/consentgate.service"
	man_opt=--man=yes
	command -v man >/dev/null 2>&1 || man_opt=--man=no
	# verify prints what it ignores (an unknown key, a bad value) and still
	# exits 0: any output fails
	check "systemd-analyze verify: no error, no warning ($man_opt)" \
		silent env MANPATH="$d/usr/share/man" SYSTEMD_LOG_LEVEL=notice \
		systemd-analyze verify $man_opt "$tmp/unit/consentgate.service"
	if systemd-analyze security --offline=yes --threshold=20 --no-pager \
		"$tmp/unit/consentgate.service" >"$tmp/why" 2>&1; then
		ok "systemd-analyze security: exposure $(grep -o 'exposure level.*' "$tmp/why" |
			grep -oE '[0-9]+\.[0-9]+') (at most 2.0)"
	else
		fail "systemd-analyze security --threshold=20 (exposure above 2.0)"
	fi
else
	echo "skip systemd-analyze verify: systemd-analyze is not installed (Debian package systemd); the unit was not verified"
fi

# ---------------------------------------------------------------- uninstall
uninstalled() {
	make --no-print-directory BUILD="$BUILD" SANITIZER="${SANITIZER:-}" \
		uninstall DESTDIR="$d" PREFIX=/usr >"$tmp/out" 2>&1 ||
		{ cat "$tmp/out"; return 1; }
	left=$(cd "$d" && find . -type f)
	[ -z "$left" ] || { echo "left behind: $left"; return 1; }
}
check "make uninstall removes every file" uninstalled

echo "$passed passed, $failed failed"
[ $failed = 0 ]
