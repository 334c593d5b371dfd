"""test_early_answer.py: an upstream that answers before it has read the
whole request (issue 8, class 8: "streamed body, early upstream answer").

Two promises are checked through the real binary:

- an upstream connection goes back to the keep-alive pool only after its
  request was written completely and its response read completely, so the
  next request (here from another client) never lands inside an unfinished
  body: the upstream sees it as a clean new request on a fresh connection,
  or on one whose previous exchange ended properly;
- on an inspected route a 2xx never reaches the client when the upstream
  answered before it could have received every kept record (it would count
  records that were never delivered): the client gets 502, and an early
  error status (>= 400) is relayed with Connection: close and no
  Consent-Result.

The upstream here is a raw-socket Python server (not upstream.c): the first
request whose target contains "early" is answered after the head, after
the first chunk, or in the middle of the body; then the server waits a
little and discards the rest of the body by its framing, as a correct
HTTP/1.1 server does, so that a connection the proxy wrongly reuses shows
up as a request after an early answer or as garbage inside a chunked body.
Its sockets have a small receive buffer so that the proxy cannot have
written a multi-MiB body before the answer comes.
"""

import re
import socket
import threading
import time

from harness import Incomplete, check_problem, main, request, test

KIB = 1 << 10
MIB = 1 << 20
MARKER = b"second-request-marker"
RCVBUF = 16 * KIB   # the upstream's receive buffer (window) per connection
PAUSE = 0.3         # s the upstream waits after an early answer
IO = 5.0            # s for any socket operation here
LIFETIME = 30.0     # s at most that one upstream connection is served

BODY = 12 * MIB     # more than the kernel can buffer between the two
                    # (4 MiB send buffer at most, plus the window), so the
                    # proxy's write is still pending when the answer comes

PROXY_CONFIG = {"workers": 1, "response_timeout_ms": 3000,
                "max_body_bytes": 64 * MIB}


# ----------------------------------------------------------- the upstream

class Reader:
    """Buffered reads from one upstream-side socket; every byte received
    is kept in rec.raw."""

    def __init__(self, sock, rec, deadline):
        self.sock = sock
        self.rec = rec
        self.buf = bytearray()
        self.deadline = deadline
        self.eof = False

    def _fill(self):
        if self.eof:
            return False
        left = self.deadline - time.monotonic()
        if left <= 0:
            self.eof = True
            return False
        self.sock.settimeout(min(left, IO))
        try:
            d = self.sock.recv(65536)
        except (socket.timeout, OSError):
            d = b""
        if not d:
            self.eof = True
            return False
        self.rec.raw += d
        self.buf += d
        return True

    def line(self, limit=8 * KIB):
        """One CRLF-terminated line without its CRLF; None at EOF, False
        when no CRLF comes within limit bytes."""
        while b"\r\n" not in self.buf:
            if len(self.buf) > limit:
                return False
            if not self._fill():
                return None
        i = self.buf.find(b"\r\n")
        out = bytes(self.buf[:i])
        del self.buf[:i + 2]
        return out

    def some(self, n):
        """Up to n bytes (at least one); None at EOF."""
        if not self.buf and not self._fill():
            return None
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def drain(self):
        """Read until EOF (bounded by the deadline), keeping the bytes."""
        while self._fill():
            del self.buf[:]


