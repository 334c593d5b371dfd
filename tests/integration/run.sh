#!/bin/sh
# run.sh: every integration suite against the real binary.
# Called by `make integration` from the repository root with
#   CONSENTGATE=<path to binary>  BUILD=<build dir>
# Builds the test upstream into $BUILD/test-upstream, runs each suite
# (one line per test, then "N passed, N failed") and exits non-zero when
# any suite failed. Each suite is bounded by `timeout`.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-$root/build}
CONSENTGATE=${CONSENTGATE:-$BUILD/consentgate}
export BUILD CONSENTGATE

mkdir -p "$BUILD"
cc -std=c11 -O2 -Wall -Wextra -pthread -o "$BUILD/test-upstream" \
	"$here/upstream.c" || { echo "FAIL build test-upstream"; exit 1; }
export TEST_UPSTREAM="$BUILD/test-upstream"

# SUITES="test_core test_nginx" narrows the run.
suites=${SUITES:-"test_core test_nginx test_cli test_consent test_ops test_early_answer test_routes test_verdict test_faults test_conformance test_tls test_pg test_admin test_metrics test_proof"}
failed=0
for s in $suites; do
	echo "== $s"
	t0=$(date +%s)
	timeout -k 5 150 python3 "$here/$s.py" || failed=1
	echo "== $s: $(($(date +%s) - t0)) s"
done
if [ "$failed" -ne 0 ]; then
	echo "integration: FAILED"
	exit 1
fi
echo "integration: all passed"
