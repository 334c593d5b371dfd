"""test_conformance.py: valid requests that consentgate takes (issue 10,
item 4) and the classes it still refuses, as raw bytes over a socket to the
real binary; the recording test upstream or Debian's nginx says what
arrived.

- absolute-form targets (RFC 9112 3.2.2): forwarded in origin form with one
  Host; http and https schemes; HTTP/1.0 without Host gets the authority
  as Host; a Host that differs from the authority, userinfo, another
  scheme, an empty path or host, a malformed authority: 400, nothing
  forwarded.
- every spelling of an inspected route that is refused in origin form is
  refused in absolute form too (behind a catch-all pass route).
- SP and HTAB around a Content-Length value; the rest of Content-Length
  stays strict. BWS around ';' and '=' in chunk extensions.
- '"', '<', '>', '[', ']', '^', '`', '{', '|', '}' in paths and queries, '\\'
  in queries: forwarded byte for byte (also to nginx, which takes them
  too); SP, HTAB, controls, DEL, non-ASCII, '#' and a '\\' in the path: 400.
- the classes the README lists as still refused, each with its status.
"""

import os
import socket
import subprocess
import time

import harness
from harness import (EEA, Incomplete, check_problem, main, subtests, test,
                     wait_until)

BODY = b'{"author_id":"1001","n":1}\n{"author_id":"1002","n":2}\n'
CONSENT = ("subject,purpose,status,jurisdiction,updated_at,evidence\n"
           "1001,ai-training,granted,DE,2025-03-01T12:00:00Z,ev-1001\n"
           "1002,ai-training,denied,DE,2025-03-01T12:00:00Z,ev-1002\n")


def catch_all_policy():
    """An inspected POST /ingest before a catch-all pass route: the set-up
    in which a path alias would reach the ingestion endpoint uninspected."""
    return {
        "policy": "conformance",
        "purposes": {"ai-training": {"aipref": "train-ai"}},
        "jurisdictions": {"EEA": EEA},
        "routes": [
            {"name": "ingest", "method": "POST", "path": "/ingest",
             "action": "inspect", "purpose": "ai-training",
             "formats": ["ndjson"], "subjects": ["/author_id"],
             "on_deny": "drop"},
            {"method": "*", "path_prefix": "/", "action": "pass"},
        ],
        "rules": [
            {"id": "unknown-person", "if": {"known": False}, "then": "deny"},
            {"id": "opted-out", "if": {"status": ["denied", "withdrawn"]},
             "then": "deny"},
            {"id": "default-allow", "then": "allow"},
        ],
    }


def raw_get(target, host=b"h.example", version=b"1.1", extra=b""):
    out = b"GET " + target + b" HTTP/" + version + b"\r\n"
    if host is not None:
        out += b"Host: " + host + b"\r\n"
    return out + extra + b"\r\n"


def exchange(env, px, raw):
    """Send raw on a new connection; the response, or None when the
    connection closed without one."""
    c = env.client(px)
    c.send(raw)
    try:
        return c.read_response(timeout=3)
    except Incomplete:
        return None


def refused(env, up, px, raw, status, why=None):
    """raw is refused with a problem of this status (its detail holding
    why), and the upstream receives not one byte (a body error: no complete
    request; a pass route streams the head before the body is read)."""
    before, count = up.raw_bytes(), up.count()
    r = exchange(env, px, raw)
    assert r is not None, "no answer to %r" % raw[:80]
    doc = check_problem(r, status)
    if why is not None:
        assert why in doc["detail"], "detail %r lacks %r" % (doc["detail"],
                                                             why)
    time.sleep(0.05)
    assert up.count() == count, "the upstream got %r" % up.requests()[-1:]
    if "chunk" not in (why or ""):
        assert up.raw_bytes() == before, "the upstream received bytes"


# ----------------------------------------------------- absolute-form

