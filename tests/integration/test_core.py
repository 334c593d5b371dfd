"""test_core.py: the core proxy through the real binary (issue "core proxy").

Every test starts the recording upstream and `consentgate serve` on loopback,
drives it with raw sockets or curl, and compares what the upstream recorded
with what was sent.
"""

import os
import random
import select
import signal
import socket
import subprocess
import time

from harness import (Incomplete, check_problem, chunk, free_port, main,
                     pattern, request, subtests, test, wait_until)

MIB = 1 << 20


def body_1mib(seed):
    return random.Random(seed).randbytes(MIB)


def one_upstream_request(up, path_prefix=None):
    assert wait_until(lambda: up.count() >= 1, 2), "upstream got no request"
    reqs = up.requests()
    assert len(reqs) == 1, "upstream got %d requests: %r" % (len(reqs), reqs)
    if path_prefix:
        assert reqs[0].request_line.split(b" ")[1].startswith(path_prefix), \
            reqs[0].request_line
    return reqs[0]


def single_framing(rec):
    """The forwarded request has exactly one framing."""
    cl = rec.get_all("Content-Length")
    te = rec.get_all("Transfer-Encoding")
    assert len(cl) + len(te) <= 1, "framing %r %r" % (cl, te)
    if cl:
        assert int(cl[0]) == len(rec.body), (cl, len(rec.body))


# ------------------------------------------------------------ byte exactness

@test
def get_1mib_byte_exact(env):
    up = env.upstream()
    px = env.proxy(up.url)
    c = env.client(px)
    c.send(request("GET", "/big?n=%d" % MIB))
    r = c.read_response()
    assert r.status == 200, r
    assert r.body == pattern(MIB), "1 MiB body differs (len %d)" % len(r.body)
    rec = one_upstream_request(up)
    assert rec.request_line == b"GET /big?n=%d HTTP/1.1" % MIB, rec.request_line
    assert rec.body == b""


@test
def get_chunked_response_byte_exact(env):
    up = env.upstream()
    px = env.proxy(up.url)
    c = env.client(px)
    c.send(request("GET", "/chunked?n=300000"))
    r = c.read_response()
    assert r.status == 200, r
    assert r.body == pattern(300000), "chunked body differs"


@test
def post_1mib_content_length_byte_exact(env):
    up = env.upstream()
    px = env.proxy(up.url)
    body = body_1mib(1)
    c = env.client(px)
    c.send(request("POST", "/echo", [("Content-Type", "application/octet-stream")],
                   body))
    r = c.read_response()
    assert r.status == 200, r
    assert r.body == body, "echoed body differs"
    rec = one_upstream_request(up, b"/echo")
    assert rec.body == body, "upstream body differs (len %d)" % len(rec.body)
    single_framing(rec)


@test
def post_1mib_chunked_byte_exact(env):
    up = env.upstream()
    px = env.proxy(up.url)
    body = body_1mib(2)
    c = env.client(px)
    rng = random.Random(3)
    sizes = [rng.randint(1, 70000) for _ in range(200)]
    c.send(request("POST", "/echo", [("Content-Type", "application/octet-stream")],
                   body, chunked=sizes))
    r = c.read_response()
    assert r.status == 200, r
    assert r.body == body, "echoed body differs"
    rec = one_upstream_request(up, b"/echo")
    assert rec.body == body, "upstream body differs (len %d)" % len(rec.body)
    single_framing(rec)


@test
def curl_post_1mib(env):
    up = env.upstream()
    px = env.proxy(up.url)
    path = os.path.join(env.workdir, "body.bin")
    body = body_1mib(4)
    with open(path, "wb") as f:
        f.write(body)
    out = subprocess.run(
        ["curl", "-sS", "--max-time", "10", "-H", "Expect:",
         "--data-binary", "@" + path, "http://127.0.0.1:%d/echo" % px.port],
        capture_output=True, timeout=15)
    assert out.returncode == 0, out.stderr
    assert out.stdout == body, "curl got a different body"
    assert one_upstream_request(up).body == body


# ------------------------------------------------------------ connections

@test
def keepalive_reuse_both_sides(env):
    up = env.upstream()
    px = env.proxy(up.url)
    c = env.client(px)
    n = 6
    for i in range(n):
        body = b"request %d" % i
        c.send(request("POST", "/echo?i=%d" % i, body=body))
        r = c.read_response()
        assert r.status == 200 and r.body == body, (i, r)
    reqs = up.requests()
    assert len(reqs) == n, "upstream saw %d requests" % len(reqs)
    conns = {q.conn for q in reqs}
    assert len(conns) < n, "no upstream connection reuse: %d conns" % len(conns)
    assert [q.request_line for q in reqs] == \
        [b"POST /echo?i=%d HTTP/1.1" % i for i in range(n)]


