"""test_tls.py: TLS and mutual TLS on both sides of consentgate, against
real peers: Python's ssl and curl as clients, the recording test upstream
behind a TLS listener, and gunicorn (Debian) as an https:// upstream that
can require a client certificate. Certificates are made by the openssl
command line (tlsfiles.py), as the README shows.
"""

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time

from harness import (IO_TIMEOUT, Client, Nginx, check_problem, main,
                     request, test, test_policy, wait_until)
from tlsfiles import Certs

HERE = os.path.dirname(os.path.abspath(__file__))
GUNICORN_PY = "/usr/bin/python3"  # Debian's, with Debian's gunicorn
_certs = None


def certs():
    """The suite's certificates, made once."""
    global _certs
    if _certs is None:
        import tempfile
        _certs = Certs(tempfile.mkdtemp(prefix="cg-tls-certs-"))
    return _certs


def tls_policy():
    pol = test_policy()
    pol["routes"] = [
        {"name": "poster-only", "method": "*", "path_prefix": "/echo/only",
         "action": "pass", "clients": ["uri:spiffe://example.org/poster"]},
        {"name": "ingest-poster", "method": "POST", "path": "/ingest-mtls",
         "action": "inspect", "purpose": "ai-training",
         "formats": ["ndjson"], "subjects": ["/author_id"],
         "on_deny": "drop", "clients": ["dns:poster.internal"]},
    ] + pol["routes"]
    return pol


def proxy_tls(env, up_url, mtls=False, extra=(), config=None, policy=None):
    c = certs()
    args = ["--tls-cert", c.server[0], "--tls-key", c.server[1]]
    if mtls:
        args += ["--tls-client-ca", c.ca]
    if policy is None:
        policy = tls_policy() if mtls else test_policy()
    return env.proxy(up_url, policy=policy,
                     extra=tuple(args) + tuple(extra), config=config)


def client_ctx(cert=None, alpn=("http/1.1",)):
    ctx = ssl.create_default_context(cafile=certs().ca)
    if cert:
        ctx.load_cert_chain(cert[0], cert[1])
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


class TLSClient(Client):
    """A harness Client over TLS (the same response parser)."""

    def __init__(self, port, ctx, timeout=IO_TIMEOUT, session=None):
        raw = socket.create_connection(("127.0.0.1", port), timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost",
                                    session=session)
        self.sock.settimeout(timeout)
        self.buf = bytearray()
        self.eof = False


def handshake_fails(port, ctx):
    """True when the handshake or the first read fails (TLS 1.3 reports a
    refused client certificate only at the first read)."""
    try:
        c = TLSClient(port, ctx, timeout=3)
        c.send(request("GET", "/echo/x"))
        c.read_response()
    except (ssl.SSLError, OSError, AssertionError, Exception):
        return True
    return False


def metric(px, name, labels):
    """The value of one metric line from the admin listener."""
    port = admin_port(px)
    s = socket.create_connection(("127.0.0.1", port), IO_TIMEOUT)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
    want = "%s{%s}" % (name, labels)
    for line in data.decode().splitlines():
        if line.startswith(want + " "):
            return int(line.split()[-1])
    raise AssertionError("no metric %s in %r" % (want, data[-400:]))


def admin_port(px):
    import re
    for line in px.stderr:
        m = re.search(rb"admin on .* \(port (\d+)\)", line)
        if m:
            return int(m.group(1))
    raise AssertionError("no admin listener")


def log_has(px, text, timeout=3.0):
    return wait_until(lambda: any(text.encode() in l for l in px.stderr),
                      timeout)


# ---------------------------------------------------------------- clients

@test
def tls_keepalive_get_forwarded_https(env):
    up = env.upstream()
    px = proxy_tls(env, up.url)
    c = TLSClient(px.port, client_ctx())
    assert c.sock.version() in ("TLSv1.2", "TLSv1.3"), c.sock.version()
    assert c.sock.selected_alpn_protocol() == "http/1.1"
    for i in range(3):
        c.send(request("GET", "/echo/%d" % i))
        r = c.read_response()
        assert r.status == 200, r
    assert up.count() == 3, up.count()
    fwd = up.request(1).get("Forwarded")
    assert fwd == "for=127.0.0.1;proto=https", repr(fwd)