@test
def absolute_form_forwarded_in_origin_form(env):
    up = env.upstream()
    px = env.proxy(up.url)
    cases = [
        (b"http://h.example/ok?x=1", b"h.example", b"/ok?x=1"),
        (b"http://H.Example:8080/echo/a", b"h.example:8080", b"/echo/a"),
        (b"HTTPS://h.example/ok", b"h.example", b"/ok"),
        (b"http://h.example:80/ok", b"h.example", b"/ok"),
        (b"http://[::1]:8/ok", b"[::1]:8", b"/ok"),
    ]
    for n, (target, host, origin) in enumerate(cases, 1):
        r = exchange(env, px, raw_get(target, host))
        assert r is not None and r.status == 200, (target, r)
        assert wait_until(lambda: up.count() == n, 2), (target, up.count())
        got = up.request(n)
        assert got.request_line == b"GET " + origin + b" HTTP/1.1", got
        assert got.get_all("Host") == [host.decode()], got.headers


@test
def absolute_form_http10_without_host(env):
    """RFC 9112 3.2.2: the authority names the host; HTTP/1.0 may omit
    Host, and the upstream gets the authority as Host."""
    up = env.upstream()
    px = env.proxy(up.url)
    r = exchange(env, px, raw_get(b"http://h.example:81/ok", None, b"1.0"))
    assert r is not None and r.status == 200, r
    assert wait_until(lambda: up.count() == 1, 2)
    got = up.request(1)
    assert got.request_line == b"GET /ok HTTP/1.1", got
    assert got.get_all("Host") == ["h.example:81"], got.headers


@test
def absolute_form_inspected(env):
    """An absolute-form POST to the inspected route is inspected."""
    up = env.upstream()
    px = env.proxy(up.url, policy=catch_all_policy(), consent=CONSENT)
    raw = (b"POST http://h.example/ingest HTTP/1.1\r\nHost: h.example\r\n"
           b"Content-Type: application/x-ndjson\r\n"
           b"Content-Length: %d\r\n\r\n" % len(BODY)) + BODY
    r = exchange(env, px, raw)
    assert r is not None and r.status == 200, r
    assert r.get("Consent-Result").replace(" ", "") == "kept=1,dropped=1", r
    got = up.request(1)
    assert got.request_line == b"POST /ingest HTTP/1.1", got
    assert got.body == b'{"author_id":"1001","n":1}\n', got.body


ABSOLUTE_REFUSED = [
    # name, target, Host (None: none), detail
    ("host_differs", b"http://other.example/ok", b"h.example",
     "Host differs from the authority"),
    ("port_differs", b"http://h.example:8080/ok", b"h.example:8081",
     "Host differs from the authority"),
    ("no_host_http11", b"http://h.example/ok", None, "missing Host"),
    ("userinfo", b"http://u:p@h.example/ok", b"h.example", "userinfo"),
    ("userinfo_empty", b"http://@h.example/ok", b"h.example", "userinfo"),
    ("scheme_ftp", b"ftp://h.example/ok", b"h.example",
     "scheme is not http or https"),
    ("scheme_ws", b"ws://h.example/ok", b"h.example",
     "scheme is not http or https"),
    ("empty_path", b"http://h.example", b"h.example", "empty path"),
    ("empty_path_query", b"http://h.example?x", b"h.example", "empty path"),
    ("empty_host", b"http:///ok", b"h.example", "empty host"),
    ("no_authority", b"http:/ok", b"h.example", "without an authority"),
    ("bad_port", b"http://h.example:x/ok", b"h.example:x", "invalid host"),
    ("comma_host", b"http://a,b/ok", b"a,b", "invalid host"),
    ("open_bracket", b"http://[::1/ok", b"h.example", "invalid host"),
    ("backslash_host", b"http://h.example\\@evil/ok", b"h.example",
     "userinfo"),
    ("backslash_path", b"http://h.example/ok\\x", b"h.example",
     "backslash in the path"),
    ("bad_escape", b"http://h.example/ok%zz", b"h.example",
     "two hex digits"),
    ("asterisk", b"*", b"h.example", "asterisk-form"),
    ("authority_form", b"h.example:443", b"h.example", "authority-form"),
]


@subtests
def absolute_form_refusals(env, res):
    up = env.upstream()
    px = env.proxy(up.url)
    for name, target, host, why in ABSOLUTE_REFUSED:
        res.check("absolute_form_refusals/" + name, refused, env, up, px,
                  raw_get(target, host), 400, why)


