#!/bin/sh
# fleet.sh: how fast a withdrawal reaches every consentgate of a fleet.
#
# Starts, on loopback and in a temporary directory: PostgreSQL (as an
# unprivileged user; `nobody` when run as root) with policy/sql/consent.sql
# and FLEET_PEOPLE granted people; FLEET_INSTANCES consentgate instances
# (--consent postgresql://..., one worker each) in front of the test
# upstream; HAProxy balancing them; wrk posting NDJSON batches of granted
# people through HAProxy for the whole run (the load). Then, one after
# the other, FLEET_WITHDRAWALS times: INSERT a withdrawal of a person not
# withdrawn yet, and send that person's record to every instance directly
# until each drops it. The time to enforcement of one withdrawal is from
# the INSERT's commit (PostgreSQL's clock, the machine's) to the moment
# the last instance dropped the record. Prints p50, p99 and max, and the
# load's requests/s; a withdrawal never enforced within 5 s is a failure
# (exit 1).
#
#   sh bench/fleet.sh            (env BUILD=<build dir>, default build/)
#   FLEET_INSTANCES=2 FLEET_WITHDRAWALS=1000 FLEET_PEOPLE=100000
#   FLEET_LOAD=0                 (no wrk load)
#
# Needs postgresql, haproxy and wrk (CG_BENCH=1 sh .ci/deps.sh, plus
# postgresql). Everything it starts is stopped on exit.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
CG=$BUILD/consentgate
UPSTREAM_BIN=$BUILD/test-upstream
[ -x "$CG" ] || { echo "fleet: no $CG (make BUILD=... first)" >&2; exit 2; }
for b in haproxy wrk psql; do
	command -v $b >/dev/null 2>&1 || {
		echo "fleet: $b is missing (apt-get install haproxy wrk postgresql)" >&2
		exit 2
	}
done
cc -std=c11 -O2 -pthread -o "$UPSTREAM_BIN" "$ROOT/tests/integration/upstream.c" ||
	exit 2
export ROOT CG UPSTREAM_BIN
exec python3 - "$@" <<'EOF'
import glob, json, os, pwd, re, shutil, signal, socket, statistics
import subprocess, sys, tempfile, time

ROOT, CG, UPSTREAM_BIN = (os.environ[k] for k in ("ROOT", "CG",
                                                  "UPSTREAM_BIN"))
N_INST = int(os.environ.get("FLEET_INSTANCES", "2"))
N_WD = int(os.environ.get("FLEET_WITHDRAWALS", "1000"))
PEOPLE = int(os.environ.get("FLEET_PEOPLE", "100000"))
LOAD = os.environ.get("FLEET_LOAD", "1") == "1"
BOUND_S = 5.0  # a withdrawal not enforced by then is a failure

work = tempfile.mkdtemp(prefix="cg-fleet-")
procs = []