@test
def pipelining_in_order(env):
    up = env.upstream()
    px = env.proxy(up.url)
    c = env.client(px)
    c.send(request("GET", "/big?n=70000") +
           request("POST", "/echo", body=b"second") +
           request("GET", "/chunked?n=500"))
    r1 = c.read_response()
    r2 = c.read_response()
    r3 = c.read_response()
    assert r1.status == 200 and r1.body == pattern(70000), r1
    assert r2.status == 200 and r2.body == b"second", r2
    assert r3.status == 200 and r3.body == pattern(500), r3


@test
def pipelining_slow_first(env):
    """A slow first answer must not let the second overtake it."""
    up = env.upstream()
    px = env.proxy(up.url)
    c = env.client(px)
    c.send(request("GET", "/slow?ms=300") + request("GET", "/ok"))
    r1 = c.read_response()
    r2 = c.read_response()
    assert r1.body == b"slow\n", r1
    assert r2.body == b"ok\n", r2


# ------------------------------------------------------------ failures

@test
def upstream_refused_502(env):
    port = free_port()
    px = env.proxy("http://127.0.0.1:%d" % port)
    c = env.client(px)
    c.send(request("GET", "/ok"))
    check_problem(c.read_response(), 502)


@test
def upstream_timeout_504(env):
    up = env.upstream()
    px = env.proxy(up.url, config={"response_timeout_ms": 500})
    c = env.client(px)
    t0 = time.monotonic()
    c.send(request("GET", "/hang"))
    check_problem(c.read_response(timeout=5), 504)
    took = time.monotonic() - t0
    assert took < 3, "504 after %.2fs" % took


@test
def upstream_dies_mid_response(env):
    up = env.upstream()
    px = env.proxy(up.url)
    c = env.client(px)
    c.send(request("GET", "/die-mid"))
    try:
        r = c.read_response(timeout=5)
    except Incomplete as e:
        assert c.eof, "no close, only %s" % e
        return
    # A complete-looking success would hide the truncation.
    assert r.status != 200, "truncated response presented as complete: %r" % r
    check_problem(r, 502)


@test
def client_gone_mid_request(env):
    up = env.upstream()
    px = env.proxy(up.url)
    c = env.client(px)
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n"
           + b"a" * 100000)
    c.close()
    c2 = env.client(px)
    c2.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"1000\r\n" + b"b" * 4096 + b"\r\n" + b"1000\r\n" + b"b" * 100)
    c2.close()
    time.sleep(0.5)
    assert up.count() == 0, "upstream got a complete request: %r" % up.requests()
    # The proxy still serves.
    c3 = env.client(px)
    c3.send(request("GET", "/ok"))
    assert c3.read_response().status == 200


@test
def post_never_retried(env):
    up = env.upstream()
    px = env.proxy(up.url, config={"response_timeout_ms": 500})
    c = env.client(px)
    c.send(request("POST", "/die-mid", body=b"once"))
    try:
        c.read_response(timeout=5)
    except Incomplete:
        pass
    c2 = env.client(px)
    c2.send(request("POST", "/hang", body=b"once"))
    try:
        c2.read_response(timeout=5)
    except Incomplete:
        pass
    time.sleep(0.8)
    reqs = up.requests()
    lines = [q.request_line for q in reqs]
    assert lines.count(b"POST /die-mid HTTP/1.1") == 1, lines
    assert lines.count(b"POST /hang HTTP/1.1") == 1, lines


# ------------------------------------------------------------ framing

