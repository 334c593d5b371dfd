#!/bin/sh
# run.sh: consentgate against nginx and HAProxy on the same upstream.
#
# Called by `make bench` (env BUILD=<build dir>). Starts one upstream (nginx,
# `return 200`), nginx and HAProxy as reverse proxies and consentgate, all on
# loopback, runs the same wrk load against each in turn (A B C A B C ...),
# counts system calls, measures memory and idle connections, runs the
# micro-benchmarks, and writes bench/results/report-<date>.md + latest.md +
# throughput.png. Everything it starts is stopped on exit.
#
# TLS workloads (tls-*) run against a second instance of each proxy that
# terminates TLS and re-encrypts to the same upstream nginx on its TLS port;
# the certificates are made in the work dir with the openssl CLI.
#
# Knobs (environment): BENCH_RUNS (3), BENCH_DURATION (seconds, 5),
# BENCH_PEOPLE (1000000), BENCH_IDLE_CONNS (10000), BENCH_WORKLOADS
# ("get ndjson-64k ndjson-1m profile gzip-64k tls-get tls-ndjson-64k"),
# BENCH_PROXIES
# ("nginx haproxy consentgate"), BENCH_MICRO (1), BENCH_QUICK=1 (1 run of 2 s,
# 1000 idle connections, no micro-benchmarks: checks the harness itself).

# The harness uses bash (arrays, ulimit -n, /proc arithmetic).
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$ROOT/bench
BUILD=${BUILD:-$ROOT/build}
CG=$BUILD/consentgate
OUT=$BENCH/results
if [ "${BENCH_QUICK:-0}" = 1 ]; then
	RUNS=${BENCH_RUNS:-1}
	DUR=${BENCH_DURATION:-2}
	IDLE_CONNS=${BENCH_IDLE_CONNS:-1000}
	MICRO=${BENCH_MICRO:-0}
else
	RUNS=${BENCH_RUNS:-3}
	DUR=${BENCH_DURATION:-5}
	IDLE_CONNS=${BENCH_IDLE_CONNS:-10000}
	MICRO=${BENCH_MICRO:-1}
fi
PEOPLE=${BENCH_PEOPLE:-1000000}
WORKLOADS=${BENCH_WORKLOADS:-get ndjson-64k ndjson-1m profile gzip-64k tls-get tls-ndjson-64k}
PROXIES=${BENCH_PROXIES:-nginx haproxy consentgate}
PROXY_CPU=0
LOAD_CPU=1

log() { printf '%s bench: %s\n' "$(date +%T)" "$*" >&2; }

mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/consentgate-bench.XXXXXX)
STARTED=""      # pids to stop on exit
# Keyed by instance: the proxy's name, or <proxy>-tls for its TLS instance.
declare -A PID  # the process to measure (nginx: the worker)
declare -A MASTER
declare -A PORT
declare -A STATE # "ok" or why not
TLS_WANTED=0
case " $WORKLOADS " in *" tls-"*) TLS_WANTED=1 ;; esac

