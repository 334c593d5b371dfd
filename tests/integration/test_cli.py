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


# ---------------------------------------------------- what a start refuses

def serve_args(port, *extra):
    return [CONSENTGATE, "serve", "--listen", "127.0.0.1:%d" % port,
            "--upstream", "http://127.0.0.1:9", "--policy", EXAMPLE_POLICY,
            "--consent", EXAMPLE_CONSENT] + list(extra)


def held_port(reuseport):
    """A loopback port some other process holds, as a listening socket
    (with SO_REUSEPORT: what a second consentgate would share)."""
    import socket
    s = socket.socket()
    if reuseport:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    return s, s.getsockname()[1]


def refused_start(args):
    """Run serve to its end (it must not start); its exit code and stderr."""
    try:
        out = subprocess.run(args, capture_output=True, timeout=10)
    except subprocess.TimeoutExpired:
        raise AssertionError("serve started on an address in use: %r" % args)
    return out.returncode, out.stderr


@test
def serve_refuses_an_address_in_use(env):
    """Another listener on --listen, even one sharing it through
    SO_REUSEPORT, stops serve with "address already in use": two
    instances with different policies must never split the traffic."""
    for reuseport in (False, True):
        sock, port = held_port(reuseport)
        try:
            rc, err = refused_start(serve_args(port, "--workers", "2"))
        finally:
            sock.close()
        assert rc != 0, "started next to a listener (SO_REUSEPORT=%s)" % reuseport
        assert b"address already in use" in err.lower(), err
        assert b"listening on" not in err, err
    # the admin listener's address too, at start and in --check
    sock, port = held_port(True)
    try:
        rc, err = refused_start(serve_args(0, "--admin", "127.0.0.1:%d" % port))
        out = serve_check(serve_args(0, "--admin", "127.0.0.1:%d" % port)[4:])
    finally:
        sock.close()
    assert rc != 0 and re.search(rb"--admin: .*address already in use", err), err
    assert out.returncode != 0 and b"address already in use" in out.stderr, out.stderr


