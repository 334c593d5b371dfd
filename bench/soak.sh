#!/bin/bash
# soak.sh: consentgate under steady load for a while; its RSS must stay flat.
#
# Two wrk runs side by side against one consentgate (one worker) in front of
# the test upstream (tests/integration/upstream.c): 64 KiB NDJSON batches on
# the inspected route (5% of records dropped, decision log on) and small GETs
# on a pass route, keep-alive. consentgate's RSS (VmRSS) is read before the
# load, at the end of the warm-up (SOAK_WARMUP seconds, default a tenth of
# the run, at least 5 s), at ten points during the run and after it. Fails
# when the RSS after the run exceeds the RSS after the warm-up by more than
# SOAK_MAX_GROWTH_KIB (default 4096), when wrk saw errors or non-2xx
# answers, or when consentgate died.
#
#   bench/soak.sh                    # 5 minutes
#   SOAK_SECONDS=20 bench/soak.sh    # the CI version
# Also: BUILD (build dir, default build), CONSENTGATE, SOAK_CONNS (8 per
# wrk), SOAK_PEOPLE (100000). Prints one line per sample and a summary;
# run it with `nice` on a shared machine. Figures are not test assertions:
# only the RSS bound and the error counts decide.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
BUILD=${BUILD:-$root/build}
case $BUILD in /*) ;; *) BUILD=$root/$BUILD ;; esac
CONSENTGATE=${CONSENTGATE:-$BUILD/consentgate}
SECONDS_TOTAL=${SOAK_SECONDS:-300}
WARMUP=${SOAK_WARMUP:-$((SECONDS_TOTAL / 10 > 5 ? SECONDS_TOTAL / 10 : 5))}
MAX_GROWTH=${SOAK_MAX_GROWTH_KIB:-4096}
CONNS=${SOAK_CONNS:-8}
PEOPLE=${SOAK_PEOPLE:-100000}

for tool in wrk python3 cc; do
	command -v $tool >/dev/null || { echo "soak: $tool is missing (.ci/deps.sh)"; exit 1; }
done
[ -x "$CONSENTGATE" ] || { echo "soak: no consentgate at $CONSENTGATE"; exit 1; }

WORK=$(mktemp -d /tmp/cg-soak.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT

log() { echo "soak: $*"; }

cc -std=c11 -O2 -pthread -o "$WORK/upstream" "$root/tests/integration/upstream.c" ||
	{ echo "soak: cannot build the test upstream"; exit 1; }
python3 "$here/gen.py" "$WORK/data" "$PEOPLE" || exit 1

"$WORK/upstream" >"$WORK/upstream.out" 2>/dev/null &
pids+=($!)
for _ in $(seq 50); do
	up_port=$(sed -n 's/^listening \([0-9]*\)$/\1/p' "$WORK/upstream.out")
	[ -n "$up_port" ] && break
	sleep 0.1
done
[ -n "${up_port:-}" ] || { echo "soak: the upstream did not start"; exit 1; }

# The decision log goes through a FIFO to wc: every line counted, no disk
# filled (5 minutes of 64 KiB batches write gigabytes of decisions).
mkfifo "$WORK/decisions.fifo"
wc -l <"$WORK/decisions.fifo" >"$WORK/decisions.count" &
pids+=($!)

"$CONSENTGATE" serve --listen 127.0.0.1:0 --upstream "http://127.0.0.1:$up_port" \
	--policy "$here/policy.json" --consent "$WORK/data/consent.csv" \
	--workers 1 --decision-log "$WORK/decisions.fifo" 2>"$WORK/proxy.err" &
cg=$!
pids+=($cg)
for _ in $(seq 100); do
	port=$(sed -n 's/.*consentgate: listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$WORK/proxy.err")
	[ -n "$port" ] && break
	sleep 0.1
done
[ -n "${port:-}" ] || { echo "soak: consentgate did not start"; cat "$WORK/proxy.err"; exit 1; }

rss() { awk '/^VmRSS:/ {print $2}' "/proc/$cg/status" 2>/dev/null; }
alive() { kill -0 "$cg" 2>/dev/null; }

url=http://127.0.0.1:$port
rss_before=$(rss)
log "consentgate pid $cg on $url (upstream $up_port), ${SECONDS_TOTAL}s, warm-up ${WARMUP}s, $CONNS connections per wrk; RSS before load: ${rss_before} KiB"

BENCH_METHOD=POST BENCH_BODY="$WORK/data/ndjson-64k.ndjson" \
	BENCH_HEADERS="Content-Type: application/x-ndjson" \
	wrk -t1 -c"$CONNS" -d"${SECONDS_TOTAL}s" -s "$here/wrk/load.lua" "$url/ingest" \
	>"$WORK/wrk-ndjson.out" 2>&1 &
w1=$!
BENCH_METHOD=GET wrk -t1 -c"$CONNS" -d"${SECONDS_TOTAL}s" -s "$here/wrk/load.lua" \
	"$url/status" >"$WORK/wrk-get.out" 2>&1 &
w2=$!
pids+=($w1 $w2)

# Samples: the warm-up mark, then ten points to the end.
start=$(date +%s)
sleep "$WARMUP"
rss_warm=$(rss)
log "t=${WARMUP}s RSS ${rss_warm} KiB (after warm-up: the baseline)"
step=$(((SECONDS_TOTAL - WARMUP) / 10))
[ "$step" -lt 1 ] && step=1
samples="$rss_warm"
while kill -0 $w1 2>/dev/null || kill -0 $w2 2>/dev/null; do
	sleep "$step"
	alive || break
	now=$(($(date +%s) - start))
	r=$(rss)
	samples="$samples $r"
	log "t=${now}s RSS ${r} KiB"
done
wait $w1 $w2 2>/dev/null

status=0
if ! alive; then
	log "FAIL: consentgate died"; tail -5 "$WORK/proxy.err"
	exit 1
fi
sleep 1  # the last responses and closes settle
rss_after=$(rss)
max=$(echo "$samples $rss_after" | tr ' ' '\n' | sort -n | tail -1)
growth=$((rss_after - rss_warm))

result() { # name file: requests, errors and non-2xx of one wrk run
	local line
	line=$(grep '^WRKRESULT' "$2")
	if [ -z "$line" ]; then
		log "FAIL: wrk $1 printed no result"; cat "$2"; status=1; return
	fi
	set -- "$1" $line
	# WRKRESULT requests duration_us bytes connect read write status timeout p50 p99 mean
	local reqs=$3 dur_us=$4 errs=$(($6 + $7 + $8 + ${10})) non2xx=$9
	log "$1: $reqs requests ($((reqs * 1000000 / (dur_us > 0 ? dur_us : 1))) req/s), $errs socket errors, $non2xx non-2xx; p50 ${11} us, p99 ${12} us"
	[ "$errs" -eq 0 ] && [ "$non2xx" -eq 0 ] || status=1
}
result "NDJSON 64 KiB /ingest" "$WORK/wrk-ndjson.out"
result "GET /status" "$WORK/wrk-get.out"

log "RSS KiB: before load $rss_before, after warm-up $rss_warm, max $max, after $rss_after; growth after warm-up ${growth} KiB (bound ${MAX_GROWTH} KiB)"
if [ "$growth" -gt "$MAX_GROWTH" ]; then
	log "FAIL: RSS grew by ${growth} KiB after the warm-up"
	status=1
fi
if grep -qE 'AddressSanitizer|runtime error|LeakSanitizer' "$WORK/proxy.err"; then
	log "FAIL: sanitizer report"; status=1
fi
kill "$cg" 2>/dev/null
wait "$cg" 2>/dev/null
for _ in $(seq 50); do [ -s "$WORK/decisions.count" ] && break; sleep 0.1; done
log "decision log: $(cat "$WORK/decisions.count" 2>/dev/null) lines"
[ $status -eq 0 ] && log "ok" || log "FAILED"
exit $status
