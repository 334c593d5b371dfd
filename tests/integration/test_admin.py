"""test_admin.py: the admin listener as an operator uses it: POST /reload
(the same reload as SIGHUP) with its result or its errors, readiness that
turns false while draining, problem+json for unknown paths and methods,
the build in /metrics, and reloads under load (our own clients, and wrk)
that lose no request.
"""

import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

from harness import (Client, admin_port, main, request, test, test_policy,
                     wait_until)

CONSENT = ("subject,purpose,status,jurisdiction,updated_at,evidence\n"
           "u1,ai-training,granted,US,2025-03-01T12:00:00Z,ev-1\n")
BODY = b'{"author_id":"u1"}\n{"author_id":"nobody"}\n'


def call(port, method, path, timeout=10):
    """(status, headers, body) of one admin request."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path),
                                 method=method, data=b"" if method == "POST"
                                 else None)
    try:
        r = urllib.request.urlopen(req, timeout=timeout)
        return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def start(env, policy=None, config=None):
    up = env.upstream()
    px = env.proxy(up.url, policy=policy, consent=CONSENT, config=config,
                   extra=["--admin", "127.0.0.1:0"])
    return up, px, admin_port(px)


def write_policy(px, doc):
    tmp = px.policy_path + ".tmp"
    with open(tmp, "w") as f:
        f.write(doc if isinstance(doc, str) else json.dumps(doc))
    os.rename(tmp, px.policy_path)


def metric(port, name):
    _, _, body = call(port, "GET", "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[-1]))
    raise AssertionError("no %s in /metrics" % name)


@test
def post_reload_swaps_and_reports(env):
    up, px, port = start(env)
    pol = test_policy()
    pol["policy"] = "second-version"
    write_policy(px, pol)
    status, headers, body = call(port, "POST", "/reload")
    assert status == 200, (status, body)
    doc = json.loads(body)
    assert doc["reloaded"] is True and doc["policy"] == "second-version", doc
    assert doc["generation"] == 2 and len(doc["digest"]) == 16, doc
    assert metric(port, 'consentgate_reloads_total{result="ok"}') == 1
    c = px.connect()
    c.send(request("POST", "/ingest", [("Content-Type",
                                        "application/x-ndjson")], BODY))
    r = c.read_response()
    assert r.status == 200, r
    # the upstream is told which policy decided
    assert "second-version" in up.request(1).get("Consent-Policy"), \
        up.request(1).headers
    assert any(b"reloaded policy and consent table (generation 2)" in l
               for l in px.stderr)


@test
def post_reload_refuses_a_broken_policy(env):
    up, px, port = start(env)
    write_policy(px, '{"policy": "broken",\n  "routes": [}\n')
    status, headers, body = call(port, "POST", "/reload")
    assert status == 422, (status, body)
    assert headers["Content-Type"] == "application/problem+json"
    doc = json.loads(body)
    assert doc["status"] == 422 and doc["errors"], doc
    assert re.search(r"policy-\d+\.json:2:\d+: ", doc["errors"][0]), doc
    assert metric(port, 'consentgate_reloads_total{result="failed"}') == 1
    # the running policy keeps deciding
    c = px.connect()
    c.send(request("POST", "/ingest", [("Content-Type",
                                        "application/x-ndjson")], BODY))
    r = c.read_response()
    assert r.status == 200 and r.get("Consent-Result") == \
        "kept=1, dropped=1", r
    assert up.request(1).body == b'{"author_id":"u1"}\n'


@test
def admin_methods_and_unknown_paths_are_problems(env):
    up, px, port = start(env)
    for method, path, status, allow in (("GET", "/reload", 405, "POST"),
                                        ("POST", "/metrics", 405,
                                         "GET, HEAD"),
                                        ("GET", "/nowhere", 404, None)):
        s, h, body = call(port, method, path)
        assert s == status, (method, path, s, body)
        assert h["Content-Type"] == "application/problem+json", h
        assert json.loads(body)["status"] == status
        assert h.get("Allow") == allow, (path, h.get("Allow"))
    _, _, body = call(port, "GET", "/metrics")
    assert re.search(rb'^consentgate_build_info\{version="[^"]+",'
                     rb'commit="[^"]+"\} 1$', body, re.M), body[-300:]


@test
def readyz_false_while_draining(env):
    up, px, port = start(env, config={"drain_timeout_ms": 4000})
    s, _, body = call(port, "GET", "/readyz")
    assert s == 200 and body.startswith(b"ready"), (s, body)
    c = px.connect()
    c.send(request("GET", "/hang"))  # holds the drain open
    time.sleep(0.3)
    px.signal(signal.SIGTERM)
    assert wait_until(lambda: call(port, "GET", "/readyz", 2)[0] == 503, 3)
    s, _, body = call(port, "GET", "/readyz")
    assert b"draining" in body, body


@test
def reloads_under_load_lose_no_request(env):
    """Two keep-alive clients send while POST /reload and SIGHUP alternate:
    every request is answered, and by one policy or the other."""
    up, px, port = start(env)
    results, errors = [], []
    stop = time.monotonic() + 4

    def load(kind):
        c = Client(px.port)
        for i in range(400):  # bounded in count and time
            if time.monotonic() > stop:
                break
            try:
                if kind == "get":
                    c.send(request("GET", "/ok?i=%d" % i))
                else:
                    c.send(request("POST", "/ingest", [
                        ("Content-Type", "application/x-ndjson")], BODY))
                results.append((kind, c.read_response().status))
            except Exception as e:  # a lost request
                errors.append("%s %d: %r" % (kind, i, e))
                c = Client(px.port)
        c.close()

    threads = [threading.Thread(target=load, args=(k,))
               for k in ("get", "post")]
    for t in threads:
        t.start()
    for i in range(6):
        time.sleep(0.4)
        if i % 2:
            px.signal(signal.SIGHUP)
        else:
            s, _, body = call(port, "POST", "/reload")
            assert s == 200, (s, body)
    for t in threads:
        t.join(10)
    assert not errors, errors[:5]
    assert len(results) > 20, len(results)
    bad = [r for r in results if r[1] != 200]
    assert not bad, bad[:5]
    assert wait_until(lambda: metric(
        port, 'consentgate_reloads_total{result="ok"}') == 6, 5)
    posts = sum(1 for k, _ in results if k == "post")
    assert sum(1 for r in up.requests()
               if r.request_line.startswith(b"POST")) == posts


@test
def reloads_under_wrk_lose_no_request(env):
    """wrk (the load generator the bench uses) on 16 keep-alive
    connections, GETs and inspected NDJSON POSTs side by side, while
    POST /reload and SIGHUP alternate 8 times: no socket error, no status
    but 200, and the upstream saw every POST wrk counted."""
    up, px, port = start(env)
    here = os.path.dirname(os.path.abspath(__file__))
    lua = os.path.join(here, "..", "..", "bench", "wrk", "load.lua")
    body = os.path.join(env.workdir, "wrk-body.ndjson")
    with open(body, "wb") as f:
        f.write(BODY)
    url = "http://127.0.0.1:%d" % px.port
    common = ["wrk", "-t1", "-c8", "-d4s", "--timeout", "5s", "-s", lua]
    runs = [
        subprocess.Popen(common + [url + "/ok"], stdout=subprocess.PIPE,
                         env=dict(os.environ, BENCH_METHOD="GET")),
        subprocess.Popen(common + [url + "/ingest"], stdout=subprocess.PIPE,
                         env=dict(os.environ, BENCH_METHOD="POST",
                                  BENCH_BODY=body,
                                  BENCH_HEADERS="Content-Type: "
                                  "application/x-ndjson"))]
    try:
        for i in range(8):
            time.sleep(0.4)
            if i % 2:
                px.signal(signal.SIGHUP)
            else:
                s, _, b = call(port, "POST", "/reload")
                assert s == 200, (s, b)
        outs = [r.communicate(timeout=20)[0].decode() for r in runs]
    finally:
        for r in runs:
            if r.poll() is None:
                r.kill()
                r.wait()
    counts = []
    for name, out in zip(("GET", "POST"), outs):
        line = [l for l in out.splitlines() if l.startswith("WRKRESULT")]
        assert line, out
        f = line[0].split("\t")
        reqs, errors, non2xx = int(f[1]), sum(map(int, f[4:7] + f[8:9])), \
            int(f[7])
        assert errors == 0 and non2xx == 0, (name, out)
        assert reqs > 50, (name, reqs)
        counts.append(reqs)
    assert wait_until(lambda: metric(
        port, 'consentgate_reloads_total{result="ok"}') == 8, 5)
    # wrk counts the responses it read; a request in flight when its 4 s
    # ran out reached the upstream uncounted (at most one per connection)
    posts = sum(1 for r in up.requests()
                if r.request_line.startswith(b"POST"))
    assert counts[1] <= posts <= counts[1] + 8, (counts[1], posts)


def shadow_policy(block=False, whole=False):
    pol = test_policy()
    for r in pol["routes"]:
        if r.get("name") == "ingest":
            if not whole:
                r["shadow"] = True
            if block:
                r["on_deny"] = "block"
    if whole:
        pol["shadow"] = True
    return pol


def ingest(px, body, headers=(("Content-Type", "application/x-ndjson"),)):
    c = px.connect()
    c.send(request("POST", "/ingest", list(headers), body))
    return c.read_response()


@test
def shadow_forwards_everything_and_says_what_would_happen(env):
    """A policy rolled out in shadow mode decides, logs and counts, but
    the upstream gets every request as it came."""
    import gzip
    up = env.upstream()
    log = os.path.join(env.workdir, "decisions.jsonl")
    px = env.proxy(up.url, policy=shadow_policy(), consent=CONSENT,
                   extra=["--admin", "127.0.0.1:0", "--decision-log", log])
    port = admin_port(px)
    # kept one, dropped one: both forwarded
    r = ingest(px, BODY)
    assert r.status == 200, r
    assert r.get("Consent-Result") == "kept=1, dropped=1, shadow", r.headers
    assert up.request(1).body == BODY
    assert up.request(1).get("Consent-Result") == \
        "kept=1, dropped=1, shadow"
    # every record denied: still forwarded, no 204
    only_denied = b'{"author_id":"nobody"}\n'
    r = ingest(px, only_denied)
    assert r.status == 200 and up.request(2).body == only_denied, r
    assert r.get("Consent-Result") == "kept=0, dropped=1, shadow"
    # a malformed record: forwarded, the refusal it would get named
    bad = b'{"author_id":"u1"}\n{"author_id":\n'
    r = ingest(px, bad)
    assert r.status == 200 and up.request(3).body == bad, r
    assert r.get("Consent-Result") == "refused=422, shadow", r.headers
    # gzip: the compressed bytes go upstream with their Content-Encoding
    z = gzip.compress(BODY)
    r = ingest(px, z, (("Content-Type", "application/x-ndjson"),
                       ("Content-Encoding", "gzip")))
    assert r.status == 200, r
    assert up.request(4).body == z
    assert up.request(4).get("Content-Encoding") == "gzip"
    assert r.get("Consent-Result") == "kept=1, dropped=1, shadow"
    assert metric(port,
                  'consentgate_inspected_requests_total{outcome="shadow"}') == 4
    px.stop()
    lines = [json.loads(l) for l in open(log)]
    assert [l["outcome"] for l in lines] == ["shadow"] * 4, lines
    assert [l["status"] for l in lines] == [200, 204, 422, 200], lines
    assert lines[0]["dropped"] == 1 and lines[0]["decisions"], lines[0]


@test
def shadow_block_route_forwards_what_it_would_block(env):
    up = env.upstream()
    px = env.proxy(up.url, policy=shadow_policy(block=True), consent=CONSENT)
    r = ingest(px, BODY)
    assert r.status == 200 and up.request(1).body == BODY, r
    assert r.get("Consent-Result") == "refused=403, shadow", r.headers


@test
def shadow_for_the_whole_policy_then_for_real(env):
    """check and the log (at start, and at a reload into shadow mode) warn
    about shadow mode; a reload without it enforces."""
    up, px, port = start(env, policy=shadow_policy(whole=True))
    out = subprocess.run([os.environ["CONSENTGATE"], "check",
                          px.policy_path], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, timeout=10).stdout
    assert b"is in shadow mode" in out, out

    def warned():
        return [l for l in px.stderr if b" warn consentgate: policy: " in l
                and b"shadow mode" in l]
    assert wait_until(lambda: len(warned()) > 0, 5), px.stderr[-3:]
    time.sleep(0.2)  # every warning of the start is in
    n = len(warned())
    assert ingest(px, BODY).get("Consent-Result").endswith(", shadow")
    pol = shadow_policy(whole=True)
    del pol["shadow"]
    write_policy(px, pol)
    s, _, body = call(port, "POST", "/reload")
    assert s == 200, body
    assert wait_until(lambda: any(b"reloaded policy" in l
                                  for l in px.stderr), 5)
    assert len(warned()) == n, "warned without shadow mode"
    r = ingest(px, BODY)
    assert r.get("Consent-Result") == "kept=1, dropped=1", r.headers
    assert up.request(2).body == b'{"author_id":"u1"}\n'


@test
def post_reload_reopens_both_logs(env):
    """POST /reload does what SIGHUP does, the logs' reopening included
    (logrotate's postrotate may call either)."""
    up = env.upstream()
    log = os.path.join(env.workdir, "d.jsonl")
    acc = os.path.join(env.workdir, "a.jsonl")
    px = env.proxy(up.url, consent=CONSENT,
                   extra=["--admin", "127.0.0.1:0", "--decision-log", log,
                          "--access-log", acc])
    port = admin_port(px)
    assert ingest(px, BODY).status == 200
    assert wait_until(lambda: os.path.exists(log) and os.path.exists(acc)
                      and open(acc).read().count("\n") == 1, 5)
    os.rename(log, log + ".1")
    os.rename(acc, acc + ".1")
    s, _, body = call(port, "POST", "/reload")
    assert s == 200, body
    assert os.path.exists(log) and os.path.exists(acc), "not reopened"
    assert ingest(px, BODY).status == 200
    assert wait_until(lambda: open(log).read().count("\n") == 1 and
                      open(acc).read().count("\n") == 1, 5)
    assert open(log + ".1").read().count("\n") == 1
    assert open(acc + ".1").read().count("\n") == 1


if __name__ == "__main__":
    main()