# Refused in origin form (test_routes.py); each must stay refused when the
# same path comes in an absolute-form target.
ALIASES = [
    ("POST", b"//ingest", 404), ("POST", b"/%69ngest", 404),
    ("POST", b"/%2569ngest", 404), ("POST", b"/ingest/", 404),
    ("POST", b"/INGEST", 404), ("POST", b"/ingest;x", 404),
    ("POST", b"/ingest.json", 404), ("POST", b"///ingest//?a=b", 404),
    ("POST", b"/x/../ingest", 404), ("POST", b"/x/%2e%2e/ingest", 404),
    ("POST", b"/x%2fingest", 404), ("POST", b"/x/%5cingest", 404),
    ("POST", b"/./ingest", 404), ("POST", b"/x/..;/ingest", 404),
    ("PUT", b"/ingest", 405), ("PATCH", b"/INGEST", 405),
]


@subtests
def absolute_form_aliases_refused(env, res):
    up = env.upstream()
    px = env.proxy(up.url, policy=catch_all_policy(), consent=CONSENT)

    def one(method, path, status, absolute):
        target = (b"http://h.example" if absolute else b"") + path
        raw = (method.encode() + b" " + target + b" HTTP/1.1\r\n"
               b"Host: h.example\r\nContent-Type: application/x-ndjson\r\n"
               b"Content-Length: %d\r\n\r\n" % len(BODY)) + BODY
        refused(env, up, px, raw, status)

    for method, path, status in ALIASES:
        for absolute in (False, True):
            res.check("absolute_form_aliases_refused/%s %s%s" % (
                method, "http://h.example" if absolute else "",
                path.decode()), one, method, path, status, absolute)


# ------------------------------------------------------ Content-Length

@test
def content_length_ows_taken(env):
    up = env.upstream()
    px = env.proxy(up.url)
    values = [b" 5", b"5 ", b"\t5", b"5\t", b" \t5\t ", b"\t\t5 \t", b"5"]
    for n, v in enumerate(values, 1):
        raw = (b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length:" + v +
               b"\r\n\r\nhello")
        r = exchange(env, px, raw)
        assert r is not None and r.status == 200 and r.body == b"hello", (
            v, r)
        assert wait_until(lambda: up.count() == n, 2), v
        got = up.request(n)
        # the framing upstream is consentgate's own: one plain value
        assert got.get_all("Content-Length") == ["5"], (v, got.head)
        assert b"Content-Length: 5\r\n" in got.head, (v, got.head)
        assert got.body == b"hello", (v, got.body)


@subtests
def content_length_still_strict(env, res):
    up = env.upstream()
    px = env.proxy(up.url)
    for name, v in [("list", b"5, 5"), ("list_tab", b"5\t,5"),
                    ("sign", b"+5"), ("minus", b"-5"), ("hex", b"0x5"),
                    ("inner_tab", b"5\t5"), ("inner_space", b"5 5"),
                    ("only_ows", b" \t "), ("vtab", b"5\x0b"),
                    ("formfeed", b"5\x0c"), ("nbsp", b"\xa05")]:
        raw = (b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length:" + v +
               b"\r\n\r\nhello")
        res.check("content_length_still_strict/" + name, refused, env, up,
                  px, raw, 400)
    raw = (b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\t\r\n"
           b"Content-Length: 5\r\n\r\nhello")
    res.check("content_length_still_strict/two_equal", refused, env, up, px,
              raw, 400, "several Content-Length")


@test
def chunk_extension_bws_taken(env):
    """RFC 9112 7.1.1 allows BWS around ';' and '=' in chunk extensions and
    RFC 9110 5.6.3 says a recipient MUST remove it; the upstream gets the
    body de-chunked, with consentgate's own framing."""
    up = env.upstream()
    px = env.proxy(up.url)
    for n, ext in enumerate([b"5 ;a=b", b"5\t; a = \"x y\" ;b", b"5;a =b"],
                            1):
        raw = (b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
               b"chunked\r\n\r\n" + ext + b"\r\nhello\r\n0 ; z\r\n\r\n")
        r = exchange(env, px, raw)
        assert r is not None and r.status == 200 and r.body == b"hello", (
            ext, r)
        assert wait_until(lambda: up.count() == n, 2), ext
        got = up.request(n)
        assert got.body == b"hello", (ext, got.body)
        assert got.get_all("Content-Length") == ["5"], got.head