cleanup() {
	local p i
	for p in $STARTED; do
		kill "$p" 2>/dev/null
	done
	# Bounded wait, then force.
	for i in $(seq 1 30); do
		local alive=""
		for p in $STARTED; do
			kill -0 "$p" 2>/dev/null && alive="$alive $p"
		done
		[ -z "$alive" ] && break
		sleep 0.1
	done
	for p in $STARTED; do
		kill -9 "$p" 2>/dev/null
	done
	wait 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Tools. deps.sh installs haproxy wrk gnuplot-nox strace libsimdjson-dev
# when CG_BENCH=1.
CG_BENCH=1 sh "$ROOT/.ci/deps.sh" || log "deps.sh failed; continuing with what is installed"
for tool in nginx wrk taskset python3 curl $([ "$TLS_WANTED" = 1 ] && echo openssl); do
	command -v "$tool" >/dev/null 2>&1 || { log "missing $tool"; exit 1; }
done

# 10,000 idle connections need more descriptors than the default.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
log "open files limit: $(ulimit -n); work dir $WORK"

free_ports() {
	python3 -c '
import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}
read -r UP_PORT NGINX_PORT HAPROXY_PORT UP_TLS_PORT NGINX_TLS_PORT HAPROXY_TLS_PORT \
	<<<"$(free_ports 6)"
TLS=$WORK/tls # certificates

# Waits (bounded) until something accepts on 127.0.0.1:$1 while pid $2 lives.
wait_port() {
	local i
	for i in $(seq 1 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		[ -n "${2:-}" ] && ! kill -0 "$2" 2>/dev/null && return 1
		sleep 0.1
	done
	return 1
}

fill() { # template -> file, placeholders from the environment above
	local user="" tls="/^[[:space:]]*#TLS /d"
	[ "$(id -u)" = 0 ] && user="user root;"
	[ "$TLS_WANTED" = 1 ] && tls="s/^\([[:space:]]*\)#TLS /\1/"
	sed -e "$tls" -e "s|@DIR@|$WORK|g" -e "s|@UP_PORT@|$UP_PORT|g" \
		-e "s|@UP_TLS_PORT@|$UP_TLS_PORT|g" -e "s|@TLS@|$TLS|g" \
		-e "s|@NOFILE@|$(ulimit -n)|g" -e "s|@CONNS@|$(($(ulimit -n) - 200))|g" \
		-e "s|@PORT@|$2|g" -e "s|@USER@|$user|g" "$1" >"$3"
}

cpu_ticks() { # utime+stime of a process (all threads), clock ticks
	[ -r "/proc/$1/stat" ] || { echo 0; return; }
	sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
}
cpu0_ticks() { # user+nice+system ticks of the proxy's core, every process
	awk -v c="cpu$PROXY_CPU" '$1 == c {print $2 + $3 + $4}' /proc/stat
}
status_kb() { # VmRSS / VmHWM of a process in KiB
	awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status" 2>/dev/null || echo 0
}

# ---- data -----------------------------------------------------------------
DATA=$OUT/data-$PEOPLE
if [ ! -s "$DATA/meta.tsv" ] || [ "$BENCH/gen.py" -nt "$DATA/meta.tsv" ]; then
	log "generating consent table ($PEOPLE people) and bodies in $DATA"
	python3 "$BENCH/gen.py" "$DATA" "$PEOPLE" || { log "gen.py failed"; exit 1; }
fi
cp "$DATA/meta.tsv" "$WORK/meta.tsv"
PROFILE_SUBJECT=$(awk -F'\t' '$1 == "profile" {print $6}' "$DATA/meta.tsv")

# ---- certificates -----------------------------------------------------------
# For the tls-* workloads, made as a new user would (tests/integration/
# tlsfiles.py does the same): a private CA, EC P-256 keys, and two server
# certificates for localhost / 127.0.0.1, one the proxies present to wrk and
# one the upstream presents to the proxies. HAProxy wants certificate and
# key in one file.
CERTS_FAILED=""
make_certs() {
	local n
	mkdir -p "$TLS"
	if ! (
		cd "$TLS" || exit 1
		set -e
		key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key"; }
		key ca
		openssl req -x509 -new -key ca.key -out ca.pem -days 2 -subj "/CN=consentgate bench CA"
		for n in proxy upstream; do
			key "$n"
			openssl req -new -key "$n.key" -out "$n.csr" -subj /CN=localhost
			printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$n.ext"
			openssl x509 -req -in "$n.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
				-out "$n.pem" -days 2 -extfile "$n.ext"
		done
		cat proxy.pem proxy.key >proxy-haproxy.pem
	) >"$WORK/certs.out" 2>&1; then
		CERTS_FAILED=$(tail -n 1 "$WORK/certs.out")
		log "certificates failed: $CERTS_FAILED"
		TLS_WANTED=0 # the upstream then serves plain HTTP only
	fi
}

# ---- processes ------------------------------------------------------------
start_upstream() {
	mkdir -p "$WORK/upstream-body" "$WORK/www"
	echo ok >"$WORK/www/status"
	fill "$BENCH/conf/upstream-nginx.conf" "" "$WORK/upstream.conf"
	taskset -c $LOAD_CPU nginx -e "$WORK/upstream-error.log" -p "$WORK" \
		-c "$WORK/upstream.conf" >"$WORK/upstream.out" 2>&1 &
	STARTED="$STARTED $!"
	wait_port "$UP_PORT" $! || { log "upstream did not start:"; cat "$WORK/upstream.out" "$WORK/upstream-error.log" >&2; exit 1; }
	log "upstream nginx on 127.0.0.1:$UP_PORT"
}

# Each start_<proxy> takes the instance: <proxy>, or <proxy>-tls for the
# one that terminates TLS and forwards to the upstream's TLS port.
start_nginx() {
	local i=$1 port=$NGINX_PORT
	[ "$i" = nginx-tls ] && port=$NGINX_TLS_PORT
	mkdir -p "$WORK/$i-body" "$WORK/$i-proxy"
	fill "$BENCH/conf/$i.conf" "$port" "$WORK/$i.conf"
	taskset -c $PROXY_CPU nginx -e "$WORK/$i-error.log" -p "$WORK" \
		-c "$WORK/$i.conf" >"$WORK/$i.out" 2>&1 &
	local m=$!
	STARTED="$STARTED $m"
	PORT[$i]=$port
	if ! wait_port "$port" "$m"; then
		STATE[$i]="failed to start: $(tail -n 1 "$WORK/$i-error.log" 2>/dev/null)"
		return
	fi
	# Measure the worker, which does the proxying.
	MASTER[$i]=$m
	PID[$i]=$(pgrep -P "$m" | head -n 1)
	STATE[$i]=ok
}

start_haproxy() {
	local i=$1 port=$HAPROXY_PORT
	[ "$i" = haproxy-tls ] && port=$HAPROXY_TLS_PORT
	command -v haproxy >/dev/null 2>&1 || { STATE[$i]="failed to start: haproxy not installed"; return; }
	fill "$BENCH/conf/$i.cfg" "$port" "$WORK/$i.cfg"
	taskset -c $PROXY_CPU haproxy -db -f "$WORK/$i.cfg" >"$WORK/$i.out" 2>&1 &
	local p=$!
	STARTED="$STARTED $p"
	PORT[$i]=$port
	if ! wait_port "$port" "$p"; then
		STATE[$i]="failed to start: $(grep ALERT "$WORK/$i.out" | tail -n 1)"
		return
	fi
	PID[$i]=$p
	STATE[$i]=ok
}

start_consentgate() {
	local i=$1 up="http://127.0.0.1:$UP_PORT" tls_args=()
	if [ ! -x "$CG" ]; then
		STATE[$i]="failed to start: $CG not built"
		return
	fi
	if [ "$i" = consentgate-tls ]; then
		up="https://localhost:$UP_TLS_PORT"
		tls_args=(--tls-cert "$TLS/proxy.pem" --tls-key "$TLS/proxy.key"
			--upstream-ca "$TLS/ca.pem")
	fi
	# A binary snapshot opens at once; fall back to the CSV if build fails.
	local consent=$DATA/consent.csv
	# Rebuilt when the binary is newer: the snapshot format may have changed.
	if [ ! -s "$DATA/consent.snap" ] || [ "$DATA/consent.csv" -nt "$DATA/consent.snap" ] ||
		[ "$CG" -nt "$DATA/consent.snap" ]; then
		if timeout 300 "$CG" consent build "$DATA/consent.csv" -o "$DATA/consent.snap.tmp" \
			>"$WORK/consent-build.out" 2>&1 && [ -s "$DATA/consent.snap.tmp" ]; then
			mv "$DATA/consent.snap.tmp" "$DATA/consent.snap"
		else
			rm -f "$DATA/consent.snap.tmp"
			log "consent build failed ($(tail -n 1 "$WORK/consent-build.out")); using the CSV"
		fi
	fi
	[ -s "$DATA/consent.snap" ] && consent=$DATA/consent.snap
	echo "$consent" >"$WORK/consent-used"
	taskset -c $PROXY_CPU "$CG" serve --listen 127.0.0.1:0 \
		--upstream "$up" --policy "$BENCH/policy.json" \
		--consent "$consent" --workers 1 --config "$BENCH/conf/consentgate.json" \
		"${tls_args[@]}" >"$WORK/$i.out" 2>"$WORK/$i.err" &
	local p=$!
	STARTED="$STARTED $p"
	local n port=""
	for n in $(seq 1 600); do # up to 60 s: a CSV of 1M people takes a while
		port=$(sed -n 's/^.*consentgate: listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' \
			"$WORK/$i.err" | head -n 1)
		[ -n "$port" ] && break
		kill -0 "$p" 2>/dev/null || break
		sleep 0.1
	done
	if [ -z "$port" ]; then
		local why
		why=$(grep -v '^$' "$WORK/$i.err" | tail -n 1)
		kill -0 "$p" 2>/dev/null && why="no 'listening on' line within 60 s ${why:+($why)}"
		STATE[$i]="failed to start: ${why:-exited without a message}"
		kill "$p" 2>/dev/null
		return
	fi
	PORT[$i]=$port
	PID[$i]=$p
	STATE[$i]=ok
}

# ---- workloads ------------------------------------------------------------
# name -> method path body headers concurrency-list. tls-<name> is <name>
# over TLS, to the proxy's TLS instance.
is_tls() { case $1 in tls-*) return 0 ;; esac; return 1; }
inst() { # proxy workload -> the instance that serves it
	if is_tls "$2"; then echo "$1-tls"; else echo "$1"; fi
}
wl_url() { # proxy workload
	local i
	i=$(inst "$1" "$2")
	if is_tls "$2"; then
		echo "https://localhost:${PORT[$i]}$(wl_path "$2")"
	else
		echo "http://127.0.0.1:${PORT[$i]}$(wl_path "$2")"
	fi
}
wl_method() { [ "${1#tls-}" = get ] && echo GET || echo POST; }
wl_path() {
	case ${1#tls-} in get) echo /status ;; profile) echo /profile ;; *) echo /ingest ;; esac
}
wl_body() {
	case ${1#tls-} in
	get) echo "" ;;
	ndjson-64k) echo "$DATA/ndjson-64k.ndjson" ;;
	ndjson-1m) echo "$DATA/ndjson-1m.ndjson" ;;
	gzip-64k) echo "$DATA/ndjson-64k.ndjson.gz" ;;
	profile) echo "$DATA/profile.json" ;;
	esac
}
wl_headers() {
	case ${1#tls-} in
	get) echo "" ;;
	gzip-64k) echo "Content-Type: application/x-ndjson|Content-Encoding: gzip" ;;
	profile) echo "Content-Type: application/json|X-Subject-Id: $PROFILE_SUBJECT" ;;
	*) echo "Content-Type: application/x-ndjson" ;;
	esac
}
wl_conns() {
	if [ -n "${BENCH_CONNS:-}" ]; then echo "$BENCH_CONNS"; return; fi
	# TLS: 1000 connections would measure wrk, whose OpenSSL 3.0 client
	# handshakes take milliseconds each here (bench/README.md, TLS).
	case $1 in tls-*) echo "1 64" ;; get | ndjson-64k) echo "1 64 1000" ;; *) echo 64 ;; esac
}

