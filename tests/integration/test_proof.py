"""test_proof.py: the decision log as proof (every subject's decision,
HMAC pseudonyms an auditor can search with `consentgate audit`, a bounded
queue that refuses or drops when full, reopening on SIGUSR1) and request
ids with the access log.
"""

import fcntl
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import time
import urllib.request

from harness import (CONSENTGATE, admin_port, check_problem, main, request,
                     test, wait_until)

CONSENT = ("subject,purpose,status,jurisdiction,updated_at,evidence\n"
           "1001,ai-training,granted,DE,2025-03-01T12:00:00Z,ev-1001\n"
           "1002,ai-training,denied,FR,2025-03-01T12:00:00Z,ev-1002\n"
           "1006,ai-training,granted,US,2025-03-01T12:00:00Z,ev-1006\n")
NDJSON = "application/x-ndjson"
KEY = bytes(range(7, 47))  # 40 bytes
HEX32 = re.compile(r"^[0-9a-f]{32}$")


def pseudonym(subject, key=KEY):
    return hmac.new(key, subject.encode(), hashlib.sha256).hexdigest()


def keyfile(env, key=KEY):
    path = os.path.join(env.workdir, "declog.key")
    with open(path, "wb") as f:
        f.write(key)
    return path


def ingest(c, body, headers=()):
    c.send(request("POST", "/ingest", [("Content-Type", NDJSON)]
                   + list(headers), body))
    return c.read_response()


def read_lines(path, n, timeout=5):
    assert wait_until(lambda: os.path.exists(path) and
                      open(path).read().count("\n") >= n, timeout), \
        "%s has fewer than %d lines" % (path, n)
    return [json.loads(l) for l in open(path).read().splitlines()]


def metrics(px):
    body = urllib.request.urlopen(
        "http://127.0.0.1:%d/metrics" % admin_port(px), timeout=5).read()
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


MULTI = (b'{"author_id":"1001","mentions":[{"id":"1006"}]}\n'
         b'{"author_id":"1002","mentions":[{"id":"1006"},{"id":"4242"}]}\n'
         b'{"author_id":"1006"}\n')


@test
def decision_log_proves_every_subject_under_a_pseudonym(env):
    up = env.upstream()
    log = os.path.join(env.workdir, "decisions.jsonl")
    px = env.proxy(up.url, consent=CONSENT,
                   extra=["--decision-log", log,
                          "--decision-log-key", keyfile(env)])
    c = env.client(px)
    r = ingest(c, MULTI, [("X-Request-Id", "audit-42")])
    assert r.status == 200, r
    line = read_lines(log, 1)[0]
    assert line["v"] == 2 and line["request_id"] == "audit-42", line
    assert line["client"] == "127.0.0.1" and line["route"] == "ingest", line
    assert line["purpose"] == "ai-training", line
    p = {s: pseudonym(s) for s in ("1001", "1002", "1006", "4242")}
    d = line["decisions"]
    assert d[0] == [0, "allow", "default-allow", "ev-1006",
                    [["allow", "strict-granted", "ev-1001", p["1001"]],
                     ["allow", "default-allow", "ev-1006", p["1006"]]]], d
    # the author decides the deny; every other person has their own part
    assert d[1] == [1, "deny", "strict-otherwise", "ev-1002",
                    [["deny", "strict-otherwise", "ev-1002", p["1002"]],
                     ["allow", "default-allow", "ev-1006", p["1006"]],
                     ["deny", "unknown-person", "", p["4242"]]]], d
    # one person still gets a pseudonym: the auditor must find them
    assert d[2] == [2, "allow", "default-allow", "ev-1006",
                    [["allow", "default-allow", "ev-1006", p["1006"]]]], d
    text = open(log).read()
    for subject in ("1001", "1002", "4242"):
        assert '"%s"' % subject not in text, subject