# ------------------------------------------------- target characters

TAKEN_TARGETS = [
    b'/echo?q="a"|{b}^`<>[]\\',
    b'/echo?json={"k":[1,2]}&p=a|b',
    b'/echo/a"b<c>d^e`f{g|h}i[j]',
    b'/echo/%7B%7D?x=%22',
    b"/echo/;a=b?c=d/e?f",
]

REFUSED_TARGETS = [
    ("space", b"/echo/a b"), ("htab", b"/echo?a\tb"), ("nul", b"/echo?\x00"),
    ("ctl", b"/echo?\x01"), ("escape", b"/echo?\x1b"), ("del", b"/echo?\x7f"),
    ("cr", b"/echo?a\rb"), ("lf", b"/echo?a\nb"), ("utf8", b"/echo?\xc3\xa9"),
    ("latin1", b"/echo/\xe9"), ("high", b"/echo?\xff"),
    ("fragment", b"/echo#x"), ("fragment_query", b"/echo?a#b"),
    ("backslash_path", b"/echo\\x"), ("percent", b"/echo?100%"),
    ("percent_bad", b"/echo?%g1"),
]


@test
def target_characters_forwarded_byte_for_byte(env):
    up = env.upstream()
    px = env.proxy(up.url)
    for n, target in enumerate(TAKEN_TARGETS, 1):
        r = exchange(env, px, raw_get(target))
        assert r is not None and r.status == 200, (target, r)
        assert wait_until(lambda: up.count() == n, 2), target
        got = up.request(n)
        assert got.request_line == b"GET " + target + b" HTTP/1.1", (
            target, got.request_line)


@subtests
def target_characters_refused(env, res):
    up = env.upstream()
    px = env.proxy(up.url)
    for name, target in REFUSED_TARGETS:
        res.check("target_characters_refused/" + name, refused, env, up, px,
                  raw_get(target), 400)


# --------------------------------------------------------- nginx

class NginxLog(harness.Nginx):
    """nginx answering 200 to everything and logging each request line and
    Host exactly as it received them."""

    def __init__(self, workdir):
        super().__init__(workdir, self._http, "nginx-log")
        self.log = os.path.join(self.dir, "requests.log")

    @staticmethod
    def _http(d, port):
        return f"""
  log_format raw escape=none '$request|$http_host';
  access_log {d}/requests.log raw;
  client_body_temp_path {d};
  proxy_temp_path {d};
  fastcgi_temp_path {d};
  uwsgi_temp_path {d};
  scgi_temp_path {d};
  server {{
    listen 127.0.0.1:{port};
    location / {{ return 200 "ok"; }}
  }}
"""

    def lines(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []


def direct(port, raw):
    """Status nginx itself answers raw with."""
    s = socket.create_connection(("127.0.0.1", port), 3)
    try:
        s.settimeout(3)
        s.sendall(raw)
        data = b""
        while b"\r\n" not in data:
            d = s.recv(4096)
            if not d:
                break
            data += d
        return int(data.split(b" ", 2)[1]) if data else None
    finally:
        s.close()


@test
def nginx_takes_what_consentgate_forwards(env):
    """What consentgate takes, nginx 1.22 takes too (asked directly), and
    through consentgate nginx receives the characters unchanged and an
    absolute-form target as origin form with one Host."""
    ng = NginxLog(env.workdir)
    env.procs.append(ng)
    px = env.proxy(ng.url)
    cases = [(t, b"h.example", t) for t in TAKEN_TARGETS]
    cases.append((b"http://h.example:8080/echo?a=|", b"h.example:8080",
                  b"/echo?a=|"))
    for n, (target, host, origin) in enumerate(cases, 1):
        raw = raw_get(target, host)
        assert direct(ng.port, raw) == 200, ("nginx refuses", target)
        r = exchange(env, px, raw)
        assert r is not None and r.status == 200, (target, r)
        want = b"GET " + origin + b" HTTP/1.1|" + host
        assert wait_until(lambda: want in ng.lines(), 2), (want, ng.lines())


H2C = raw_get(b"/ok", extra=b"Connection: Upgrade, HTTP2-Settings\r\n"
              b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n")


@test
def h2c_upgrade_ignored(env):
    """An offer of h2c only (curl --http2 sends it on every plain
    request) is served as HTTP/1.1 (RFC 9110 7.8: a server may ignore
    Upgrade; RFC 9113 deprecates h2c): 200, and neither Upgrade nor
    HTTP2-Settings reaches the upstream. Other protocols stay 501."""
    up = env.upstream()
    px = env.proxy(up.url)
    r = exchange(env, px, H2C)
    assert r is not None and r.status == 200, r
    assert wait_until(lambda: up.count() == 1, 2)
    names = [k.lower() for k, _ in up.request(1).headers]
    assert "upgrade" not in names and "http2-settings" not in names, names
    # the real client
    out = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
         "--http2", "http://127.0.0.1:%d/ok" % px.port],
        stdout=subprocess.PIPE, timeout=10).stdout.decode()
    assert out == "200 1.1", out
    assert wait_until(lambda: up.count() == 2, 2)
    names = [k.lower() for k, _ in up.request(2).headers]
    assert "upgrade" not in names and "http2-settings" not in names, names


