"""test_cli.py: the binary's other faces: `demo`, `serve --check`,
configuration files and flags, the shipped example policy and consent table.
"""

import json
import os
import re
import subprocess
import time

from harness import (CONSENTGATE, ROOT, Proxy, _readline_timeout, _stop,
                     free_port, main, test, wait_until)

EXAMPLE_POLICY = os.path.join(ROOT, "policy", "examples", "ai-training.json")
EXAMPLE_CONSENT = os.path.join(ROOT, "tests", "data", "consent-example.csv")
DEMO_BATCH = os.path.join(ROOT, "tests", "data", "demo-batch.ndjson")


def demo_expected():
    """The demo batch says in each record's text what must happen to it."""
    kept, dropped = [], 0
    with open(DEMO_BATCH, "rb") as f:
        for line in f.read().splitlines():
            if not line.strip():
                continue
            if json.loads(line)["text"].endswith(": forwarded"):
                kept.append(line)
            else:
                dropped += 1
    return kept, dropped


class Demo:
    def __init__(self, upstream_listen):
        self.proc = subprocess.Popen(
            [CONSENTGATE, "demo", "--listen", "127.0.0.1:0",
             "--upstream-listen", upstream_listen],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.port = None
        deadline = time.monotonic() + 5
        self.lines = []
        while time.monotonic() < deadline:
            line = _readline_timeout(self.proc.stderr, deadline - time.monotonic())
            if not line:
                break
            self.lines.append(line)
            m = re.search(rb"consentgate: listening on 127\.0\.0\.1:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                break
        assert self.port, "demo did not start: %r" % b"".join(self.lines)[-300:]

    def stop(self):
        _stop(self.proc, 15, 3)


def curl(*args):
    out = subprocess.run(["curl", "-sS", "-i", "--max-time", "5"] + list(args),
                         capture_output=True, timeout=10)
    return out


def demo_run(env, upstream_listen):
    d = Demo(upstream_listen)
    env.procs.append(d)
    out = curl("http://127.0.0.1:%d/status" % d.port)
    assert out.returncode == 0 and out.stdout.startswith(b"HTTP/1.1 200"), \
        "GET /status: %r" % out.stdout[:200]
    out = curl("http://127.0.0.1:%d/ingest" % d.port, "-H",
               "Content-Type: application/x-ndjson", "--data-binary", "@" + DEMO_BATCH)
    kept, dropped = demo_expected()
    assert out.stdout.startswith(b"HTTP/1.1 200"), "POST /ingest: %r" % out.stdout[:300]
    m = re.search(rb"(?im)^consent-result:\s*kept=(\d+),\s*dropped=(\d+)", out.stdout)
    assert m and (int(m.group(1)), int(m.group(2))) == (len(kept), dropped), \
        "Consent-Result %r, want kept=%d, dropped=%d" % (
            m.group(0) if m else None, len(kept), dropped)


@test
def demo_fixed_ports(env):
    demo_run(env, "127.0.0.1:%d" % free_port())


@test
def demo_ephemeral_upstream_port(env):
    """`--upstream-listen 127.0.0.1:0` must forward to the port it got."""
    demo_run(env, "127.0.0.1:0")


@test
def example_policy_through_serve(env):
    """The shipped policy and consent table decide the demo batch as its
    texts say, and the upstream receives exactly the kept lines."""
    up = env.upstream()
    with open(EXAMPLE_POLICY) as f:
        policy = json.load(f)
    with open(EXAMPLE_CONSENT) as f:
        consent = f.read()
    px = env.proxy(up.url, policy=policy, consent=consent)
    with open(DEMO_BATCH, "rb") as f:
        body = f.read()
    c = env.client(px)
    c.send(b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n"
           b"Content-Length: %d\r\n\r\n" % len(body) + body)
    r = c.read_response()
    kept, dropped = demo_expected()
    assert r.status == 200, r
    assert r.get("Consent-Result").replace(" ", "") == "kept=%d,dropped=%d" % (
        len(kept), dropped), r.headers
    assert up.request(1).body == b"".join(k + b"\n" for k in kept), up.request(1).body


def serve_check(args, cwd=None):
    return subprocess.run([CONSENTGATE, "serve", "--check"] + args, cwd=cwd,
                          capture_output=True, timeout=10)


@test
def serve_check_good_and_bad(env):
    base = ["--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:9",
            "--consent", EXAMPLE_CONSENT]
    out = serve_check(base + ["--policy", EXAMPLE_POLICY])
    assert out.returncode == 0, out.stderr
    assert b"configuration OK" in out.stdout + out.stderr, out
    bad = os.path.join(env.workdir, "bad.json")
    with open(EXAMPLE_POLICY) as f:
        text = f.read()
    with open(bad, "w") as f:
        f.write(text.replace('"purpose": "ai-training"', '"purpose": "ai-trainig"'))
    out = serve_check(base + ["--policy", bad])
    assert out.returncode != 0, "a policy with an unknown purpose passed --check"
    assert re.search(rb"bad\.json:\d+:\d+:", out.stderr), out.stderr
    csv = os.path.join(env.workdir, "bad.csv")
    with open(csv, "w") as f:
        f.write("subject,purpose,status,jurisdiction,updated_at\n"
                "a,ai-training,granted,DE,2025-01-01T00:00:00Z\n"
                "b,ai-training,perhaps,DE,2025-01-01T00:00:00Z\n")
    out = serve_check(["--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:9",
                       "--policy", EXAMPLE_POLICY, "--consent", csv])
    assert out.returncode != 0, "a bad consent row passed --check"
    assert re.search(rb"bad\.csv:3", out.stderr), out.stderr


@test
def serve_refuses_to_start_on_bad_files(env):
    up = env.upstream()
    bad = {"policy": "x", "routes": [{"method": "GET", "path": "/a",
                                      "action": "teleport"}], "rules": []}
    try:
        p = Proxy(env.workdir, up.url, policy=bad)
    except AssertionError:
        return  # refused to start: right
    env.procs.append(p)
    raise AssertionError("serve started with an invalid rule file")


@test
def flags_override_config(env):
    up = env.upstream()
    # The file names an unusable listen address; the flag must win.
    px = env.proxy(up.url, config={"listen": "127.0.0.1:1",
                                   "upstream": "http://127.0.0.1:9",
                                   "head_timeout_ms": 5000})
    c = env.client(px)
    c.send(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
    r = c.read_response()
    assert r.status == 200 and r.body == b"ok\n", "flag --upstream lost to the file: %r" % r


@test
def version_and_help(env):
    out = subprocess.run([CONSENTGATE, "--version"], capture_output=True, timeout=5)
    assert out.returncode == 0 and re.match(rb"consentgate \d+\.\d+\.\d+", out.stdout), out
    out = subprocess.run([CONSENTGATE, "serve", "--help"], capture_output=True, timeout=5)
    assert out.returncode == 0 and b"--upstream" in out.stdout + out.stderr, out
    out = subprocess.run([CONSENTGATE, "serve", "--no-such-flag"], capture_output=True,
                         timeout=5)
    assert out.returncode != 0, "unknown flag accepted"


if __name__ == "__main__":
    main()