alive() { [ "${STATE[$1]}" = ok ] && kill -0 "${PID[$1]}" 2>/dev/null; }
mark_dead() {
	if [ "${STATE[$1]}" = ok ] && ! kill -0 "${PID[$1]}" 2>/dev/null; then
		STATE[$1]="exited during $2 ($(grep -v '^$' "$WORK/$1.err" 2>/dev/null | tail -n 1))"
		log "$1 ${STATE[$1]}"
	fi
}

# One request with curl: status and Consent-Result, to show each proxy
# really answered the workload (and what consentgate decided); over TLS
# also what each leg negotiated: curl's (the client leg, verified against
# the bench CA) and the upstream's X-Upstream-TLS (the proxy's leg).
sanity() { # proxy workload
	local p=$1 w=$2 body hdr args=() h
	body=$(wl_body "$w")
	IFS='|' read -r -a hdr <<<"$(wl_headers "$w")"
	for h in "${hdr[@]}"; do [ -n "$h" ] && args+=(-H "$h"); done
	[ -n "$body" ] && args+=(--data-binary "@$body")
	local code
	is_tls "$w" && args+=(-v --cacert "$TLS/ca.pem")
	: >"$WORK/sanity-head"
	code=$(curl -s -m 10 -o "$WORK/sanity-body" -D "$WORK/sanity-head" -w '%{http_code}' \
		-X "$(wl_method "$w")" "${args[@]}" "$(wl_url "$p" "$w")" 2>"$WORK/sanity-err")
	local cr leg1=- leg2=-
	cr=$(tr -d '\r' <"$WORK/sanity-head" | awk -F': ' 'tolower($1) == "consent-result" {print $2}')
	if is_tls "$w"; then
		leg1=$(sed -n 's/^\* SSL connection using \(.*\)/\1/p' "$WORK/sanity-err" | head -n 1)
		leg2=$(tr -d '\r' <"$WORK/sanity-head" | awk -F': ' 'tolower($1) == "x-upstream-tls" {print $2}')
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$p" "$w" "${code:-000}" "${cr:--}" "${leg1:-?}" \
		"${leg2:-?}" >>"$WORK/sanity.tsv"
}

