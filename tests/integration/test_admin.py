"""test_admin.py: the admin listener as an operator uses it: POST /reload
(the same reload as SIGHUP) with its result or its errors, readiness that
turns false while draining, problem+json for unknown paths and methods,
the build in /metrics, and reloads under load that lose no request.
"""

import json
import os
import re
import signal
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


if __name__ == "__main__":
    main()