BAD = [
    # name, raw request, expected status
    ("cl_and_te", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
    ("two_cl", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
     b"Content-Length: 5\r\n\r\nhello", 400),
    ("cl_list", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n"
     b"hello", 400),
    ("cl_not_digits", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n"
     b"\r\nhello", 400),
    ("cl_hex", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n"
     b"\r\nhello", 400),
    ("te_gzip_501", b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip"
     b"\r\n\r\n", 501),
    ("te_in_http10", b"POST /echo HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: "
     b"chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
    ("two_te", b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
    ("space_before_colon", b"GET /ok HTTP/1.1\r\nHost: x\r\nX-A : b\r\n\r\n", 400),
    ("cl_space_before_colon", b"POST /echo HTTP/1.1\r\nHost: x\r\n"
     b"Content-Length : 5\r\n\r\nhello", 400),
    ("bare_lf", b"GET /ok HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n", 400),
    ("bare_lf_end", b"GET /ok HTTP/1.1\nHost: x\n\n", 400),
    ("bare_cr", b"GET /ok HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n", 400),
    ("obs_fold", b"GET /ok HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n", 400),
    ("nul_in_value", b"GET /ok HTTP/1.1\r\nHost: x\r\nX-A: b\x00c\r\n\r\n", 400),
    ("del_in_value", b"GET /ok HTTP/1.1\r\nHost: x\r\nX-A: b\x7fc\r\n\r\n", 400),
    ("ctl_in_value", b"GET /ok HTTP/1.1\r\nHost: x\r\nX-A: b\x01c\r\n\r\n", 400),
    ("nontoken_name", b"GET /ok HTTP/1.1\r\nHost: x\r\nX(A): b\r\n\r\n", 400),
    ("at_in_name", b"GET /ok HTTP/1.1\r\nHost: x\r\nX@Y: b\r\n\r\n", 400),
    ("empty_name", b"GET /ok HTTP/1.1\r\nHost: x\r\n: b\r\n\r\n", 400),
    ("missing_host", b"GET /ok HTTP/1.1\r\nX-A: b\r\n\r\n", 400),
    ("two_host", b"GET /ok HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400),
    ("bad_version_1_10", b"GET /ok HTTP/1.10\r\nHost: x\r\n\r\n", 400),
    ("bad_version_lower", b"GET /ok http/1.1\r\nHost: x\r\n\r\n", 400),
    ("bad_version_2", b"GET /ok HTTP/2.0\r\nHost: x\r\n\r\n", (400, 505)),
    ("two_spaces", b"GET  /ok HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("absolute_form_host_differs", b"GET http://y/ok HTTP/1.1\r\nHost: x\r\n"
     b"\r\n", 400),
    ("bad_chunk_size", b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
     b"chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk_size_0x", b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
     b"chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk_size_overflow", b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
     b"chunked\r\n\r\n100000000000000005\r\nhello\r\n0\r\n\r\n", (400, 413)),
    ("chunk_ext_ctl", b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
     b"chunked\r\n\r\n5;a=\x01\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk_ext_long", b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
     b"chunked\r\n\r\n5;a=" + b"b" * 400 + b"\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk_no_crlf", b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
     b"chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 400),
    ("chunk_bare_lf", b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
     b"chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", 400),
    ("connect_501", b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443"
     b"\r\n\r\n", 501),
    ("upgrade_501", b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
     b"Upgrade: websocket\r\n\r\n", 501),
]

# Refused in the head: the upstream must not even see a connection's bytes.
BODY_ERRORS = {"bad_chunk_size", "chunk_size_0x", "chunk_size_overflow",
               "chunk_ext_ctl", "chunk_ext_long", "chunk_no_crlf",
               "chunk_bare_lf"}


@subtests
def framing_refusals(env, res):
    up = env.upstream()
    px = env.proxy(up.url)

    def one(name, raw, want):
        before_bytes = up.raw_bytes()
        before = up.count()
        c = env.client(px)
        c.send(raw)
        r = c.read_response(timeout=3)
        wants = want if isinstance(want, tuple) else (want,)
        assert r.status in wants, "status %d, want %r: %r" % (r.status, want, r)
        check_problem(r, r.status)
        conn = [v.lower() for v in r.get_all("Connection")]
        assert "close" in conn, "no Connection: close (%r)" % conn
        assert c.wait_closed(3), "connection left open"
        time.sleep(0.05)
        assert up.count() == before, "upstream recorded %r" % up.requests()[before:]
        if name not in BODY_ERRORS:
            assert up.raw_bytes() == before_bytes, \
                "upstream received bytes for a refused head"
        c.close()

    for name, raw, want in BAD:
        res.check("framing/" + name, one, name, raw, want)


@test
def trailers_dropped(env):
    up = env.upstream()
    px = env.proxy(up.url)
    c = env.client(px)
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
           b"\r\n" + chunk(b"hello world", [4], b"X-Trailer-Secret: t1\r\n"))
    r = c.read_response()
    assert r.status == 200 and r.body == b"hello world", r
    rec = one_upstream_request(up)
    assert rec.body == b"hello world"
    raw = b"".join(up.raw_streams().values())
    assert b"x-trailer-secret" not in raw.lower(), "trailer forwarded: %r" % raw


@test
def hop_by_hop_and_forwarding_headers(env):
    up = env.upstream()
    px = env.proxy(up.url)
    c = env.client(px)
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    c.send(request("GET", "/echo?a=1&b=%2F", [
        ("Connection", "keep-alive, X-Hop"),
        ("Keep-Alive", "timeout=5"),
        ("X-Hop", "secret-hop"),
        ("TE", "trailers"),
        ("Trailer", "X-T"),
        ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
        ("Proxy-Connection", "keep-alive"),
        ("traceparent", tp),
        ("Sec-GPC", "1"),
        ("X-Normal", "kept  value"),
    ]))
    r = c.read_response()
    assert r.status == 200, r
    rec = one_upstream_request(up)
    assert rec.request_line == b"GET /echo?a=1&b=%2F HTTP/1.1", rec.request_line
    names = [k.lower() for k, _ in rec.headers]
    for gone in ("keep-alive", "x-hop", "te", "trailer", "proxy-authorization",
                 "proxy-connection", "transfer-encoding", "upgrade"):
        assert gone not in names, "%s forwarded: %r" % (gone, rec.head)
    for v in rec.get_all("Connection"):
        assert "x-hop" not in v.lower(), "Connection names X-Hop: %r" % v
    assert rec.get_all("Via") == ["1.1 consentgate"], rec.get_all("Via")
    fwd = rec.get_all("Forwarded")
    assert len(fwd) == 1 and "for=" in fwd[0] and "proto=http" in fwd[0], fwd
    assert b"\r\ntraceparent: " + tp.encode() + b"\r\n" in rec.head, rec.head
    assert b"\r\nSec-GPC: 1\r\n" in rec.head, rec.head
    assert rec.get("X-Normal") == "kept  value", rec.head
    assert len(rec.get_all("Host")) == 1


@test
def via_and_forwarded_appended(env):
    """A client's Via and Forwarded are kept and ours appended (RFC 9110 7.6.3,
    RFC 7239)."""
    up = env.upstream()
    px = env.proxy(up.url)
    c = env.client(px)
    c.send(request("GET", "/ok", [("Via", "1.0 edge"),
                                  ("Forwarded", "for=192.0.2.60;proto=https")]))
    assert c.read_response().status == 200
    rec = one_upstream_request(up)
    via = ", ".join(rec.get_all("Via"))
    assert via.replace(" ", "") == "1.0edge,1.1consentgate", "Via %r" % via
    fwd = ", ".join(rec.get_all("Forwarded"))
    assert fwd.startswith("for=192.0.2.60;proto=https") and fwd.count("for=") == 2, \
        "Forwarded %r" % fwd


@test
def consent_headers_from_client_removed(env):
    up = env.upstream()
    px = env.proxy(up.url)
    c = env.client(px)
    c.send(request("GET", "/echo", [("Consent-Result", "kept=99, dropped=0"),
                                    ("consent-purpose", "none"),
                                    ("CONSENT-Policy", "id=\"spoof\"")]))
    assert c.read_response().status == 200
    rec = one_upstream_request(up)
    spoof = [k for k, _ in rec.headers if k.lower().startswith("consent-")]
    assert not spoof, "client Consent-* forwarded: %r" % rec.head


@test
def expect_100_continue(env):
    up = env.upstream()
    px = env.proxy(up.url)
    c = env.client(px)
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
           b"Expect: 100-continue\r\n\r\n")
    r = c.read_response(timeout=3, skip_1xx=False)
    assert r.status == 100, "want 100 Continue first: %r" % r
    assert up.raw_bytes() == 0 or up.count() == 0
    c.send(b"hello")
    r = c.read_response()
    assert r.status == 200 and r.body == b"hello", r
    assert one_upstream_request(up).body == b"hello"


@test
def head_204_304_without_body(env):
    up = env.upstream()
    px = env.proxy(up.url)
    c = env.client(px)
    c.send(request("HEAD", "/big?n=1000"))
    r = c.read_response(head_request=True)
    assert r.status == 200 and r.get("Content-Length") == "1000", r
    c.send(request("GET", "/empty204"))
    r = c.read_response()
    assert r.status == 204, r
    assert r.get("Content-Length") in (None, "0"), r
    c.send(request("GET", "/not-modified"))
    r = c.read_response()
    assert r.status == 304, r
    # Had any body byte followed, this response would be garbled.
    c.send(request("GET", "/ok"))
    r = c.read_response()
    assert r.status == 200 and r.body == b"ok\n", r
    assert c.buf == b"", "extra bytes after responses: %r" % c.buf


@test
def close_delimited_response(env):
    up = env.upstream()
    px = env.proxy(up.url)
    c = env.client(px)
    c.send(request("GET", "/close-delimited"))
    r = c.read_response()
    assert r.status == 200 and r.body == b"close-delimited body\n", r


# ------------------------------------------------------------ limits

@test
def limit_431_head_bytes(env):
    up = env.upstream()
    px = env.proxy(up.url, config={"max_header_bytes": 4096})
    c = env.client(px)
    c.send(request("GET", "/ok", [("X-Big", "a" * 8000)]))
    check_problem(c.read_response(), 431)
    assert c.wait_closed(3)
    assert up.raw_bytes() == 0


@test
def limit_431_header_count(env):
    up = env.upstream()
    px = env.proxy(up.url, config={"max_header_count": 20})
    c = env.client(px)
    c.send(request("GET", "/ok", [("X-H%d" % i, "v") for i in range(30)]))
    check_problem(c.read_response(), 431)
    assert c.wait_closed(3)
    assert up.raw_bytes() == 0


@test
def error_survives_a_client_still_sending(env):
    """A refusal while the client is still sending its body: the proxy
    shuts its side down and keeps reading (lingering close), so the
    client reads the whole problem; a close with unread bytes would send a
    reset that destroys it. The connection then ends when the client
    closes."""
    import time
    up = env.upstream()
    px = env.proxy(up.url, config={"max_body_bytes": 1000})
    for attempt in range(5):
        c = env.client(px)
        total = 4 << 20
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d"
                b"\r\n\r\n" % total + b"x" * (256 << 10))
        time.sleep(0.2)  # the 413 is written and the proxy shuts down
        sent = 256 << 10
        try:
            while sent < total:
                c.send(b"y" * (256 << 10))
                sent += 256 << 10
        except OSError as e:
            raise AssertionError("the proxy reset the connection after "
                                 "%d bytes: %r" % (sent, e))
        check_problem(c.read_response(), 413)
        c.close()
    assert up.raw_bytes() == 0


@test
def limit_413_body(env):
    up = env.upstream()
    px = env.proxy(up.url, config={"max_body_bytes": 1000})
    c = env.client(px)
    c.send(request("POST", "/echo", body=b"x" * 2000))
    check_problem(c.read_response(), 413)
    c2 = env.client(px)
    c2.send(request("POST", "/echo", body=b"y" * 2000, chunked=[300]))
    check_problem(c2.read_response(), 413)
    c3 = env.client(px)
    c3.send(request("POST", "/echo", body=b"z" * 1000))
    r = c3.read_response()
    assert r.status == 200 and r.body == b"z" * 1000, r
    reqs = up.requests()
    assert [q.body for q in reqs] == [b"z" * 1000], reqs


@test
def slowloris_408(env):
    up = env.upstream()
    px = env.proxy(up.url, config={"head_timeout_ms": 500})
    c = env.client(px)
    t0 = time.monotonic()
    c.send(b"GET /ok HTTP/1.1\r\nHost: x\r\n")
    for i in range(40):  # at most 4 s of dribbling, one header line each 0.1 s
        ready, _, _ = select.select([c.sock], [], [], 0.1)
        if ready:
            break  # the proxy answered or closed
        try:
            c.send(b"X-%d: y\r\n" % i)
        except OSError:
            break
    took = time.monotonic() - t0
    r = c.read_response(timeout=2)
    check_problem(r, 408)
    assert took < 1.5, "408 only after %.2fs" % took
    assert c.wait_closed(2)
    assert up.raw_bytes() == 0


@test
def not_found_404(env):
    up = env.upstream()
    px = env.proxy(up.url)
    c = env.client(px)
    c.send(request("GET", "/nowhere/at/all"))
    check_problem(c.read_response(), 404)
    c2 = env.client(px)
    c2.send(request("POST", "/status", body=b"x"))  # GET-only route
    r = c2.read_response()
    check_problem(r, 405)  # the path is known, the method is not
    assert r.get("Allow") == "GET", r.headers
    time.sleep(0.1)
    assert up.raw_bytes() == 0, "upstream received bytes"


@test
def idle_keepalive_closed(env):
    up = env.upstream()
    px = env.proxy(up.url, config={"idle_timeout_ms": 300})
    c = env.client(px)
    c.send(request("GET", "/ok"))
    assert c.read_response().status == 200
    t0 = time.monotonic()
    assert c.wait_closed(3), "idle connection not closed"
    took = time.monotonic() - t0
    assert took < 1.5, "closed after %.2fs (idle_timeout_ms 300)" % took


@test
def body_timeout_408(env):
    up = env.upstream()
    px = env.proxy(up.url, config={"body_timeout_ms": 400})
    c = env.client(px)
    t0 = time.monotonic()
    c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
           + b"a" * 10)
    try:
        r = c.read_response(timeout=3)
    except Incomplete:
        assert c.eof, "no answer and no close"
    else:
        check_problem(r, 408)
    took = time.monotonic() - t0
    assert took < 2, "took %.2fs" % took
    assert up.count() == 0, up.requests()


@test
def stale_pooled_connection(env):
    """The upstream closes an idle pooled connection; the next requests
    (GET and POST) still succeed on a fresh one."""
    up = env.upstream()
    px = env.proxy(up.url)
    c = env.client(px)
    c.send(request("GET", "/close-after?ms=50"))
    assert c.read_response().status == 200
    time.sleep(0.3)
    c.send(request("GET", "/ok"))
    r = c.read_response()
    assert r.status == 200 and r.body == b"ok\n", r
    c.send(request("GET", "/close-after?ms=50"))
    assert c.read_response().status == 200
    time.sleep(0.3)
    c.send(request("POST", "/echo", body=b"after stale"))
    r = c.read_response()
    assert r.status == 200 and r.body == b"after stale", r
    lines = [q.request_line for q in up.requests()]
    assert lines.count(b"POST /echo HTTP/1.1") == 1, lines


@test
def http10_client(env):
    up = env.upstream()
    px = env.proxy(up.url)
    c = env.client(px)
    c.send(b"GET /chunked?n=5000 HTTP/1.0\r\n\r\n")
    r = c.read_response()
    assert r.status == 200, r
    assert r.get("Transfer-Encoding") is None, "chunked sent to an HTTP/1.0 client"
    assert r.body == pattern(5000), \
        "body differs (%d bytes, starts %r): chunk framing relayed?" % (
            len(r.body), r.body[:20])
    assert c.wait_closed(3), "HTTP/1.0 connection kept open"


@test
def http10_without_host_forwarded_with_host(env):
    """HTTP/1.0 may omit Host; the HTTP/1.1 request we forward must not."""
    up = env.upstream()
    px = env.proxy(up.url)
    c = env.client(px)
    c.send(b"GET /ok HTTP/1.0\r\n\r\n")
    r = c.read_response()
    assert r.status == 200, r
    rec = one_upstream_request(up)
    if rec.request_line.endswith(b"HTTP/1.1"):
        assert len(rec.get_all("Host")) == 1, \
            "HTTP/1.1 request forwarded without Host: %r" % rec.head


@test
def connection_close_honoured(env):
    up = env.upstream()
    px = env.proxy(up.url)
    c = env.client(px)
    c.send(request("GET", "/ok", [("Connection", "close")]))
    r = c.read_response()
    assert r.status == 200 and r.body == b"ok\n", r
    assert c.wait_closed(3), "connection left open after Connection: close"


@test
def many_pipelined(env):
    up = env.upstream()
    px = env.proxy(up.url)
    c = env.client(px)
    n = 50
    c.send(b"".join(request("POST", "/echo?i=%d" % i, body=b"body %d" % i)
                    for i in range(n)))
    for i in range(n):
        r = c.read_response()
        assert r.status == 200 and r.body == b"body %d" % i, (i, r)
    assert [q.body for q in up.requests()] == [b"body %d" % i for i in range(n)]


@test
def response_hop_by_hop_removed(env):
    up = env.upstream()
    px = env.proxy(up.url)
    c = env.client(px)
    c.send(request("GET", "/resp-hop"))
    r = c.read_response()
    assert r.status == 200 and r.body == b"ok\n", r
    names = [k.lower() for k, _ in r.headers]
    for gone in ("keep-alive", "x-secret-hop", "proxy-authenticate"):
        assert gone not in names, "%s relayed to the client: %r" % (gone, r.headers)
    assert r.get("X-End-To-End") == "yes", r.headers


@test
def upstream_1xx_then_final(env):
    up = env.upstream()
    px = env.proxy(up.url)
    c = env.client(px)
    c.send(request("GET", "/early-hints"))
    r = c.read_response()
    assert r.status == 200 and r.body == b"ok\n", r
    c.send(request("GET", "/ok"))
    r = c.read_response()
    assert r.status == 200 and r.body == b"ok\n", r


@test
def broken_upstream_framing_not_relayed(env):
    """Responses whose length is ambiguous are never relayed as if sound."""
    up = env.upstream()
    px = env.proxy(up.url)
    for target in ("/bad-cl", "/cl-te"):
        c = env.client(px)
        c.send(request("GET", target))
        try:
            r = c.read_response(timeout=3)
        except Incomplete:
            assert c.eof, "%s: no answer, no close" % target
            continue
        cl = r.get_all("Content-Length")
        te = r.get_all("Transfer-Encoding")
        assert not (cl and te), "%s: relayed with both CL and TE: %r" % (target, r)
        if r.status == 200:
            assert target == "/cl-te" and r.body == b"ok\n", \
                "%s relayed as a complete 200: %r" % (target, r)
        else:
            check_problem(r, 502)


@test
def client_gone_mid_response(env):
    up = env.upstream()
    px = env.proxy(up.url)
    c = env.client(px)
    c.send(request("GET", "/slow?ms=300"))
    c.close()
    c2 = env.client(px)
    c2.send(request("GET", "/big?n=%d" % (32 << 20)))
    c2.sock.recv(65536)
    c2.close()
    time.sleep(0.6)
    for i in range(3):
        c3 = env.client(px)
        c3.send(request("GET", "/big?n=1000"))
        r = c3.read_response()
        assert r.status == 200 and r.body == pattern(1000), r
        c3.close()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@test
def slow_reader_backpressure(env):
    """A client that pauses (64 KiB receive buffer): the proxy must not
    buffer a 48 MiB response in memory, and must resume relaying when the
    client reads again; the data arrives intact."""
    up = env.upstream()
    px = env.proxy(up.url, config={"workers": 1})
    c = env.client(px, timeout=10)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    base = rss_kib(px.proc.pid)
    n = 48 << 20
    c.send(request("GET", "/big?n=%d" % n))
    time.sleep(1.5)
    grown = rss_kib(px.proc.pid) - base
    assert grown < 24 * 1024, "proxy RSS grew %d KiB for a client that does not read" % grown
    try:
        r = c.read_response(timeout=10)
    except Incomplete:
        raise AssertionError("relay stalled: %d of %d body bytes after 10 s "
                             "(client paused 1.5 s, SO_RCVBUF 64 KiB)"
                             % (len(c.buf), n))
    assert r.status == 200 and len(r.body) == n, (r.status, len(r.body))
    assert r.body[:1 << 20] == pattern(1 << 20), "body differs"


@test
def slow_reader_resumes_16mib(env):
    """The same stall, smaller: a 0.5 s pause in the middle of 16 MiB."""
    up = env.upstream()
    px = env.proxy(up.url, config={"workers": 1})
    for attempt in range(3):
        c = env.client(px, timeout=5)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        n = 16 << 20
        c.send(request("GET", "/big?n=%d" % n))
        time.sleep(0.5)
        try:
            r = c.read_response(timeout=5)
        except Incomplete:
            raise AssertionError("attempt %d: relay stalled at %d of %d bytes"
                                 % (attempt, len(c.buf), n))
        assert len(r.body) == n
        c.close()


@test
def slow_upstream_reader(env):
    """The upstream holds a 16 MiB request body back: the proxy must resume
    sending when it reads again, and deliver every byte."""
    up = env.upstream()
    px = env.proxy(up.url, config={"workers": 1, "max_body_bytes": 64 << 20,
                                   "response_timeout_ms": 10000})
    body = random.Random(9).randbytes(16 << 20)
    for framing in (None, [1 << 20]):
        c = env.client(px, timeout=15)
        c.send(request("POST", "/slow-read?ms=700", body=body, chunked=framing))
        try:
            r = c.read_response(timeout=15)
        except Incomplete as e:
            raise AssertionError("%s: %s; upstream recorded %d requests" % (
                "chunked" if framing else "length", e, up.count()))
        assert r.status == 200, r
        c.close()
    reqs = up.requests()
    assert len(reqs) == 2 and all(q.body == body for q in reqs), \
        "upstream bodies differ: %r" % [len(q.body) for q in reqs]


@test
def many_concurrent_connections(env):
    up = env.upstream()
    px = env.proxy(up.url)
    conns = [env.client(px) for _ in range(200)]
    for i, c in enumerate(conns):
        c.send(request("POST", "/echo", body=b"conn %d" % i))
    for i, c in enumerate(conns):
        r = c.read_response()
        assert r.status == 200 and r.body == b"conn %d" % i, (i, r)
    assert up.count() == 200


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


@test
def descriptor_exhaustion(env):
    """With 64 descriptors and 100 idle clients: no busy loop, no crash,
    and service resumes once the clients leave."""
    up = env.upstream()
    px = env.proxy(up.url, config={"workers": 1}, nofile=64)
    conns = []
    for _ in range(100):
        try:
            conns.append(px.connect(timeout=2))
        except OSError:
            break
    time.sleep(0.3)
    t0 = cpu_ticks(px.proc.pid)
    time.sleep(1.0)
    spent = cpu_ticks(px.proc.pid) - t0
    assert spent < 30, "proxy burnt %d ticks of CPU in 1 s while out of descriptors" % spent
    c = env.client(px, timeout=3)
    try:
        c.send(request("GET", "/ok"))
        c.read_response(timeout=3)  # an answer or a refusal, both fine
    except (Incomplete, OSError):
        pass
    c.close()
    for k in conns:
        k.close()
    ok = False
    for _ in range(30):  # up to about 3 s
        time.sleep(0.1)
        try:
            c2 = px.connect(timeout=2)
            c2.send(request("GET", "/ok"))
            r = c2.read_response(timeout=2)
            c2.close()
            if r.status == 200:
                ok = True
                break
        except (Incomplete, OSError):
            continue
    assert ok, "no service after the clients left"
    assert px.proc.poll() is None, "proxy exited"


@test
def head_on_chunked_response(env):
    up = env.upstream()
    px = env.proxy(up.url)
    c = env.client(px)
    c.send(request("HEAD", "/chunked?n=1000"))
    r = c.read_response(head_request=True)
    assert r.status == 200, r
    c.send(request("GET", "/ok"))
    r = c.read_response()
    assert r.status == 200 and r.body == b"ok\n", r


@test
def methods_and_long_target(env):
    up = env.upstream()
    px = env.proxy(up.url)
    c = env.client(px)
    target = "/echo?" + "&".join("k%d=%s" % (i, "v" * 50) for i in range(100))
    cases = [("PUT", "/echo/put", b"put body"), ("PATCH", "/echo/patch", b"{}"),
             ("DELETE", "/echo/del", b""), ("OPTIONS", "/echo/opt", b""),
             ("GET", target, b"")]
    for m, t, b in cases:
        c.send(request(m, t, body=b))
        r = c.read_response()
        assert r.status == 200 and r.body == b, (m, r)
    lines = [q.request_line for q in up.requests()]
    assert lines == [("%s %s HTTP/1.1" % (m, t)).encode() for m, t, _ in cases], lines
    assert [q.body for q in up.requests()] == [b for _, _, b in cases]


# ------------------------------------------------------------ shutdown

@test
def sigterm_drains_in_flight(env):
    up = env.upstream()
    px = env.proxy(up.url, config={"drain_timeout_ms": 3000})
    c = env.client(px)
    c.send(request("GET", "/slow?ms=1000"))
    assert wait_until(lambda: up.count() == 1, 2), "request not forwarded"
    t0 = time.monotonic()
    px.signal(signal.SIGTERM)
    time.sleep(0.2)
    # Draining: no new request is served.
    try:
        late = px.connect(timeout=2)
        late.send(request("GET", "/ok"))
        lr = late.read_response(timeout=2)
        assert lr.status >= 500, "a new request was served while draining: %r" % lr
    except (Incomplete, OSError):
        pass
    r = c.read_response(timeout=5)
    assert r.status == 200 and r.body == b"slow\n", r
    assert "close" in [v.lower() for v in r.get_all("Connection")], \
        "no Connection: close on a drained response: %r" % r
    rc = px.wait(4.5)
    took = time.monotonic() - t0
    assert rc is not None, "still running %.1fs after SIGTERM" % took
    assert rc == 0, "exit code %r" % rc
    assert took < 3.5, "exit %.2fs after SIGTERM (drain deadline 3s)" % took
    assert [q.request_line for q in up.requests()] == [b"GET /slow?ms=1000 HTTP/1.1"]


@test
def sigint_with_idle_keepalive_client(env):
    up = env.upstream()
    px = env.proxy(up.url, config={"drain_timeout_ms": 3000})
    c = env.client(px)
    c.send(request("GET", "/ok"))
    assert c.read_response().status == 200
    t0 = time.monotonic()
    px.signal(signal.SIGINT)
    rc = px.wait(4.5)
    took = time.monotonic() - t0
    assert rc == 0, "exit code %r after %.1fs" % (rc, took)
    assert took < 3.5, "exit %.2fs after SIGINT (drain deadline 3s)" % took
    assert c.wait_closed(1), "idle client connection not closed"
    if os.environ.get("INTEG_TIMING"):
        print("  SIGINT with an idle client: exit after %.2fs" % took)


if __name__ == "__main__":
    main()