class Body:
    """Consumes one request body by its framing, optionally in steps."""

    def __init__(self, rd, chunked, length):
        self.rd = rd
        self.chunked = chunked
        self.left = length       # Content-Length bytes still to come
        self.chunk_left = None   # None: a chunk-size line is next
        self.trailer = False
        self.chunks = 0          # complete chunks read
        self.data = bytearray()  # the payload

    def run(self, budget=None, chunks=None):
        """'done', 'eof', 'garbage', or 'paused' once budget payload bytes
        or the given number of chunks were read."""
        start = len(self.data)
        for _ in range(1 << 20):
            if budget is not None and len(self.data) - start >= budget:
                return "paused"
            if chunks is not None and self.chunks >= chunks:
                return "paused"
            if not self.chunked:
                if self.left == 0:
                    return "done"
                d = self.rd.some(min(self.left, 65536))
                if d is None:
                    return "eof"
                self.data += d
                self.left -= len(d)
                continue
            if self.trailer:
                ln = self.rd.line()
                if ln is None:
                    return "eof"
                if ln is False:
                    return "garbage"
                if ln == b"":
                    return "done"
                continue
            if self.chunk_left is None:
                ln = self.rd.line()
                if ln is None:
                    return "eof"
                m = re.fullmatch(rb"([0-9a-fA-F]{1,15})(;[ -~\t]*)?",
                                 ln or b"")
                if not m:
                    return "garbage"
                self.chunk_left = int(m.group(1), 16)
                if self.chunk_left == 0:
                    self.trailer = True
                continue
            if self.chunk_left > 0:
                d = self.rd.some(min(self.chunk_left, 65536))
                if d is None:
                    return "eof"
                self.data += d
                self.chunk_left -= len(d)
                continue
            ln = self.rd.line()
            if ln is None:
                return "eof"
            if ln != b"":
                return "garbage"
            self.chunk_left = None
            self.chunks += 1
        return "garbage"


def decode(raw):
    """(complete, payload) of the first request in raw bytes."""
    i = raw.find(b"\r\n\r\n")
    if i < 0:
        return False, b""
    head = raw[:i].lower()
    rest = raw[i + 4:]
    m = re.search(rb"\r\ncontent-length: *(\d+)", head)
    if b"\r\ntransfer-encoding: chunked" not in head:
        n = int(m.group(1)) if m else 0
        return len(rest) >= n, rest[:n]
    out = bytearray()
    pos = 0
    while True:
        j = rest.find(b"\r\n", pos)
        if j < 0:
            return False, bytes(out)
        size = int(rest[pos:j].split(b";")[0] or b"0", 16)
        if size == 0:
            return rest.find(b"\r\n\r\n", j) >= 0 or \
                rest[j + 2:j + 4] == b"\r\n", bytes(out)
        if len(rest) < j + 2 + size + 2:
            out += rest[j + 2:j + 2 + size]
            return False, bytes(out)
        out += rest[j + 2:j + 2 + size]
        pos = j + 2 + size + 2


class Conn:
    """What the upstream saw on one connection."""

    def __init__(self, n):
        self.n = n
        self.raw = bytearray()
        self.requests = []   # dicts: line, early, complete, body
        self.violations = []