@test
def audit_finds_one_persons_decisions_with_the_key(env):
    up = env.upstream()
    log = os.path.join(env.workdir, "decisions.jsonl")
    key = keyfile(env)
    px = env.proxy(up.url, consent=CONSENT,
                   extra=["--decision-log", log, "--decision-log-key", key])
    c = env.client(px)
    assert ingest(c, b'{"author_id":"1001"}\n').status == 200
    assert ingest(c, b'{"author_id":"1002"}\n').status == 204
    assert ingest(c, MULTI).status == 200
    read_lines(log, 3)
    audit = [CONSENTGATE, "audit", "--key", key, "--subject"]
    out = subprocess.run(audit + ["1002", log], capture_output=True,
                         timeout=30)
    assert out.returncode == 0, out
    got = [json.loads(l) for l in out.stdout.decode().splitlines()]
    assert len(got) == 2 and got[0]["outcome"] == "all-dropped", got
    out = subprocess.run(audit + ["1006", log], capture_output=True,
                         timeout=30)
    assert out.returncode == 0 and out.stdout.count(b"\n") == 1, out
    out = subprocess.run(audit + ["9999", log], capture_output=True,
                         timeout=30)
    assert out.returncode == 1 and out.stdout == b"", out
    out = subprocess.run(audit + ["4242", "--pseudonym"],
                         capture_output=True, timeout=30)
    assert out.stdout.decode().strip() == pseudonym("4242"), out
    # another key finds nobody
    other = os.path.join(env.workdir, "other.key")
    with open(other, "wb") as f:
        f.write(b"k" * 32)
    out = subprocess.run([CONSENTGATE, "audit", "--key", other, "--subject",
                          "1002", log], capture_output=True, timeout=30)
    assert out.returncode == 1, out


@test
def without_a_key_no_subject_is_named(env):
    up = env.upstream()
    log = os.path.join(env.workdir, "decisions.jsonl")
    px = env.proxy(up.url, consent=CONSENT, extra=["--decision-log", log])
    c = env.client(px)
    assert ingest(c, MULTI).status == 200
    d = read_lines(log, 1)[0]["decisions"]
    assert d[0][4] == [["allow", "strict-granted", "ev-1001"],
                       ["allow", "default-allow", "ev-1006"]], d
    assert d[2] == [2, "allow", "default-allow", "ev-1006"], d


@test
def a_short_or_missing_key_is_refused_at_start(env):
    up = env.upstream()
    short = keyfile(env, b"x" * 31)
    for key, why in ((short, b"31 bytes"),
                     (os.path.join(env.workdir, "none"), b"cannot open")):
        for args in (["serve"], ["serve", "--check"]):
            out = subprocess.run(
                [CONSENTGATE] + args +
                ["--listen", "127.0.0.1:0", "--upstream", up.url,
                 "--policy", os.path.join(os.path.dirname(__file__), "..",
                                          "..", "policy", "examples",
                                          "ai-training.json"),
                 "--consent", "/dev/null",
                 "--decision-log", os.path.join(env.workdir, "d.jsonl"),
                 "--decision-log-key", key],
                capture_output=True, timeout=30)
            assert out.returncode != 0, out
            assert b"--decision-log-key" in out.stderr and \
                why in out.stderr, out.stderr


def stalled_log(env):
    """A FIFO with a reader that never reads (its pipe shrunk to a page):
    the writer blocks once a few lines are in it."""
    fifo = os.path.join(env.workdir, "stalled.fifo")
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 4096)
    except OSError:
        pass
    return fifo, fd


BIG = b"".join(b'{"author_id":"1001","t":"%s"}\n' % (b"x" * 8)
               for _ in range(60))


def fill(env, px, want, n=200):
    """Send inspected requests until one gets want (bounded); statuses."""
    seen = []
    c = env.client(px)
    for _ in range(n):
        r = ingest(c, BIG)
        seen.append(r.status)
        if r.status == want:
            return r, seen
        if r.get("Connection") == "close":
            c = env.client(px)
    return None, seen


def stalled_proxy(env, **config):
    """A proxy whose decision log (a queue of 2 lines) stalls: (proxy,
    the FIFO's reader to close at the end)."""
    up = env.upstream()
    fifo, fd = stalled_log(env)
    config.update(decision_log=fifo, decision_log_queue=2,
                  admin="127.0.0.1:0")
    return env.proxy(up.url, consent=CONSENT, config=config), fd