@test
def second_consentgate_on_the_same_address_refused(env):
    """The case that bit a user: an old instance still runs; the new one
    must refuse instead of taking half its traffic."""
    up = env.upstream()
    px = env.proxy(up.url, config={"workers": 2})
    rc, err = refused_start(serve_args(px.port))
    assert rc != 0 and b"address already in use" in err.lower(), err
    c = env.client(px)  # the first one still serves
    c.send(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
    assert c.read_response().status == 200


@test
def serve_check_catches_what_a_start_would_fail_on(env):
    sock, port = held_port(True)
    try:
        out = serve_check(["--listen", "127.0.0.1:%d" % port] +
                          serve_args(0)[4:])
    finally:
        sock.close()
    assert out.returncode != 0, "--check passed on a port in use"
    assert b"address already in use" in out.stderr.lower(), out.stderr
    assert b"configuration OK" not in out.stdout, out.stdout

    # --admin on the --listen address
    out = serve_check(serve_args(0)[4:] + ["--listen", "127.0.0.1:18000",
                                            "--admin", "127.0.0.1:18000"])
    assert out.returncode != 0 and re.search(rb"--admin: .*--listen",
                                             out.stderr), out.stderr
    out = serve_check(serve_args(0)[4:] + ["--listen", "0.0.0.0:18000",
                                            "--admin", "127.0.0.1:18000"])
    assert out.returncode != 0 and b"--admin" in out.stderr, out.stderr

    # a decision log that cannot be opened: a directory, a missing one
    for log in (env.workdir, os.path.join(env.workdir, "no", "such.jsonl")):
        out = serve_check(serve_args(0)[4:] + ["--decision-log", log])
        assert out.returncode != 0, "--check passed with --decision-log %s" % log
        assert b"--decision-log" in out.stderr, out.stderr
    # and nothing was created by checking a good one
    good = os.path.join(env.workdir, "d.jsonl")
    out = serve_check(serve_args(0)[4:] + ["--decision-log", good])
    assert out.returncode == 0, out.stderr
    assert not os.path.exists(good), "--check created the decision log"

    # a real start fails the same way
    rc, err = refused_start(serve_args(0, "--decision-log", env.workdir))
    assert rc != 0 and b"decision-log" in err, err


@test
def config_paths_are_relative_to_the_config_file(env):
    conf = os.path.join(env.workdir, "etc")
    os.makedirs(conf)
    with open(EXAMPLE_POLICY) as f, open(os.path.join(conf, "p.json"), "w") as g:
        g.write(f.read())
    with open(EXAMPLE_CONSENT) as f, open(os.path.join(conf, "c.csv"), "w") as g:
        g.write(f.read())
    cfg = os.path.join(conf, "cg.json")
    with open(cfg, "w") as f:
        json.dump({"listen": "127.0.0.1:0", "upstream": "http://127.0.0.1:9",
                   "policy": "p.json", "consent": "c.csv",
                   "decision_log": "decisions.jsonl"}, f)
    for cwd, path in ((env.workdir, "etc/cg.json"), ("/", cfg)):
        out = serve_check(["--config", path], cwd=cwd)
        assert out.returncode == 0, (cwd, out.stderr)
    # a real start opens the decision log next to the config file
    up = env.upstream()
    proc = subprocess.Popen([CONSENTGATE, "serve", "--config", "etc/cg.json",
                             "--upstream", up.url], cwd=env.workdir,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        line = _readline_timeout(proc.stderr, 5) or b""
        assert b"listening on" in line, line
        assert os.path.exists(os.path.join(conf, "decisions.jsonl")), \
            os.listdir(conf)
    finally:
        _stop(proc, 15, 3)


@test
def config_errors_carry_line_and_column(env):
    cfg = os.path.join(env.workdir, "cg.json")
    with open(cfg, "w") as f:
        f.write('{\n  "listen": "127.0.0.1:0",\n  "workres": 2,\n'
                '  "pool_size": "64"\n}\n')
    out = serve_check(serve_args(0)[2:] + ["--config", cfg])
    assert out.returncode != 0
    assert re.search(rb"cg\.json:3:3: unknown setting \"workres\"", out.stderr), \
        out.stderr
    assert re.search(rb"cg\.json:4:16: \"pool_size\" must be an integer",
                     out.stderr), out.stderr
    with open(cfg, "w") as f:
        f.write('{\n  "listen": "127.0.0.1:0",\n  "workers" 2\n}\n')
    out = serve_check(serve_args(0)[2:] + ["--config", cfg])
    assert out.returncode != 0
    assert re.search(rb"cg\.json:3:\d+: ", out.stderr), out.stderr


@test
def admin_on_an_ephemeral_port_counts_reloads(env):
    """--admin HOST:0 works and says the port it got (no test needs a
    fixed port to be free); /metrics counts reloads by result and names the
    snapshot generation in use."""
    import signal
    import urllib.request
    up = env.upstream()
    px = env.proxy(up.url, extra=["--admin", "127.0.0.1:0"])
    m = None
    assert wait_until(lambda: any(re.search(rb"admin on 127\.0\.0\.1:\d+ \(port (\d+)\)", l)
                                  for l in px.stderr), 3), px.stderr
    for l in px.stderr:
        m = m or re.search(rb"admin on 127\.0\.0\.1:\d+ \(port (\d+)\)", l)
    url = "http://127.0.0.1:%d/metrics" % int(m.group(1))
    body = urllib.request.urlopen(url, timeout=5).read()
    assert b"consentgate_requests_total" in body, body[:200]

    # reloads are counted, and the generation says which snapshot runs
    def metric(name):
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        m = re.search(r"(?m)^%s (\d+)$" % re.escape(name), text)
        assert m, "no %s in %s" % (name, text[-400:])
        return int(m.group(1))

    ok, failed = ('consentgate_reloads_total{result="ok"}',
                  'consentgate_reloads_total{result="failed"}')
    gen = "consentgate_snapshot_generation"
    assert (metric(ok), metric(failed), metric(gen)) == (0, 0, 1)
    px.signal(signal.SIGHUP)
    assert wait_until(lambda: metric(ok) == 1, 3), "reload not counted"
    assert metric(gen) == 2
    with open(px.policy_path, "w") as f:
        f.write('{"policy": "broken"')
    px.signal(signal.SIGHUP)
    assert wait_until(lambda: metric(failed) == 1, 3), "failed reload not counted"
    assert (metric(ok), metric(gen)) == (1, 2)


if __name__ == "__main__":
    main()