# ------------------------------------------------- still refused

# name, raw request, status: the README's list "valid requests consentgate
# still refuses"
STILL_REFUSED = [
    ("upgrade_websocket", raw_get(b"/ok", extra=b"Connection: Upgrade\r\n"
                                  b"Upgrade: websocket\r\n"), 501),
    ("upgrade_h2c_and_websocket", raw_get(
        b"/ok", extra=b"Connection: Upgrade\r\nUpgrade: h2c, websocket\r\n"),
     501),
    ("connect", b"CONNECT h.example:443 HTTP/1.1\r\nHost: h.example:443"
     b"\r\n\r\n", 501),
    ("options_asterisk", b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    ("expect_other", raw_get(b"/ok", extra=b"Expect: 200-ok\r\n"), 417),
    ("obs_fold", raw_get(b"/ok", extra=b"X-A: b\r\n c\r\n"), 400),
    ("te_gzip", b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
     b"gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    ("te_chunked_htab", b"POST /echo HTTP/1.1\r\nHost: h\r\n"
     b"Transfer-Encoding: chunked\t\r\n\r\n0\r\n\r\n", 400),
    ("te_http10", b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n"
     b"\r\n0\r\n\r\n", 400),
    ("cl_and_te", b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("two_equal_cl", b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 0"
     b"\r\nContent-Length: 0\r\n\r\n", 400),
    ("http_1_2", b"GET /ok HTTP/1.2\r\nHost: h\r\n\r\n", 505),
    ("bare_lf", b"GET /ok HTTP/1.1\nHost: h\n\n", 400),
    ("underscore_twin", raw_get(b"/ok", extra=b"Content_Length: 0\r\n"), 400),
    ("two_content_encoding", b"POST /echo HTTP/1.1\r\nHost: h\r\n"
     b"Content-Encoding: gzip\r\nContent-Encoding: identity\r\n"
     b"Content-Length: 0\r\n\r\n", 400),
    ("raw_utf8_target", raw_get(b"/ok?q=\xc3\xa9"), 400),
    ("host_list", raw_get(b"/ok", host=b"a,b"), 400),
    ("absolute_empty_path", raw_get(b"http://h.example"), 400),
]

# refused in the body: the head may have gone upstream, no request did
STILL_REFUSED_BODY = [
    ("chunk_ext_bws_before_crlf", b"POST /echo HTTP/1.1\r\nHost: h\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n5;a=b \r\nhello\r\n0\r\n\r\n",
     400),
    ("chunk_size_space", b"POST /echo HTTP/1.1\r\nHost: h\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n", 400),
]


@subtests
def still_refused(env, res):
    up = env.upstream()
    px = env.proxy(up.url)
    for name, raw, status in STILL_REFUSED:
        res.check("still_refused/" + name, refused, env, up, px, raw, status)
    for name, raw, status in STILL_REFUSED_BODY:
        res.check("still_refused/" + name, refused, env, up, px, raw, status,
                  "chunk")


if __name__ == "__main__":
    main()
