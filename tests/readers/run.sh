#!/bin/sh
# run.sh: the multi-reader differential suite (issue 8) against the real
# binary. Called by `make test-readers` from the repository root with
#   CONSENTGATE=<path to binary>  BUILD=<build dir>
# Extra arguments go to suite.py (--quick, --seed N, --all, --classes 1,5).
# Results (one repro file per failing attack, failures.txt) go to
# $BUILD/readers-results. Bounded by `timeout`.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-$root/build}
CONSENTGATE=${CONSENTGATE:-$BUILD/consentgate}
export CONSENTGATE
sh "$here/deps.sh" || exit 1
# Debian's python3 explicitly: the reader modules are Debian packages, and
# a python3 earlier on PATH (pyenv, venv) would not have them.
cd "$here" && exec timeout -k 10 ${READERS_TIMEOUT:-900} /usr/bin/python3 \
	"$here/suite.py" --results "$BUILD/readers-results" "$@"