class EarlyUpstream:
    """Answers the first request whose target contains "early" early:
    when="head" (after the head), "chunk" (after the first chunk) or
    "mid" (after mid bytes of payload), with `status`, keep-alive unless
    close. Every other request is read completely and answered 200 ok."""

    def __init__(self, when="head", status=200, close=False, mid=512 * KIB):
        self.when, self.status, self.close, self.mid = when, status, close, mid
        self.conns = []
        self.lock = threading.Lock()
        self.early_done = False
        self.stopping = False
        self.threads = []
        self.socks = []
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # inherited by accepted sockets: a small window keeps the proxy's
        # write of a large body pending while the upstream does not read
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.ls.settimeout(0.2)
        self.port = self.ls.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self.threads.append(t)

    def _accept(self):
        deadline = time.monotonic() + 120
        while not self.stopping and time.monotonic() < deadline:
            try:
                s, _ = self.ls.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                rec = Conn(len(self.conns) + 1)
                self.conns.append(rec)
                self.socks.append(s)
            t = threading.Thread(target=self._serve, args=(s, rec),
                                 daemon=True)
            t.start()
            self.threads.append(t)

    def _take_early(self, target):
        with self.lock:
            if self.early_done or b"early" not in target:
                return False
            self.early_done = True
            return True

    def _serve(self, s, rec):
        rd = Reader(s, rec, time.monotonic() + LIFETIME)
        answered_early = False
        try:
            for _ in range(1000):
                ln = rd.line()
                if ln is None:
                    return
                if ln is False or ln == b"":
                    rec.violations.append("not a request line: %r"
                                          % bytes(rd.buf[:80]))
                    rd.drain()
                    return
                headers = []
                while True:
                    h = rd.line()
                    if h is None:
                        rec.violations.append("head cut short: %r" % ln)
                        return
                    if h is False:
                        rec.violations.append("bad head: %r" % ln)
                        rd.drain()
                        return
                    if h == b"":
                        break
                    k, _, v = h.partition(b":")
                    headers.append((k.strip().lower(), v.strip()))
                if answered_early:
                    # the proxy reused a connection whose request had not
                    # been written completely when its response ended
                    rec.violations.append(
                        "request after an early answer: %r" % ln)
                parts = ln.split(b" ")
                target = parts[1] if len(parts) == 3 else b""
                hd = dict(headers)
                chunked = hd.get(b"transfer-encoding", b"").lower() \
                    == b"chunked"
                length = int(hd.get(b"content-length", b"0") or 0)
                req = {"line": ln, "early": False, "complete": False}
                rec.requests.append(req)
                body = Body(rd, chunked, length)
                req["body"] = body
                if self._take_early(target):
                    req["early"] = True
                    answered_early = True
                    if self.when == "chunk":
                        st = body.run(chunks=1)
                    elif self.when == "mid":
                        st = body.run(budget=self.mid)
                    else:
                        st = "paused"
                    if st != "paused":
                        rec.violations.append(
                            "early answer came too late: body %s" % st)
                    s.sendall(b"HTTP/1.1 %d Early\r\nContent-Type: "
                              b"text/plain\r\nContent-Length: 2\r\n%s\r\nno"
                              % (self.status, b"Connection: close\r\n"
                                 if self.close else b""))
                    if self.close:
                        s.shutdown(socket.SHUT_WR)
                        rd.drain()
                        return
                    time.sleep(PAUSE)
                st = body.run()
                if st == "garbage":
                    rec.violations.append(
                        "garbage inside the body of %r: %r"
                        % (ln, bytes(rd.buf[:80])))
                    rd.drain()
                    return
                if st != "done":
                    return
                req["complete"] = True
                if not req["early"]:
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain"
                              b"\r\nContent-Length: 2\r\n\r\nok")
        except OSError:
            return

    def stop(self):
        self.stopping = True
        try:
            self.ls.close()
        except OSError:
            pass
        with self.lock:
            socks = list(self.socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass
        for t in self.threads:
            t.join(2)

    def snapshot(self):
        with self.lock:
            return list(self.conns)


# --------------------------------------------------------------- clients

def ndjson(total):
    """Records of an allowed person (u1), about total bytes of NDJSON."""
    out = []
    n = 0
    size = 0
    while size < total:
        rec = b'{"author_id":"u1","n":%d,"text":"%s"}' % (n, b"x" * 180)
        out.append(rec)
        size += len(rec) + 1
        n += 1
    return out


def send_async(sock, data):
    """Send data from a thread; the proxy may stop reading and close."""
    def run():
        try:
            sock.settimeout(IO * 2)
            sock.sendall(data)
        except OSError:
            pass
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def first_exchange(env, px, raw):
    """Send raw from one client; its response, or None when the
    connection ended without one."""
    c = env.client(px, timeout=IO * 2)
    t = send_async(c.sock, raw)
    try:
        r = c.read_response(timeout=IO * 2)
    except Incomplete:
        r = None
    t.join(IO * 2)
    return c, r


def second_exchange(env, px):
    """A small request from another client: it must be answered by the
    upstream, on a clean connection."""
    c = env.client(px)
    c.send(request("GET", "/ok/" + MARKER.decode()))
    r = c.read_response(timeout=IO + 3)
    assert r.status == 200 and r.body == b"ok", \
        "second client: %r" % r
    return r


def check_upstream(up, reuse=None):
    """The second request reached the upstream as a clean request and
    nowhere else; no connection carried garbage or a request after an
    early answer. reuse=True/False: it came on the first connection or
    on a fresh one."""
    conns = up.snapshot()
    problems = [v for c in conns for v in c.violations]
    assert not problems, "upstream saw: %s" % problems
    seen = sum(bytes(c.raw).count(MARKER) for c in conns)
    clean = [(c, i) for c in conns for i, q in enumerate(c.requests)
             if MARKER in q["line"]]
    assert seen == 1 and len(clean) == 1, \
        "marker seen %d times in the upstream's bytes, %d clean" % (
            seen, len(clean))
    c, i = clean[0]
    for q in c.requests[:i]:
        assert q["complete"] and not q["early"], \
            "second request on connection %d after %r (complete=%s, " \
            "early=%s)" % (c.n, q["line"], q["complete"], q["early"])
    if reuse is not None:
        assert (c.n == 1) == reuse, \
            "second request on upstream connection %d of %d" % (
                c.n, len(conns))


def early_conn(up):
    conns = [c for c in up.snapshot() if any(q["early"] for q in c.requests)]
    assert len(conns) == 1, "the upstream answered on %d connections " \
        "early" % len(conns)
    return conns[0]


def early_request(up):
    reqs = [q for q in early_conn(up).requests if q["early"]]
    assert len(reqs) == 1, "the upstream answered %d requests early" % \
        len(reqs)
    return reqs[0]


def no_2xx(r, up):
    """A 2xx to an inspected request answered early would count records
    the upstream did not receive. (Only if the proxy had written the whole
    request before the answer arrived could it not know; then every
    counted record must be in the bytes the upstream received.)"""
    if r is None or not 200 <= r.status < 300:
        return
    complete, payload = decode(bytes(early_conn(up).raw))
    got = len([ln for ln in payload.split(b"\n") if ln.strip()])
    if payload.startswith(b"["):
        got = payload.count(b'{"author_id"')
    if complete and r.get("Consent-Result") == "kept=%d, dropped=0" % got:
        return
    raise AssertionError(
        "client got %d with Consent-Result %r after an early answer; the "
        "upstream received %d bytes (%d records), complete=%s" % (
            r.status, r.get("Consent-Result"), len(payload), got, complete))


class Checks:
    """Run every check of a test and report all that failed, so that one
    run shows both halves of the bug (the 2xx and the reused connection)."""

    def __init__(self):
        self.errors = []

    def __call__(self, fn, *args):
        try:
            return fn(*args)
        except AssertionError as e:
            self.errors.append(str(e))
        return None

    def done(self):
        if self.errors:
            raise AssertionError(" | ".join(self.errors))


def relayed_error(r, status):
    """An early error status on an inspected route: relayed, the client
    connection closed, no Consent-Result (it would count records that were
    not all delivered)."""
    assert r is not None and r.status == status, \
        "want the upstream's %d relayed: %r" % (status, r)
    assert (r.get("Connection") or "").lower() == "close", r
    assert r.get("Consent-Result") is None, r


def refused_502(r):
    """An early 2xx/3xx on an inspected route: 502, connection closed."""
    assert r is not None, "no response after an early answer"
    check_problem(r, 502)
    assert (r.get("Connection") or "").lower() == "close", r


def early_exchange(env, path, ctype, body, when, status, close,
                   chunked_client=False):
    up = EarlyUpstream(when=when, status=status, close=close)
    env.procs.append(up)
    px = env.proxy(up.url, config=PROXY_CONFIG)
    raw = request("POST", path, [("Content-Type", ctype)], body(),
                  chunked=[60000] if chunked_client else None)
    _, r = first_exchange(env, px, raw)
    q = early_request(up)
    assert q["line"].startswith(b"POST " + path.encode() + b" "), q["line"]
    return up, px, q, r


def streamed(when, status=200, close=False):
    """An NDJSON body that streams (over 256 KiB kept), answered early."""
    def run(env):
        up, px, q, r = early_exchange(
            env, "/ingest?early", "application/x-ndjson",
            lambda: b"\n".join(ndjson(BODY)) + b"\n", when, status, close)
        ck = Checks()
        ck(no_2xx, r, up)
        if status >= 400:
            ck(relayed_error, r, status)
        else:
            ck(refused_502, r)

        def incomplete():
            assert not q["complete"], \
                "the upstream received the whole request after answering"
        ck(incomplete)
        ck(second_exchange, env, px)
        ck(check_upstream, up, False)
        ck.done()
    return run


def content_length(path, ctype, body, when, status=200, close=False,
                   inspected=True, chunked_client=False):
    """A buffered body forwarded with Content-Length, answered early while
    the proxy's write is still pending."""
    def run(env):
        up, px, q, r = early_exchange(env, path, ctype, body, when, status,
                                      close, chunked_client)
        ck = Checks()
        if inspected:
            ck(no_2xx, r, up)
            if status >= 400:
                ck(relayed_error, r, status)
            else:
                ck(refused_502, r)
        else:
            def relayed():
                # a pass route relays whatever the upstream answers
                assert r is not None and r.status == status, r
                assert r.body == b"no", r
            ck(relayed)
        ck(second_exchange, env, px)
        ck(check_upstream, up, False)
        ck.done()
    return run


def array_body():
    return b"[" + b",".join(ndjson(BODY)) + b"]"


def octets():
    return b"z" * BODY


def register(name, fn):
    fn.__name__ = name
    test(fn)


register("streamed_200_after_head", streamed("head"))
register("streamed_200_after_first_chunk", streamed("chunk"))
register("streamed_200_mid_body", streamed("mid"))
register("streamed_200_mid_body_upstream_closes",
         streamed("mid", close=True))
register("streamed_413_after_head", streamed("head", status=413))
register("streamed_413_mid_body", streamed("mid", status=413))
register("content_length_inspected_200_after_head",
         content_length("/ingest?early", "application/json",
                        array_body, "head"))
register("content_length_inspected_200_mid_body",
         content_length("/ingest?early", "application/json",
                        array_body, "mid"))
register("content_length_inspected_413_mid_body_upstream_closes",
         content_length("/ingest?early", "application/json",
                        array_body, "mid", status=413, close=True))
register("pass_route_200_after_head",
         content_length("/upload/early", "application/octet-stream",
                        octets, "head", inspected=False))
register("pass_route_chunked_client_200_mid_body",
         content_length("/upload/early", "application/octet-stream",
                        octets, "mid", inspected=False,
                        chunked_client=True))
register("pass_route_413_after_head_upstream_closes",
         content_length("/upload/early", "application/octet-stream",
                        octets, "head", status=413, close=True,
                        inspected=False))


@test
def streamed_answered_after_complete_body_reuses_connection(env):
    """The control: an upstream that reads the whole streamed body first
    gets its connection pooled and reused, and the client's 2xx counts
    exactly the records the upstream received."""
    up = EarlyUpstream()
    env.procs.append(up)
    px = env.proxy(up.url, config=PROXY_CONFIG)
    recs = ndjson(2 * MIB)
    body = b"\n".join(recs) + b"\n"
    raw = request("POST", "/ingest", [("Content-Type", "application/x-ndjson")],
                  body)
    _, r = first_exchange(env, px, raw)
    assert r is not None and r.status == 200, r
    assert r.get("Consent-Result") == "kept=%d, dropped=0" % len(recs), r
    q = up.snapshot()[0].requests[0]
    assert q["complete"] and bytes(q["body"].data) == body, \
        "upstream body differs (len %d)" % len(q["body"].data)
    second_exchange(env, px)
    check_upstream(up, reuse=True)


@test
def content_length_answered_after_complete_body_reuses_connection(env):
    """The control for buffered bodies: a JSON array forwarded with
    Content-Length and answered after it was read: 200 with the counts,
    and the connection is reused."""
    up = EarlyUpstream()
    env.procs.append(up)
    px = env.proxy(up.url, config=PROXY_CONFIG)
    recs = ndjson(1 * MIB)
    body = b"[" + b",".join(recs) + b"]"
    raw = request("POST", "/ingest", [("Content-Type", "application/json")],
                  body)
    _, r = first_exchange(env, px, raw)
    assert r is not None and r.status == 200, r
    assert r.get("Consent-Result") == "kept=%d, dropped=0" % len(recs), r
    q = up.snapshot()[0].requests[0]
    assert q["complete"] and bytes(q["body"].data) == body, \
        "upstream body differs (len %d)" % len(q["body"].data)
    second_exchange(env, px)
    check_upstream(up, reuse=True)


if __name__ == "__main__":
    main()