@test
def tls_session_resumption(env):
    up = env.upstream()
    px = proxy_tls(env, up.url, extra=("--admin", "127.0.0.1:0"))
    ctx = client_ctx()
    c = TLSClient(px.port, ctx)
    c.send(request("GET", "/echo/a"))
    assert c.read_response().status == 200
    sess = c.sock.session
    c.close()
    c2 = TLSClient(px.port, ctx, session=sess)
    c2.send(request("GET", "/echo/b"))
    assert c2.read_response().status == 200
    assert c2.sock.session_reused, "the session was not resumed"
    assert metric(px, "consentgate_tls_resumed_total",
                  'side="client"') >= 1


@test
def tls_large_bodies_both_ways(env):
    """Bodies far larger than one TLS record (16 KiB), sent in one write:
    edge-triggered reads must not stall on what OpenSSL holds."""
    up = env.upstream()
    px = proxy_tls(env, up.url)
    c = TLSClient(px.port, client_ctx(), timeout=10)
    lines = []
    for i in range(12000):
        who = "u1" if i % 10 else "u-unknown"
        lines.append(json.dumps({"author_id": who, "i": i,
                                 "text": "x" * 60}).encode())
    body = b"\n".join(lines) + b"\n"
    assert len(body) > 1 << 20
    c.send(request("POST", "/ingest", [("Content-Type",
                                        "application/x-ndjson")], body))
    r = c.read_response(timeout=10)
    assert r.status == 200, r
    kept = b"".join(l + b"\n" for i, l in enumerate(lines) if i % 10)
    got = up.request(1).body
    assert got == kept, (len(got), len(kept))
    c.send(request("GET", "/big?n=3000000"))
    r = c.read_response(timeout=10)
    assert r.status == 200 and len(r.body) == 3000000, (r.status,
                                                         len(r.body))


