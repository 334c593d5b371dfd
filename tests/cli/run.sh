#!/bin/sh
# Golden tests of the policy CLI (check, test, eval).
# Runs "$CONSENTGATE" with each line of tests/cli/cases (NAME ARGS..., from
# the repository root) and compares stdout, stderr and the exit code with
# tests/cli/golden/NAME.out, NAME.err and NAME.rc. CG_UPDATE=1 rewrites the
# golden files instead (review the diff before committing).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
: "${CONSENTGATE:?set CONSENTGATE to the consentgate binary}"
case "$CONSENTGATE" in /*) ;; *) CONSENTGATE=$(pwd)/$CONSENTGATE ;; esac
export CONSENTGATE
tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0
cd "$root" || exit 2
while IFS= read -r line; do
	case "$line" in '#'* | '') continue ;; esac
	name=${line%% *}
	args=${line#* }
	eval "\"\$CONSENTGATE\" $args" >"$tmp/out" 2>"$tmp/err"
	echo $? >"$tmp/rc"
	g="$here/golden/$name"
	if [ "${CG_UPDATE:-}" = 1 ]; then
		cp "$tmp/out" "$g.out"
		cp "$tmp/err" "$g.err"
		cp "$tmp/rc" "$g.rc"
	fi
	ok=1
	for part in out err rc; do
		if ! cmp -s "$tmp/$part" "$g.$part" 2>/dev/null; then
			[ $ok = 1 ] && echo "FAIL $name"
			ok=0
			if [ -f "$g.$part" ]; then
				diff -u "$g.$part" "$tmp/$part" |
					sed -e "1s|.*|--- golden/$name.$part|" \
					    -e "2s|.*|+++ actual|" -e 's/^/    /'
			else
				echo "    missing golden/$name.$part"
			fi
		fi
	done
	if [ $ok = 1 ]; then
		echo "ok   $name"
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
	fi
done <"$here/cases"
echo "$passed passed, $failed failed"
[ $failed = 0 ]