@test
def a_full_decision_log_queue_refuses_inspected_requests(env):
    px, fd = stalled_proxy(env)
    try:
        r, seen = fill(env, px, 503)
        assert r is not None, seen
        doc = check_problem(r, 503)
        assert "decision log" in doc["detail"], doc
        assert r.get("Retry-After") and HEX32.match(r.get("X-Request-Id")), r
        assert set(seen[:-1]) == {200}, seen
        # what is not inspected needs no proof: it still passes
        c = env.client(px)
        c.send(request("GET", "/status"))
        assert c.read_response().status == 200
        m = metrics(px)
        assert m["consentgate_decision_log_queue_lines"] >= 2, m
        assert m["consentgate_decision_log_refused_total"] >= 1, m
        assert m["consentgate_decision_log_dropped_total"] == 0, m
    finally:
        os.close(fd)  # the writer gets EPIPE and the proxy can stop


@test
def drop_mode_drops_and_counts_lines(env):
    px, fd = stalled_proxy(env, decision_log_full="drop")
    try:
        c = env.client(px)
        for _ in range(60):
            assert ingest(c, BIG).status == 200
        m = metrics(px)
        assert m["consentgate_decision_log_dropped_total"] > 0, m
        assert m["consentgate_decision_log_refused_total"] == 0, m
    finally:
        os.close(fd)


@test
def a_stuck_decision_log_does_not_hang_shutdown(env):
    """SIGTERM while the decision log's writer is stuck (a FIFO nobody
    reads) with lines queued: the proxy waits while the writer makes no
    progress for 10 s, then exits with status 1 and says how many lines
    were not written, instead of hanging until SIGKILL."""
    px, fd = stalled_proxy(env)
    try:
        r, seen = fill(env, px, 503)
        assert r is not None, seen
        t0 = time.monotonic()
        px.signal(signal.SIGTERM)
        rc = px.wait(30)
        took = time.monotonic() - t0
        text = b"".join(px.stderr)
        assert rc == 1, (rc, text[-400:])
        assert took >= 9, took  # a stuck writer is given its 10 s
        assert re.search(rb"log .*stalled\.fifo: its writer has written "
                         rb"nothing for 10 s; exiting without the \d+ "
                         rb"lines still queued", text), text[-400:]
    finally:
        os.close(fd)


@test
def decision_log_full_must_be_refuse_or_drop(env):
    up = env.upstream()
    cfg = os.path.join(env.workdir, "c.json")
    with open(cfg, "w") as f:
        json.dump({"decision_log_full": "block"}, f)
    out = subprocess.run([CONSENTGATE, "serve", "--check", "--config", cfg,
                          "--upstream", up.url, "--policy", "x",
                          "--consent", "y"], capture_output=True, timeout=30)
    assert out.returncode != 0 and b"decision_log_full" in out.stderr, out


def with_both_logs(env):
    """An upstream and a proxy writing both logs: (upstream, proxy,
    decision log, access log)."""
    up = env.upstream()
    log = os.path.join(env.workdir, "d.jsonl")
    acc = os.path.join(env.workdir, "a.jsonl")
    px = env.proxy(up.url, consent=CONSENT,
                   extra=["--decision-log", log, "--access-log", acc])
    return up, px, log, acc


@test
def sigusr1_reopens_both_logs(env):
    up, px, log, acc = with_both_logs(env)
    c = env.client(px)
    assert ingest(c, b'{"author_id":"1001"}\n').status == 200
    read_lines(log, 1)
    read_lines(acc, 1)
    os.rename(log, log + ".1")
    os.rename(acc, acc + ".1")
    px.signal(signal.SIGUSR1)
    assert wait_until(lambda: os.path.exists(log) and os.path.exists(acc),
                      5), "logs not reopened"
    assert ingest(c, b'{"author_id":"1006"}\n').status == 200
    assert len(read_lines(log, 1)) == 1 and len(read_lines(acc, 1)) == 1
    assert len(open(log + ".1").read().splitlines()) == 1
    assert len(open(acc + ".1").read().splitlines()) == 1