wrk_env() { # workload -> exports for load.lua
	export BENCH_METHOD BENCH_BODY BENCH_HEADERS
	BENCH_METHOD=$(wl_method "$1")
	BENCH_BODY=$(wl_body "$1")
	BENCH_HEADERS=$(wl_headers "$1")
}

run_wrk() { # proxy workload conns duration -> WRKRESULT line on stdout
	local p=$1 w=$2 c=$3 d=$4
	wrk_env "$w"
	taskset -c $LOAD_CPU wrk -t1 -c"$c" -d"${d}s" --latency --timeout 10s \
		-s "$BENCH/wrk/load.lua" "$(wl_url "$p" "$w")" \
		2>&1 | tee -a "$WORK/wrk.log" | grep '^WRKRESULT' | tail -n 1
}

# Over TLS, wrk's own thread sometimes stalls for seconds on a busy machine
# and completes no request at all, whichever server it talks to (seen also
# against a bare nginx `return 200`): such a run, with no error either,
# measures wrk, so it is repeated (twice at most) and counted in stalls.tsv.
wrk_stalled() { # workload WRKRESULT-line what
	is_tls "$1" && [ -n "$2" ] && [ "$(echo "$2" | cut -f2)" = 0 ] &&
		[ "$(echo "$2" | cut -f5-9 | tr -d '0\t')" = "" ] || return 1
	log "$3: wrk completed no request (stalled); repeating"
	printf '%s\n' "$3" >>"$WORK/stalls.tsv"
	return 0
}