def log(msg):
    print("%s fleet: %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr,
          flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


bindir = os.path.dirname(sorted(glob.glob(
    "/usr/lib/postgresql/*/bin/initdb"))[-1])
user = None
if os.geteuid() == 0:
    user = "nobody"
    os.chown(work, pwd.getpwnam("nobody").pw_uid, -1)
pgport = free_port()


def as_user(argv):
    return (["runuser", "-u", user, "--"] + argv) if user else argv


def psql(sql, db="postgres"):
    r = subprocess.run([os.path.join(bindir, "psql"), "-X", "-q", "-A", "-t",
                        "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
                        str(pgport), "-U", "postgres", "-d", db, "-c", sql],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       check=True)
    return r.stdout.decode().strip()


def stop_all():
    for p in reversed(procs):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
    subprocess.run(as_user([os.path.join(bindir, "pg_ctl"), "-D",
                            os.path.join(work, "data"), "-m", "fast", "-w",
                            "stop"]), stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    shutil.rmtree(work, ignore_errors=True)


def person(i):
    return str(i * 2654435761 + 1000000)


def http_ingest(sock, subjects):
    body = b"".join(b'{"author_id":"%s"}\n' % s.encode() for s in subjects)
    sock.sendall(b"POST /ingest HTTP/1.1\r\nHost: f\r\nContent-Type: "
                 b"application/x-ndjson\r\nContent-Length: %d\r\n\r\n%s"
                 % (len(body), body))
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = sock.recv(65536)
        if not d:
            raise RuntimeError("connection closed")
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    m = re.search(rb"(?i)content-length: *(\d+)", head)
    n = int(m.group(1)) if m else 0
    while len(rest) < n:
        rest += sock.recv(65536)
    k = re.search(rb"(?i)consent-result: *kept=(\d+)", head)
    return int(head.split(b" ")[1]), int(k.group(1)) if k else None


try:
    log("PostgreSQL on port %d, %d people" % (pgport, PEOPLE))
    subprocess.run(as_user([os.path.join(bindir, "initdb"), "-D",
                            os.path.join(work, "data"), "-A", "trust", "-U",
                            "postgres", "--no-sync"]), check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(as_user([os.path.join(bindir, "pg_ctl"), "-D",
                            os.path.join(work, "data"), "-w", "-l",
                            os.path.join(work, "pg.log"), "-o",
                            "-c listen_addresses=127.0.0.1 -p %d -k %s "
                            "-c fsync=off" % (pgport, work), "start"]),
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run([os.path.join(bindir, "psql"), "-X", "-q", "-h",
                    "127.0.0.1", "-p", str(pgport), "-U", "postgres", "-f",
                    os.path.join(ROOT, "policy/sql/consent.sql")],
                   check=True, stderr=subprocess.DEVNULL)
    psql("SET session_replication_role = replica; INSERT INTO consent "
         "(seq, subject, purpose, status, jurisdiction, updated_at, "
         "evidence) SELECT nextval(pg_get_serial_sequence('consent', "
         "'seq')), (i * 2654435761 + 1000000)::text, 'ai-training', "
         "'granted', 'US', timestamptz '2025-01-01', 'g-' || i FROM "
         "generate_series(0, %d) i" % (PEOPLE - 1))
    url = "postgresql://postgres@127.0.0.1:%d/postgres" % pgport

    up = subprocess.Popen([UPSTREAM_BIN], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL)
    procs.append(up)
    upport = int(re.match(rb"listening (\d+)", up.stdout.readline()).group(1))
    pol = os.path.join(work, "policy.json")
    with open(pol, "w") as f:
        json.dump({"policy": "fleet", "purposes": {"ai-training": {
            "aipref": "train-ai"}}, "routes": [
            {"name": "ingest", "method": "POST", "path": "/ingest",
             "action": "inspect", "purpose": "ai-training",
             "formats": ["ndjson"], "subjects": ["/author_id"],
             "on_deny": "drop"}],
            "rules": [{"id": "granted", "if": {"status": ["granted"]},
                       "then": "allow"},
                      {"id": "otherwise", "then": "deny"}]}, f)
    ports = []
    for i in range(N_INST):
        p = subprocess.Popen([CG, "serve", "--listen", "127.0.0.1:0",
                              "--upstream", "http://127.0.0.1:%d" % upport,
                              "--policy", pol, "--consent", url,
                              "--workers", "1"],
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        procs.append(p)
        t0 = time.monotonic()
        while True:
            line = p.stderr.readline()
            m = re.search(rb"listening on 127\.0\.0\.1:(\d+)", line)
            if m:
                ports.append(int(m.group(1)))
                break
            if not line or time.monotonic() - t0 > 120:
                raise RuntimeError("consentgate %d did not start" % i)
        # keep its stderr drained
        subprocess.Popen(["cat"], stdin=p.stderr, stdout=subprocess.DEVNULL)
    log("consentgate on ports %s" % ports)
    hport = free_port()
    with open(os.path.join(work, "haproxy.cfg"), "w") as f:
        f.write("global\n maxconn 4096\ndefaults\n mode http\n"
                " timeout connect 5s\n timeout client 30s\n"
                " timeout server 30s\nfrontend fe\n bind 127.0.0.1:%d\n"
                " default_backend cg\nbackend cg\n balance roundrobin\n"
                " http-reuse always\n" % hport)
        for i, p in enumerate(ports):
            f.write(" server cg%d 127.0.0.1:%d\n" % (i, p))
    procs.append(subprocess.Popen(["haproxy", "-db", "-f",
                                   os.path.join(work, "haproxy.cfg")],
                                  stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL))
    time.sleep(0.5)
    wrk = None
    if LOAD:
        # 64 records of granted people no withdrawal touches (the upper
        # half of the ids; withdrawals take the lower half)
        body = "".join('{"author_id":"%s"}\\n' % person(PEOPLE // 2 + k)
                       for k in range(64))
        lua = os.path.join(work, "post.lua")
        with open(lua, "w") as f:
            f.write('wrk.method = "POST"\nwrk.body = "%s"\n'
                    'wrk.headers["Content-Type"] = "application/x-ndjson"\n'
                    % body.replace('"', '\\"'))
        wrk = subprocess.Popen(["wrk", "-t1", "-c16", "-d600s", "-s", lua,
                                "http://127.0.0.1:%d/ingest" % hport],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL)
        procs.append(wrk)
        time.sleep(1)
    socks = [socket.create_connection(("127.0.0.1", p), timeout=5)
             for p in ports]
    times = []
    t_start = time.monotonic()
    for k in range(N_WD):
        who = person(k)
        for s in socks:  # every instance keeps them before
            assert http_ingest(s, [who]) == (200, 1)
        at = float(psql("INSERT INTO consent (subject, purpose, status, "
                        "jurisdiction, updated_at, evidence) VALUES ('%s', "
                        "'ai-training', 'withdrawn', 'US', "
                        "'2026-01-01T00:00:00Z', 'w-%d') RETURNING "
                        "extract(epoch FROM clock_timestamp())" % (who, k)))
        pending = list(socks)
        while pending:
            s = pending[0]
            status, kept = http_ingest(s, [who])
            if status == 204 and kept == 0:
                pending.pop(0)
                continue
            if time.time() - at > BOUND_S:
                raise RuntimeError("withdrawal %d not enforced in %.0f s"
                                   % (k, BOUND_S))
            time.sleep(0.0005)
        times.append(time.time() - at)
    wall = time.monotonic() - t_start
    rps = None
    if wrk is not None:
        wrk.send_signal(signal.SIGINT)
        out = wrk.communicate(timeout=10)[0].decode()
        m = re.search(r"Requests/sec:\s+([\d.]+)", out)
        rps = float(m.group(1)) if m else None
    times.sort()
    ms = [t * 1000 for t in times]
    p50 = statistics.median(ms)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print("fleet: %d instances behind HAProxy, %d people, %d withdrawals in "
          "%.1f s%s" % (N_INST, PEOPLE, N_WD, wall,
                        ", under load: %.0f req/s of 64-record batches "
                        "through HAProxy" % rps if rps else ""))
    print("time to enforcement on every instance (INSERT commit to the "
          "last instance dropping the record): p50 %.1f ms, p99 %.1f ms, "
          "max %.1f ms" % (p50, p99, ms[-1]))
finally:
    stop_all()
EOF