@test
def request_ids_are_taken_made_passed_on_and_returned(env):
    up, px, log, acc = with_both_logs(env)
    c = env.client(px)
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    cases = [
        ([("X-Request-Id", "client-id-1")], "client-id-1"),
        ([("traceparent", "00-%s-00f067aa0ba902b7-01" % trace)], trace),
        # X-Request-Id wins over traceparent
        ([("X-Request-Id", "both"),
          ("traceparent", "00-%s-00f067aa0ba902b7-01" % trace)], "both"),
        ([("X-Request-Id", "has space")], None),
        ([("X-Request-Id", "x" * 129)], None),
        ([("traceparent", "00-%s-00f067aa0ba902b7-01" % ("0" * 32))], None),
        ([("traceparent", "00-%s-00f067aa0ba902b7" % trace)], None),
        ([], None),
    ]
    ids = []
    for n, (headers, want) in enumerate(cases, 1):
        r = ingest(c, b'{"author_id":"1001"}\n', headers)
        assert r.status == 200, r
        got = r.get("X-Request-Id")
        assert len(r.get_all("X-Request-Id")) == 1, r
        if want is None:
            assert HEX32.match(got or ""), (headers, got)
        else:
            assert got == want, (headers, got)
        sent = up.request(n)
        assert sent.get_all("X-Request-Id") == [got], sent.headers
        ids.append(got)
    assert len(set(ids)) == len(ids), ids
    # a 204 and a problem carry one too
    r = ingest(c, b'{"author_id":"1002"}\n', [("X-Request-Id", "dropped")])
    assert r.status == 204 and r.get("X-Request-Id") == "dropped", r
    c.send(request("GET", "/nowhere", [("X-Request-Id", "lost")]))
    r = c.read_response()
    assert r.status == 404 and r.get("X-Request-Id") == "lost", r
    # the same id in both logs
    decisions = read_lines(log, len(cases) + 1)
    assert [d["request_id"] for d in decisions] == ids + ["dropped"]
    access = read_lines(acc, len(cases) + 2)
    assert [a["request_id"] for a in access] == ids + ["dropped", "lost"]


@test
def access_log_lines_carry_the_fields(env):
    up = env.upstream()
    acc = os.path.join(env.workdir, "a.jsonl")
    px = env.proxy(up.url, consent=CONSENT, extra=["--access-log", acc])
    c = env.client(px)
    body = b'{"author_id":"1001"}\n{"author_id":"1002"}\n'
    raw = request("POST", "/ingest", [("Content-Type", NDJSON)], body)
    c.send(raw)
    r = c.read_response()
    assert r.status == 200, r
    c.send(request("GET", "/nowhere"))
    assert c.read_response().status == 404
    a, b = read_lines(acc, 2)
    assert a["method"] == "POST" and a["path"] == "/ingest", a
    assert a["route"] == "ingest" and a["status"] == 200, a
    assert a["client"] == "127.0.0.1" and HEX32.match(a["request_id"]), a
    assert a["bytes_in"] == len(raw), (a, len(raw))
    assert a["bytes_out"] == len(r.raw), (a, len(r.raw))
    assert 0 <= a["upstream_ms"] <= a["total_ms"], a
    assert re.search(r'"total_ms":\d+\.\d{3}[,}]',
                     open(acc).read().splitlines()[0]), a
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", a["time"])
    assert b["status"] == 404 and b["route"] is None, b
    assert b["upstream_ms"] is None and b["path"] == "/nowhere", b


@test
def verbose_writes_access_lines_and_the_start_line_says_what_runs(env):
    up = env.upstream()
    px = env.proxy(up.url, consent=CONSENT, extra=["-v"])
    c = env.client(px)
    assert ingest(c, b'{"author_id":"1001"}\n',
                  [("X-Request-Id", "verbose-1")]).status == 200

    def access_line():
        for line in px.stderr:
            if b'"request_id":"verbose-1"' in line:
                return json.loads(line)
        return None

    assert wait_until(lambda: access_line() is not None, 5), px.stderr
    assert access_line()["status"] == 200
    start = [l for l in px.stderr if b"consentgate: listening on" in l][0]
    assert re.search(rb"policy \S+ digest [0-9a-f]{16}; consent snapshot "
                     rb"\d+", start), start


if __name__ == "__main__":
    main()