@test
def curl_over_tls(env):
    up = env.upstream()
    px = proxy_tls(env, up.url)
    out = subprocess.run(
        ["curl", "-sS", "--cacert", certs().ca, "-o", "/dev/null", "-w",
         "%{http_code} %{http_version}",
         "https://localhost:%d/echo/curl" % px.port],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    assert out.stdout.decode() == "200 1.1", (out.stdout, out.stderr)


@test
def alpn_without_http11_refused(env):
    up = env.upstream()
    px = proxy_tls(env, up.url, extra=("--admin", "127.0.0.1:0"))
    assert handshake_fails(px.port, client_ctx(alpn=("h2",)))
    assert wait_until(lambda: metric(
        px, "consentgate_tls_handshake_failures_total",
        'side="client",reason="alpn"') == 1, 3)
    c = TLSClient(px.port, client_ctx(alpn=None))  # no ALPN at all: fine
    c.send(request("GET", "/echo/x"))
    assert c.read_response().status == 200


@test
def plain_http_on_tls_port(env):
    up = env.upstream()
    px = proxy_tls(env, up.url, extra=("--admin", "127.0.0.1:0"))
    c = env.client(px)
    c.send(request("GET", "/echo/x"))
    r = c.read_response()
    assert r.status == 400 and b"speaks TLS" in r.body, r
    assert up.count() == 0
    assert metric(px, "consentgate_tls_handshake_failures_total",
                  'side="client",reason="plain_http"') == 1


@test
def garbage_and_stalled_handshakes(env):
    """Garbage is refused and counted; a client that never finishes its
    handshake is closed at the handshake deadline; a normal client is
    served all the while."""
    up = env.upstream()
    px = proxy_tls(env, up.url, extra=("--admin", "127.0.0.1:0"),
                   config={"tls_handshake_timeout_ms": 400})
    g = env.client(px)
    g.send(b"\x16\x03\x01\x00\x05garbage-that-is-no-tls" * 4)
    g.wait_closed()
    stalled = [env.client(px) for _ in range(20)]
    stalled[0].send(b"\x16\x03\x01")  # half a record header
    c = TLSClient(px.port, client_ctx())
    c.send(request("GET", "/echo/x"))
    assert c.read_response().status == 200
    for s in stalled:
        s.wait_closed(timeout=5)
    assert metric(px, "consentgate_tls_handshake_failures_total",
                  'side="client",reason="protocol"') == 1
    assert metric(px, "consentgate_tls_handshake_failures_total",
                  'side="client",reason="timeout"') == 20
    assert log_has(px, "handshake from 127.0.0.1 failed: timeout")


# ------------------------------------------------------------ mutual TLS

@test
def mtls_refuses_missing_untrusted_expired(env):
    up = env.upstream()
    px = proxy_tls(env, up.url, mtls=True, extra=("--admin", "127.0.0.1:0"))
    c = certs()
    assert handshake_fails(px.port, client_ctx())
    assert handshake_fails(px.port, client_ctx(c.untrusted))
    assert handshake_fails(px.port, client_ctx(c.expired))
    for reason in ("no_certificate", "unknown_ca", "expired"):
        assert wait_until(lambda: metric(
            px, "consentgate_tls_handshake_failures_total",
            'side="client",reason="%s"' % reason) == 1, 3), reason
    assert up.count() == 0
    t = TLSClient(px.port, client_ctx(c.poster))
    t.send(request("GET", "/echo/x"))
    assert t.read_response().status == 200
    assert log_has(px, "failed: expired")


@test
def mtls_route_clients(env):
    up = env.upstream()
    px = proxy_tls(env, up.url, mtls=True)
    c = certs()
    poster = TLSClient(px.port, client_ctx(c.poster))
    poster.send(request("GET", "/echo/only/1"))
    assert poster.read_response().status == 200
    fwd = up.request(1).get("Forwarded")
    assert fwd == ('for=127.0.0.1;proto=https;'
                   'client="uri:spiffe://example.org/poster"'), repr(fwd)
    stranger = TLSClient(px.port, client_ctx(c.stranger))
    stranger.send(request("GET", "/echo/only/2"))
    r = stranger.read_response()
    check_problem(r, 403)
    assert b"dns:stranger.internal" in r.body, r.body
    # a route that names no client takes any verified one
    stranger.send(request("GET", "/echo/open"))
    assert stranger.read_response().status == 200
    # an inspected route: the body is never read, nothing is forwarded
    body = b'{"author_id":"u1"}\n'
    stranger.send(request("POST", "/ingest-mtls",
                          [("Content-Type", "application/x-ndjson")], body))
    check_problem(stranger.read_response(), 403)
    assert up.count() == 2, up.count()
    # the DNS SAN matches without regard to case, and is what is forwarded
    poster2 = TLSClient(px.port, client_ctx(c.poster))
    poster2.send(request("POST", "/ingest-mtls",
                         [("Content-Type", "application/x-ndjson")], body))
    assert poster2.read_response().status == 200
    assert up.request(3).body == body
    assert up.request(3).get("Forwarded").endswith(
        'client="dns:poster.internal"')


@test
def decision_log_names_the_client(env):
    up = env.upstream()
    log = os.path.join(env.workdir, "decisions.jsonl")
    px = proxy_tls(env, up.url, mtls=True, extra=("--decision-log", log))
    body = b'{"author_id":"u1"}\n{"author_id":"nobody"}\n'
    t = TLSClient(px.port, client_ctx(certs().poster))
    t.send(request("POST", "/ingest-mtls",
                   [("Content-Type", "application/x-ndjson")], body))
    assert t.read_response().status == 200
    t.send(request("POST", "/ingest",
                   [("Content-Type", "application/x-ndjson")], body))
    assert t.read_response().status == 200
    plain = env.proxy(up.url, extra=("--decision-log", log + ".plain"))
    c = env.client(plain)
    c.send(request("POST", "/ingest",
                   [("Content-Type", "application/x-ndjson")], body))
    assert c.read_response().status == 200
    px.stop()
    plain.stop()
    lines = [json.loads(l) for l in open(log)]
    # the identity the route matched, else the certificate's first
    assert [l["client"] for l in lines] == [
        "dns:poster.internal", "uri:spiffe://example.org/poster"], lines
    assert lines[0]["kept"] == 1 and lines[0]["dropped"] == 1
    assert json.loads(open(log + ".plain").readline())["client"] == \
        "127.0.0.1"


# ----------------------------------------------------------- reload, start

@test
def sighup_reloads_certificate(env):
    c = certs()
    d = os.path.join(env.workdir, "live")
    os.makedirs(d)
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    shutil.copy(c.server[0], cert)
    shutil.copy(c.server[1], key)
    up = env.upstream()
    px = env.proxy(up.url, extra=("--tls-cert", cert, "--tls-key", key))

    def served_cn():
        t = TLSClient(px.port, client_ctx())
        der = t.sock.getpeercert()
        t.close()
        return dict(x[0] for x in der["subject"])["commonName"]

    assert served_cn() == "localhost"
    shutil.copy(c.server2[0], cert)
    shutil.copy(c.server2[1], key)
    px.signal(signal.SIGHUP)
    assert log_has(px, "reloaded the TLS certificate and key")
    assert served_cn() == "localhost2"
    with open(key, "w") as f:
        f.write("not a key\n")
    px.signal(signal.SIGHUP)
    assert log_has(px, "TLS reload failed; keeping the running")
    assert served_cn() == "localhost2"


def start_fails(env, args, text):
    up = env.upstream()
    p = subprocess.run(
        [os.environ.get("CONSENTGATE"), "serve", "--listen", "127.0.0.1:0",
         "--upstream", up.url, "--policy", os.path.join(env.workdir, "p.json"),
         "--consent", os.path.join(env.workdir, "c.csv")] + args,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
    err = p.stderr.decode()
    assert p.returncode != 0 and text in err, (p.returncode, err)


@test
def start_errors_are_clear(env):
    from harness import DEFAULT_CONSENT
    with open(os.path.join(env.workdir, "p.json"), "w") as f:
        json.dump(tls_policy(), f)
    with open(os.path.join(env.workdir, "c.csv"), "w") as f:
        f.write(DEFAULT_CONSENT)
    c = certs()
    start_fails(env, ["--tls-cert", "/nonexistent.pem", "--tls-key",
                      c.server[1], "--tls-client-ca", c.ca],
                "--tls-cert: cannot read '/nonexistent.pem'")
    start_fails(env, ["--tls-cert", c.server[0], "--tls-key", c.poster[1],
                      "--tls-client-ca", c.ca],
                "is not the key of the certificate")
    start_fails(env, ["--tls-cert", c.server[0]],
                "--tls-key: missing: TLS needs both")
    start_fails(env, ["--tls-cert", c.server[0], "--tls-key", c.server[1]],
                "route 'poster-only' takes only the clients it names, but "
                "without --tls-client-ca")
    start_fails(env, ["--tls-client-ca", c.ca], "client certificates need "
                "TLS")


# ------------------------------------------------------ https:// upstream

class Gunicorn:
    """gunicorn over TLS (gthread: keep-alive), answering with what it got:
    the path, the body length, the headers, and the client's port (one
    port = one pooled connection)."""

    APP = '''
import json
def app(environ, start_response):
    body = environ["wsgi.input"].read()
    out = json.dumps({"path": environ.get("PATH_INFO"), "len": len(body),
                      "port": environ.get("REMOTE_PORT"),
                      "fwd": environ.get("HTTP_FORWARDED")}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(out)))])
    return [out]
'''

    def __init__(self, workdir, cert, require_client=False):
        import re
        d = os.path.join(workdir, "gunicorn-%d" % id(self))
        os.makedirs(d)
        with open(os.path.join(d, "app.py"), "w") as f:
            f.write(self.APP)
        args = [GUNICORN_PY, "-m", "gunicorn", "-b", "127.0.0.1:0",
                "--worker-class", "gthread", "--threads", "4",
                "--keep-alive", "30", "--certfile", cert[0], "--keyfile",
                cert[1], "--chdir", d, "--error-logfile", "-"]
        if require_client:
            args += ["--ca-certs", certs().ca, "--cert-reqs", "2"]
        self.proc = subprocess.Popen(args + ["app:app"],
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self.port = None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.port is None:
            line = self.proc.stderr.readline()
            if not line:
                break
            m = re.search(rb"Listening at: https://127\.0\.0\.1:(\d+)", line)
            if m:
                self.port = int(m.group(1))
        if self.port is None:
            self.stop()
            raise AssertionError("gunicorn did not start")
        import threading
        threading.Thread(target=lambda: [None for _ in self.proc.stderr],
                         daemon=True).start()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def gunicorn(env, cert, require_client=False):
    g = Gunicorn(env.workdir, cert, require_client)
    env.procs.append(g)
    return g


def have_gunicorn():
    return subprocess.run([GUNICORN_PY, "-c", "import gunicorn"],
                          stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


@test
def upstream_https_verified_pooled(env):
    c = certs()
    g = gunicorn(env, c.server)
    px = env.proxy("https://localhost:%d" % g.port,
                   extra=("--upstream-ca", c.ca, "--admin", "127.0.0.1:0"))
    cl = env.client(px)
    ports = set()
    for i in range(5):
        cl.send(request("GET", "/echo/%d" % i))
        r = cl.read_response()
        assert r.status == 200, r
        ports.add(r.json()["port"])
    assert len(ports) == 1, "not pooled: %r" % ports
    assert r.json()["fwd"] == "for=127.0.0.1;proto=http"
    # an inspected POST over the pooled TLS connection
    body = b"".join(b'{"author_id":"u1","n":%d}\n' % i for i in range(3000))
    cl.send(request("POST", "/ingest",
                    [("Content-Type", "application/x-ndjson")], body))
    r = cl.read_response()
    assert r.status == 200 and r.json()["len"] == len(body), r
    assert metric(px, "consentgate_tls_handshakes_total",
                  'side="upstream"') == 1


@test
def upstream_sessions_resumed(env):
    """Without a pool every request opens a connection: after the first,
    each resumes the session the upstream gave. nginx (Debian) as the TLS
    upstream: gunicorn 20 makes a context per connection, so it never
    resumes."""
    c = certs()

    def body(d, port):
        return ("access_log off;\nserver {\n"
                "  listen 127.0.0.1:%d ssl;\n"
                "  ssl_certificate %s;\n  ssl_certificate_key %s;\n"
                "  location / { return 200 \"$ssl_session_reused\\n\"; }\n"
                "}\n" % (port, c.server[0], c.server[1]))
    ng = Nginx(env.workdir, body)
    env.procs.append(ng)
    px = env.proxy("https://localhost:%d" % ng.port, config={"pool_size": 0},
                   extra=("--upstream-ca", c.ca, "--admin", "127.0.0.1:0"))
    cl = env.client(px)
    reused = []
    for i in range(4):
        cl.send(request("GET", "/echo/%d" % i))
        r = cl.read_response()
        assert r.status == 200, r
        reused.append(r.body.strip())
    assert reused[0] == b"." and reused[-1] == b"r", reused
    assert metric(px, "consentgate_tls_handshakes_total",
                  'side="upstream"') == 4
    assert metric(px, "consentgate_tls_resumed_total",
                  'side="upstream"') >= 2


@test
def upstream_https_bad_chain_or_name(env):
    c = certs()
    g = gunicorn(env, c.server)
    px = env.proxy("https://localhost:%d" % g.port,
                   extra=("--upstream-ca", c.other_ca, "--admin",
                          "127.0.0.1:0"))
    cl = env.client(px)
    cl.send(request("GET", "/echo/x"))
    check_problem(cl.read_response(), 502)
    assert metric(px, "consentgate_tls_handshake_failures_total",
                  'side="upstream",reason="unknown_ca"') == 1
    g2 = gunicorn(env, c.wrong_host)
    px2 = env.proxy("https://localhost:%d" % g2.port,
                    extra=("--upstream-ca", c.ca))
    cl2 = env.client(px2)
    cl2.send(request("GET", "/echo/x"))
    check_problem(cl2.read_response(), 502)
    assert log_has(px2, "hostname mismatch"), b"".join(px2.stderr)[-500:]


@test
def upstream_mutual_tls(env):
    c = certs()
    g = gunicorn(env, c.server, require_client=True)
    px = env.proxy("https://localhost:%d" % g.port,
                   extra=("--upstream-ca", c.ca))
    cl = env.client(px)
    cl.send(request("GET", "/echo/x"))
    check_problem(cl.read_response(), 502)
    px2 = env.proxy("https://localhost:%d" % g.port,
                    extra=("--upstream-ca", c.ca, "--upstream-cert",
                           c.proxy_client[0], "--upstream-key",
                           c.proxy_client[1]))
    cl2 = env.client(px2)
    cl2.send(request("GET", "/echo/x"))
    assert cl2.read_response().status == 200


if __name__ == "__main__":
    if not have_gunicorn():
        if os.environ.get("CI"):
            print("FAIL gunicorn (Debian python3-gunicorn) is missing")
            print("0 passed, 1 failed")
            sys.exit(1)
        print("skip upstream tests: python3-gunicorn is not installed")
        from harness import TESTS
        TESTS[:] = [t for t in TESTS if not t.__name__.startswith("upstream")]
    main()