# runs.tsv: proxy workload conns round wrk_s cpu_s requests bytes_read
#           socket_errors non2xx p50_us p99_us other_cpu0_s
# other_cpu0_s: CPU time other processes took on the proxy's core.
one_run() {
	local p=$1 w=$2 c=$3 r=$4 c0 c1 k0 k1 res i try
	i=$(inst "$p" "$w")
	for try in 1 2 3; do
		echo "== $p $w c=$c round $r${try#1}" >>"$WORK/wrk.log"
		c0=$(cpu_ticks "${PID[$i]}")
		k0=$(cpu0_ticks)
		res=$(run_wrk "$p" "$w" "$c" "$DUR")
		k1=$(cpu0_ticks)
		c1=$(cpu_ticks "${PID[$i]}")
		wrk_stalled "$w" "$res" "$p $w c=$c round $r" || break
	done
	if [ -z "$res" ]; then
		log "$p $w c=$c: wrk gave no result"
		return
	fi
	# WRKRESULT requests duration_us bytes econn eread ewrite estatus etimeout p50 p99 mean
	echo "$res" | awk -F'\t' -v p="$p" -v w="$w" -v c="$c" -v r="$r" \
		-v cpu="$((c1 - c0))" -v core="$((k1 - k0))" -v hz="$(getconf CLK_TCK)" '
		{ other = core - cpu; if (other < 0) other = 0
		  printf "%s\t%s\t%s\t%s\t%.3f\t%.3f\t%d\t%d\t%d\t%d\t%.1f\t%.1f\t%.3f\n",
			p, w, c, r, $3 / 1e6, cpu / hz, $2, $4, $5 + $6 + $7 + $9, $8, $10, $11,
			other / hz }' \
		>>"$WORK/runs.tsv"
	log "$p $w c=$c round $r: $(tail -n 1 "$WORK/runs.tsv" | cut -f7,9,10,11,12 | tr '\t' ' ') (req err non2xx p50 p99)"
}

# System calls per request over a short separate run: perf counts the
# raw_syscalls:sys_enter tracepoint cheaply; strace -c is the fallback.
SYSCALL_TOOL=${BENCH_SYSCALL_TOOL:-}
if [ -n "$SYSCALL_TOOL" ]; then
	:
elif perf stat -e raw_syscalls:sys_enter -- true >/dev/null 2>&1; then
	SYSCALL_TOOL=perf
elif command -v strace >/dev/null 2>&1; then
	SYSCALL_TOOL=strace
fi
count_syscalls() { # proxy workload
	local p=$1 w=$2 pid=${PID[$(inst "$1" "$2")]} tp res calls
	local f=$WORK/sc-$p-$w
	case $SYSCALL_TOOL in
	perf) perf stat -e raw_syscalls:sys_enter -x, -o "$f" -p "$pid" >/dev/null 2>&1 & ;;
	strace) strace -c -f -q -o "$f" -p "$pid" >/dev/null 2>&1 & ;;
	*) return ;;
	esac
	tp=$!
	sleep 0.5
	if is_tls "$w"; then
		for _ in 1 2 3; do
			res=$(run_wrk "$p" "$w" 64 "$DUR")
			wrk_stalled "$w" "$res" "$p $w syscall count" || break
		done
	else
		res=$(run_wrk "$p" "$w" 64 2)
	fi
	kill -INT "$tp" 2>/dev/null
	for _ in $(seq 1 50); do kill -0 "$tp" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$tp" 2>/dev/null
	wait "$tp" 2>/dev/null
	case $SYSCALL_TOOL in
	perf) calls=$(awk -F, '/raw_syscalls:sys_enter/ {print $1}' "$f") ;;
	strace) calls=$(awk '$NF == "total" {print ($4 ~ /^[0-9]+$/) ? $4 : $3}' "$f") ;;
	esac
	local reqs
	reqs=$(echo "$res" | cut -f2)
	printf '%s\t%s\t%s\t%s\t%s\n' "$p" "$w" "${calls:-0}" "${reqs:-0}" "$SYSCALL_TOOL" >>"$WORK/syscalls.tsv"
}

idle_test() { # proxy
	local p=$1 pid=${PID[$1]} before during ready=$WORK/idle-ready-$1 ip
	before=$(status_kb "$pid" VmRSS)
	rm -f "$ready"
	taskset -c $LOAD_CPU python3 "$BENCH/idle.py" 127.0.0.1 "${PORT[$p]}" "$IDLE_CONNS" "$ready" 120 &
	ip=$!
	STARTED="$STARTED $ip"
	for _ in $(seq 1 1200); do
		[ -s "$ready" ] && break
		kill -0 "$ip" 2>/dev/null || break
		sleep 0.1
	done
	# held 3 s: what idle connections cost once the burst that opened
	# them is over (consentgate gives freed pages back after a quiet
	# second); the same wait for every proxy
	sleep 3
	during=$(status_kb "$pid" VmRSS)
	local opened answered
	read -r opened answered <"$ready" 2>/dev/null || { opened=0; answered=0; }
	kill "$ip" 2>/dev/null
	wait "$ip" 2>/dev/null
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$p" "$IDLE_CONNS" "$opened" "$answered" "$before" "$during" >>"$WORK/idle.tsv"
	log "$p idle: $opened open, $answered answered, RSS $before -> $during KiB"
	sleep 2 # let the proxy close them before the next one
}

# ---- run ------------------------------------------------------------------
T_START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
INSTANCES=$PROXIES
if [ "$TLS_WANTED" = 1 ]; then
	make_certs
	for p in $PROXIES; do INSTANCES="$INSTANCES $p-tls"; done
fi
start_upstream
for i in $INSTANCES; do
	STATE[$i]="not run"
	if [ -n "$CERTS_FAILED" ] && [ "$i" != "${i%-tls}" ]; then
		STATE[$i]="failed to start: certificates: $CERTS_FAILED"
	else
		"start_${i%-tls}" "$i"
	fi
	log "$i: ${STATE[$i]}${PORT[$i]:+ (port ${PORT[$i]}, pid ${PID[$i]:-?})}"
done

: >"$WORK/runs.tsv"
: >"$WORK/sanity.tsv"
: >"$WORK/syscalls.tsv"
: >"$WORK/idle.tsv"
: >"$WORK/stalls.tsv"
# Idle connections first, on fresh processes, so the RSS difference is
# what the connections cost and not memory left over from the load.
for p in $PROXIES; do
	alive "$p" || continue
	idle_test "$p"
	mark_dead "$p" "idle connections"
