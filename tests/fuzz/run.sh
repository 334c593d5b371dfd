#!/bin/sh
# tests/fuzz/run.sh BUILD NAME...: run each libFuzzer driver BUILD/fuzz_NAME
# for FUZZ_SECONDS (default 60), one after another, at nice 10.
#
# The committed corpus tests/fuzz/corpus/NAME is a read-only seed: libFuzzer
# writes new inputs into its first corpus directory, so that one is a
# temporary directory. FUZZ_MERGE=1 then adds to the committed corpus the
# new inputs that cover more (-merge=1 keeps every file already there).
# Prints per driver the executions, seconds, coverage (cov: edges, ft:
# features) and corpus size; a finding (crash, leak, timeout, out of
# memory) is kept in BUILD/findings/NAME/ and makes the exit status 1.
set -u
build=$1
shift
secs=${FUZZ_SECONDS:-60}
merge=${FUZZ_MERGE:-0}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cg-fuzz-XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
failed=""
printf '%-10s %12s %8s %6s %7s %12s  %s\n' driver executions seconds cov ft \
	corpus result
for name in "$@"; do
	bin=$build/fuzz_$name
	seed=tests/fuzz/corpus/$name
	found=$build/findings/$name
	log=$build/fuzz_$name.log
	if [ ! -x "$bin" ] || [ ! -d "$seed" ]; then
		echo "fuzz: no driver $bin or no corpus $seed" >&2
		failed="$failed $name"
		continue
	fi
	mkdir -p "$tmp/$name" "$found"
	start=$(date +%s)
	nice -n 10 "$bin" -max_total_time="$secs" -print_final_stats=1 \
		-timeout=25 -rss_limit_mb=2048 -artifact_prefix="$found/" \
		"$tmp/$name" "$seed" >"$log" 2>&1
	rc=$?
	end=$(date +%s)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n 1)
	cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
	ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
	corp=$(echo "$last" | sed -n 's/.* corp: \([^ ]*\).*/\1/p')
	result=ok
	if [ "$rc" != 0 ]; then
		result="FINDING (exit $rc)"
		failed="$failed $name"
	fi
	printf '%-10s %12s %8s %6s %7s %12s  %s\n' "$name" "${execs:-?}" \
		$((end - start)) "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result"
	if [ "$rc" != 0 ]; then
		grep -E '^(==[0-9]+==ERROR|SUMMARY|.*invariant failed)' "$log" |
			head -n 5 | sed 's/^/    /'
		sed -n 's/.*Test unit written to /    input: /p' "$log"
		echo "    log: $log; replay: $bin <input>"
		continue
	fi
	if [ "$merge" = 1 ]; then
		nice -n 10 "$bin" -merge=1 "$seed" "$tmp/$name" \
			>"$log.merge" 2>&1 || {
			echo "    merge failed: $log.merge"
			failed="$failed $name"
		}
		echo "    corpus: $(ls "$seed" | wc -l) files in $seed"
	fi
done
if [ -n "$failed" ]; then
	echo "fuzz: findings in:$failed (inputs in $build/findings/)"
	exit 1
fi
exit 0