done
for w in $WORKLOADS; do
	for p in $PROXIES; do alive "$(inst "$p" "$w")" && sanity "$p" "$w"; done
	# TLS: a discarded 1 s run first, so that no measured run pays for
	# the proxies' first handshakes to the upstream.
	if is_tls "$w"; then
		for p in $PROXIES; do
			alive "$(inst "$p" "$w")" || continue
			echo "== $p $w warm-up (not counted)" >>"$WORK/wrk.log"
			run_wrk "$p" "$w" 64 1 >/dev/null
		done
	fi
	for c in $(wl_conns "$w"); do
		for r in $(seq 1 "$RUNS"); do
			for p in $PROXIES; do
				alive "$(inst "$p" "$w")" || continue
				one_run "$p" "$w" "$c" "$r"
				mark_dead "$(inst "$p" "$w")" "$w"
			done
		done
	done
done

# Peak memory after the load (TLS instances: <proxy>-tls).
: >"$WORK/mem.tsv"
for p in $INSTANCES; do
	alive "$p" && printf '%s\t%s\n' "$p" "$(status_kb "${PID[$p]}" VmHWM)" >>"$WORK/mem.tsv"
done

for w in $WORKLOADS; do
	for p in $PROXIES; do
		alive "$(inst "$p" "$w")" || continue
		count_syscalls "$p" "$w"
		mark_dead "$(inst "$p" "$w")" "syscall count ($w)"
	done
done

for p in $INSTANCES; do
	printf '%s\t%s\n' "$p" "${STATE[$p]}" >>"$WORK/state.tsv"
done

# Stop the servers before the micro-benchmarks so they have both cores.
cleanup
STARTED=""

: >"$WORK/micro.tsv"
if [ "$MICRO" = 1 ]; then
	for b in bench_scan bench_simdjson bench_consent; do
		if [ -x "$BUILD/bench/$b" ]; then
			log "running $b"
			(cd "$BUILD/bench" && timeout 600 "./$b") 2>"$WORK/$b.err" |
				grep -E '^(scan|consent)	' >>"$WORK/micro.tsv" ||
				log "$b failed: $(tail -n 1 "$WORK/$b.err")"
		else
			printf 'missing\t%s\n' "$b" >>"$WORK/micro.tsv"
		fi
	done
fi

# ---- report ---------------------------------------------------------------
DATE=$(date -u +%Y-%m-%dT%H%M%SZ)
{
	echo "date	$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "nproc	$(nproc)"
	echo "cpu	$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
	echo "kernel	$(uname -srm)"
	echo "command	${BENCH_COMMAND:-make bench} (BENCH_RUNS=$RUNS BENCH_DURATION=$DUR BENCH_PEOPLE=$PEOPLE BENCH_IDLE_CONNS=$IDLE_CONNS)"
	echo "nginx	$(nginx -v 2>&1 | sed 's/^nginx version: //')"
	echo "haproxy	$(haproxy -v 2>/dev/null | head -n 1 | awk '{print $3}')"
	echo "wrk	$(wrk -v 2>&1 | head -n 1 | awk '{print $2}')"
	echo "consentgate	$("$CG" --version 2>/dev/null || echo '?')"
	echo "commit	$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)"
	echo "consent	$(cat "$WORK/consent-used" 2>/dev/null || echo -)"
	echo "syscall_tool	$SYSCALL_TOOL"
	echo "elapsed_s	$(($(date +%s) - T_START))"
	echo "loadavg_start	$LOAD_START"
	echo "loadavg_end	$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$WORK/machine.tsv"
RAW=$OUT/raw-$DATE
mkdir -p "$RAW"
cp "$WORK"/*.tsv "$WORK/wrk.log" "$RAW/" 2>/dev/null
cp "$WORK"/*.err "$WORK"/*.out "$RAW/" 2>/dev/null
python3 "$BENCH/report.py" "$RAW" "$OUT/report-$DATE.md" "$OUT" || { log "report.py failed"; exit 1; }
cp "$OUT/report-$DATE.md" "$OUT/latest.md"
log "report: $OUT/report-$DATE.md (raw data in $RAW)"
rm -rf "$WORK"
