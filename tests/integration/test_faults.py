"""test_faults.py: faults and hostile load against the real binary (issue 10).

An upstream that refuses, resets mid-response, hangs or drips a byte a
second; a client that disconnects mid-body; 300 slowloris connections
while a normal client is served; 10,000 concurrent connections; a
descriptor limit of 64. In every case: no crash (the harness checks the
proxy's stderr and exit), no denied record at the upstream, no truncated
request the upstream would accept, and the right status to the client.

Fault modes of the upstream that the recording stub (upstream.c) has no
path for (a reset, a drip) come from FaultUpstream below, a tiny threaded
socket server that records every complete request it reads.
"""

import resource
import select
import selectors
import socket
import ssl
import struct
import tempfile
import threading
import time

from harness import (Client, Incomplete, check_problem, free_port, main,
                     request, test, test_policy, wait_until)

# u1 has consented (DEFAULT_CONSENT); u2 is unknown: denied.
ALLOWED = [b'{"author_id":"u1","n":%d}' % i for i in range(3)]
DENIED = b'{"author_id":"u2","n":9}'
BATCH = b"\n".join([ALLOWED[0], DENIED, ALLOWED[1], ALLOWED[2]]) + b"\n"
NDJSON = [("Content-Type", "application/x-ndjson")]


def fault_policy():
    """The harness policy with an inspected prefix /in/ and a pass prefix
    /pass/ for FaultUpstream's modes (first: they must win)."""
    pol = test_policy()
    pol["routes"][1:1] = [
        {"method": "POST", "path_prefix": "/in/", "action": "inspect",
         "purpose": "ai-training", "formats": ["ndjson"],
         "subjects": ["/author_id"], "on_deny": "drop"},
        {"method": "*", "path_prefix": "/pass/", "action": "pass"}]
    return pol


def no_denied_record(bodies):
    """No body the upstream received holds a denied person's record."""
    for b in bodies:
        assert b'"u2"' not in b, "a denied record reached the upstream: %r" \
            % b[:300]


def only_allowed(body):
    """A forwarded BATCH: the allowed records, in order, nothing else."""
    lines = [ln for ln in body.split(b"\n") if ln]
    assert lines == ALLOWED, "forwarded %r" % body[:300]


def incomplete_or_problem(c, status, timeout=10):
    """The client sees a problem with status, or a response cut short by a
    close; never a complete response that hides the fault."""
    try:
        r = c.read_response(timeout=timeout)
    except Incomplete as e:
        assert c.eof, "neither an answer nor a close: %s" % e
        return None
    if r.status == status:
        check_problem(r, status)
        return r
    raise AssertionError("a complete %d response hid the fault: %r"
                         % (r.status, r))


def still_serves(px, timeout=5):
    c = px.connect(timeout)
    try:
        c.send(request("GET", "/ok"))
        r = c.read_response(timeout=timeout)
        assert r.status == 200, "after the fault: %r" % r
    finally:
        c.close()


# ------------------------------------------------------------ the stub

class FaultUpstream:
    """A threaded upstream on 127.0.0.1:0 whose last path segment picks
    the answer: reset-head, reset-body, drip-head, drip-body, else 200.
    Records (head, body) of every complete request it read."""

    def __init__(self, drip_s=1.0):
        self.drip_s = drip_s
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(128)
        self.port = self.lsock.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.lock = threading.Lock()
        self.records = []
        self.partial = 0  # connections that ended inside a request
        self.stopping = False
        self.socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            s.settimeout(10)
            with self.lock:
                self.socks.append(s)
            threading.Thread(target=self._serve, args=(s,),
                             daemon=True).start()

    @staticmethod
    def _read_request(s, buf):
        """(head, body, rest) of one complete request, or None."""
        while b"\r\n\r\n" not in buf:
            d = s.recv(65536)
            if not d or len(buf) > 1 << 20:
                return None if not buf else False
            buf += d
        i = buf.index(b"\r\n\r\n") + 4
        head, buf = buf[:i], buf[i:]
        fields = {}
        for ln in head.split(b"\r\n")[1:]:
            k, _, v = ln.partition(b":")
            fields[k.strip().lower()] = v.strip()
        if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
            body = b""
            while True:
                while b"\r\n" not in buf:
                    d = s.recv(65536)
                    if not d:
                        return False
                    buf += d
                j = buf.index(b"\r\n")
                size = int(buf[:j].split(b";")[0], 16)
                buf = buf[j + 2:]
                while len(buf) < size + 2:
                    d = s.recv(65536)
                    if not d:
                        return False
                    buf += d
                if size == 0:
                    # trailers: up to the empty line
                    while not buf.startswith(b"\r\n") and b"\r\n\r\n" not in buf:
                        d = s.recv(65536)
                        if not d:
                            return False
                        buf += d
                    k = 2 if buf.startswith(b"\r\n") else buf.index(b"\r\n\r\n") + 4
                    return head, body, buf[k:]
                body += buf[:size]
                buf = buf[size + 2:]
        n = int(fields.get(b"content-length", b"0"))
        while len(buf) < n:
            d = s.recv(65536)
            if not d:
                return False
            buf += d
        return head, buf[:n], buf[n:]

    def _serve(self, s):
        buf = b""
        try:
            while not self.stopping:
                got = self._read_request(s, buf)
                if not got:
                    if got is False:
                        with self.lock:
                            self.partial += 1
                    return
                head, body, buf = got
                with self.lock:
                    self.records.append((head, body))
                target = head.split(b" ", 2)[1].split(b"?")[0]
                mode = target.rstrip(b"/").rsplit(b"/", 1)[-1]
                if not self._answer(s, mode):
                    return
        except OSError:
            pass
        finally:
            s.close()

    def _reset(self, s):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     struct.pack("ii", 1, 0))
        s.close()

    def _drip(self, s, data):
        for i in range(len(data)):
            if self.stopping:
                return
            s.sendall(data[i:i + 1])
            time.sleep(self.drip_s)

    def _answer(self, s, mode):
        ok = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"
        if mode == b"reset-head":
            s.sendall(b"HTTP/1.1 200 O")
            time.sleep(0.05)
            self._reset(s)
            return False
        if mode == b"reset-body":
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
                      + b"x" * 100)
            time.sleep(0.05)
            self._reset(s)
            return False
        if mode == b"drip-head":
            self._drip(s, ok[:30])  # bounded: the proxy gives up first
            return False
        if mode == b"drip-body":
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n")
            self._drip(s, b"y" * 20)
            return False
        s.sendall(ok)
        return True

    def bodies(self):
        with self.lock:
            return [b for _, b in self.records]

    def count(self):
        with self.lock:
            return len(self.records)

    def stop(self):
        self.stopping = True
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            for s in self.socks:
                try:
                    s.close()
                except OSError:
                    pass


def pass_then_inspected(up, px):
    """The stub got the pass request and the inspected one (only its
    allowed records), and the proxy serves on."""
    bodies = up.bodies()
    assert len(bodies) == 2, "upstream got %d requests" % len(bodies)
    only_allowed(bodies[1])
    still_serves(px)


def fault_env(env, config=None, drip_s=1.0):
    up = FaultUpstream(drip_s)
    env.procs.append(up)
    px = env.proxy(up.url, policy=fault_policy(), config=config)
    return up, px


# ------------------------------------------------------------ upstream faults

@test
def upstream_refuses(env):
    """Nothing listens: 502 on a pass and an inspected route, and again."""
    px = env.proxy("http://127.0.0.1:%d" % free_port())
    for _ in range(2):
        c = env.client(px)
        c.send(request("GET", "/ok"))
        check_problem(c.read_response(), 502)
        c = env.client(px)
        c.send(request("POST", "/ingest", NDJSON, BATCH))
        check_problem(c.read_response(), 502)
    assert px.proc.poll() is None


@test
def upstream_resets_before_the_head(env):
    up, px = fault_env(env)
    for path in ("/pass/reset-head", "/in/reset-head"):
        c = env.client(px)
        c.send(request("POST", path, NDJSON, BATCH))
        check_problem(c.read_response(timeout=5), 502)
    pass_then_inspected(up, px)


@test
def upstream_resets_mid_response(env):
    """A reset after 100 of 1000 body bytes: the client's response is cut
    short (connection closed), never completed or padded."""
    up, px = fault_env(env)
    for path in ("/pass/reset-body", "/in/reset-body"):
        c = env.client(px)
        c.send(request("POST", path, NDJSON, BATCH))
        r = incomplete_or_problem(c, 502)
        if r is None:
            assert len(c.buf) < 1000 + 200, "more bytes than were sent"
    pass_then_inspected(up, px)


@test
def upstream_hangs_504(env):
    """The upstream never answers: 504 at response_timeout_ms."""
    up = env.upstream()
    px = env.proxy(up.url, config={"response_timeout_ms": 500})
    for path in ("/hang", "/hang-ingest"):
        c = env.client(px)
        c.send(request("POST", path, NDJSON, BATCH))
        check_problem(c.read_response(timeout=10), 504)
    assert wait_until(lambda: up.count() == 2, 2), up.requests()
    reqs = up.requests()
    no_denied_record([q.body for q in reqs[1:]])
    only_allowed(reqs[1].body)
    still_serves(px)


@test
def upstream_drips_head_504(env):
    """One response byte a second against response_timeout_ms 500: 504
    (the head never completes)."""
    up, px = fault_env(env, config={"response_timeout_ms": 500})
    for path in ("/pass/drip-head", "/in/drip-head"):
        c = env.client(px)
        c.send(request("POST", path, NDJSON, BATCH))
        check_problem(c.read_response(timeout=10), 504)
    pass_then_inspected(up, px)


@test
def upstream_drips_body_closed(env):
    """The head arrives, then one body byte a second: after
    response_timeout_ms of silence the client connection is closed with
    the body short; never a complete 200."""
    up, px = fault_env(env, config={"response_timeout_ms": 500})
    for path in ("/pass/drip-body", "/in/drip-body"):
        c = env.client(px)
        c.send(request("POST", path, NDJSON, BATCH))
        incomplete_or_problem(c, 504)
    pass_then_inspected(up, px)


# ------------------------------------------------------------ client faults

def long_allowed_ndjson(n_bytes):
    """Allowed NDJSON records, about n_bytes (past the streaming start)."""
    rec = b'{"author_id":"u1","text":"' + b"t" * 200 + b'"}\n'
    return rec * (n_bytes // len(rec) + 1)


def no_complete_request(up):
    """The upstream recorded no request, and no connection carried the
    terminating chunk of a streamed one."""
    time.sleep(0.5)
    assert up.count() == 0, "upstream accepted a request: %r" % up.requests()
    for conn, raw in up.raw_streams().items():
        assert not raw.endswith(b"\r\n0\r\n\r\n"), \
            "upstream connection %d got a terminated chunked body" % conn


@test
def client_gone_mid_body_inspected(env):
    """The client closes after part of its body (Content-Length, chunked,
    and a long NDJSON body that had begun streaming upstream): nothing the
    upstream would take as complete, and the proxy serves on."""
    up = env.upstream()
    px = env.proxy(up.url)
    body = long_allowed_ndjson(2 << 20)
    # 1. Content-Length, half of a small batch
    c = env.client(px)
    c.send(b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Type: "
           b"application/x-ndjson\r\nContent-Length: %d\r\n\r\n" % len(BATCH)
           + BATCH[:len(BATCH) // 2])
    time.sleep(0.1)
    c.close()
    # 2. chunked, cut inside a chunk
    c = env.client(px)
    c.send(b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Type: "
           b"application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
           + b"%x\r\n" % len(BATCH) + BATCH[:20])
    time.sleep(0.1)
    c.close()
    # 3. 1 MiB of a 2 MiB body: streaming upstream has begun
    c = env.client(px)
    c.send(b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Type: "
           b"application/x-ndjson\r\nContent-Length: %d\r\n\r\n" % len(body)
           + body[:1 << 20])
    assert wait_until(lambda: up.raw_bytes() > 256 << 10, 5), \
        "the long body did not start streaming (upstream got %d bytes)" \
        % up.raw_bytes()
    c.close()
    no_complete_request(up)
    still_serves(px)
    assert up.count() == 1  # the GET of still_serves


@test
def client_reset_mid_body_inspected(env):
    """The same with a TCP reset instead of a close, mid-record."""
    up = env.upstream()
    px = env.proxy(up.url)
    body = long_allowed_ndjson(2 << 20)
    c = env.client(px)
    c.send(b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Type: "
           b"application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
           + b"%x\r\n" % len(body) + body[:(1 << 20) + 77])
    assert wait_until(lambda: up.raw_bytes() > 256 << 10, 5), \
        "the long body did not start streaming"
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                      struct.pack("ii", 1, 0))
    c.close()
    no_complete_request(up)
    still_serves(px)


# ------------------------------------------------------------ slowloris

def served_within(px, bound):
    """A normal client's GET answered 200; its latency in seconds."""
    return timed_get(lambda: px.connect(bound), bound)


def timed_get(connect, bound):
    """GET /ok on connect() answered 200 within bound s; the seconds."""
    t0 = time.monotonic()
    c = connect()
    try:
        c.send(request("GET", "/ok"))
        r = c.read_response(timeout=bound)
    finally:
        c.close()
    took = time.monotonic() - t0
    assert r.status == 200, r
    assert took < bound, "served after %.2fs" % took
    return took


@test
def slowloris_300(env):
    """300 connections drip a header line every 0.3 s; a normal client is
    served meanwhile (bound 3 s on a shared machine; the figure is
    printed); every dripper gets 408 or is closed by head_timeout_ms plus
    the lingering close, and nothing reaches the upstream from them."""
    up = env.upstream()
    head_ms = 2000
    px = env.proxy(up.url, config={"head_timeout_ms": head_ms})
    sel = selectors.DefaultSelector()
    drippers = {}
    for i in range(300):
        s = socket.create_connection(("127.0.0.1", px.port), 5)
        s.setblocking(False)
        s.send(b"GET /ok HTTP/1.1\r\nHost: x\r\n")
        drippers[s] = {"got": b"", "closed": False, "t0": time.monotonic()}
        sel.register(s, selectors.EVENT_READ)
    env.clients.extend(_Closer(s) for s in drippers)
    t_start = time.monotonic()
    lat = []
    line = 0
    next_drip = t_start
    deadline = t_start + head_ms / 1000 + 2.0 + 4.0  # head + linger + slack
    while time.monotonic() < deadline:
        now = time.monotonic()
        if now >= next_drip:
            line += 1
            for s, st in drippers.items():
                if st["closed"]:
                    continue
                try:
                    s.send(b"X-Drip-%d: y\r\n" % line)
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    st["closed"] = True
            next_drip = now + 0.3
            if len(lat) < 3 and now - t_start < head_ms / 1000 - 0.5:
                lat.append(served_within(px, 3.0))
        if read_ready(sel, drippers):
            break
    sel.close()
    open_ = sum(1 for st in drippers.values() if not st["closed"])
    assert open_ == 0, "%d drippers still open %.1fs after the start" % (
        open_, time.monotonic() - t_start)
    bad = [st["got"][:40] for st in drippers.values()
           if st["got"] and not st["got"].startswith(b"HTTP/1.1 408 ")]
    assert not bad, "drippers got %r" % bad[:3]
    n408 = sum(1 for st in drippers.values() if st["got"])
    assert lat, "no normal request was tried"
    assert up.count() == len(lat), "upstream got %d requests for %d GETs" % (
        up.count(), len(lat))
    lat.append(served_within(px, 3.0))  # and after
    print("  slowloris: 300 drippers, %d got 408, the rest closed; normal "
          "client latency %s s" % (n408, ", ".join("%.3f" % x for x in lat)))


def read_ready(sel, states):
    """Read what the ready sockets of sel have (into states[s]["got"]),
    marking those the proxy closed; True when every one is closed."""
    for key, _ in sel.select(0.05):
        st = states[key.fileobj]
        try:
            d = key.fileobj.recv(65536)
        except (BlockingIOError, InterruptedError):
            continue
        except OSError:
            d = b""
        if d:
            st["got"] += d
        else:
            st["closed"] = True
            sel.unregister(key.fileobj)
    return all(st["closed"] for st in states.values())


class _Closer:
    """So that Env.close closes raw sockets like clients."""

    def __init__(self, s):
        self.s = s

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def tls_certs():
    """Certificates made by the openssl command line (tlsfiles.py), once."""
    global _certs
    if _certs is None:
        from tlsfiles import Certs
        _certs = Certs(tempfile.mkdtemp(prefix="cg-faults-certs-"))
    return _certs


_certs = None


def tls_get_within(port, bound):
    """A normal TLS client's GET answered 200; its latency in seconds."""
    ctx = ssl.create_default_context(cafile=tls_certs().ca)
    ctx.set_alpn_protocols(["http/1.1"])

    def connect():
        raw = socket.create_connection(("127.0.0.1", port), bound)
        c = Client.__new__(Client)  # the harness parser over a TLS socket
        c.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        c.sock.settimeout(bound)
        c.buf, c.eof = bytearray(), False
        return c
    return timed_get(connect, bound)


def client_hello():
    """The bytes of a real TLS ClientHello (Python's ssl, memory BIOs)."""
    ctx = ssl.create_default_context(cafile=tls_certs().ca)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


@test
def tls_handshake_slowloris_300(env):
    """300 connections to the TLS port: half stall after the TCP handshake,
    half drip a real ClientHello a byte every 0.3 s. A normal TLS client is
    served meanwhile (bound 3 s; figures printed); every one of the 300 is
    closed by tls_handshake_timeout_ms plus slack; nothing reaches the
    upstream but the normal client's requests."""
    c = tls_certs()
    up = env.upstream()
    hs_ms = 2000
    px = env.proxy(up.url, config={"tls_handshake_timeout_ms": hs_ms},
                   extra=("--tls-cert", c.server[0], "--tls-key", c.server[1]))
    hello = client_hello()
    sel = selectors.DefaultSelector()
    conns = {}
    for i in range(300):
        s = socket.create_connection(("127.0.0.1", px.port), 5)
        s.setblocking(False)
        conns[s] = {"drip": i % 2 == 0, "off": 0, "got": b"",
                    "closed": False}
        sel.register(s, selectors.EVENT_READ)
    env.clients.extend(_Closer(s) for s in conns)
    t_start = time.monotonic()
    lat = []
    next_drip = t_start
    deadline = t_start + hs_ms / 1000 + 5.0
    while time.monotonic() < deadline:
        now = time.monotonic()
        if now >= next_drip:
            for s, st in conns.items():
                if st["closed"] or not st["drip"] or st["off"] >= len(hello):
                    continue
                try:
                    st["off"] += s.send(hello[st["off"]:st["off"] + 1])
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    st["closed"] = True
            next_drip = now + 0.3
            if len(lat) < 3 and now - t_start < hs_ms / 1000 - 0.5:
                lat.append(tls_get_within(px.port, 3.0))
        if read_ready(sel, conns):
            break
    took = time.monotonic() - t_start
    sel.close()
    open_ = sum(1 for st in conns.values() if not st["closed"])
    assert open_ == 0, "%d handshakes still open after %.1fs" % (open_, took)
    assert lat, "no normal request was tried"
    lat.append(tls_get_within(px.port, 3.0))
    assert wait_until(lambda: up.count() == len(lat), 2), \
        "upstream got %d requests for %d GETs" % (up.count(), len(lat))
    dripped = max(st["off"] for st in conns.values())
    print("  TLS slowloris: 300 stalled or dripping handshakes (up to %d of "
          "%d ClientHello bytes) all closed after %.1fs; normal TLS client "
          "latency %s s" % (dripped, len(hello), took,
                            ", ".join("%.3f" % x for x in lat)))


# ------------------------------------------------------------ many connections

def raise_nofile(want):
    """Raise this process's descriptor limit to want; the limit got."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (want, max(want, hard)))  # root may raise hard
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@test
def ten_thousand_connections(env):
    """10,000 client connections held open (one in ten after a keep-alive
    request): the proxy accepts them all, serves a normal request while
    they are open and after they close, and stays up."""
    n = 10000
    got = raise_nofile(n + 2000)
    assert got >= n + 500, "descriptor limit %d: cannot open %d" % (got, n)
    up = env.upstream()
    px = env.proxy(up.url, config={"workers": 2, "head_timeout_ms": 120000,
                                   "idle_timeout_ms": 120000},
                   nofile=min(resource.getrlimit(resource.RLIMIT_NOFILE)[1],
                              2 * n + 1000))
    socks = []
    try:
        for i in range(n):
            socks.append(socket.create_connection(("127.0.0.1", px.port), 10))
        # keep-alive requests on every tenth, in batches of 100
        ka = socks[::10]
        for b in range(0, len(ka), 100):
            batch = ka[b:b + 100]
            for s in batch:
                s.sendall(request("GET", "/ok"))
            for s in batch:
                s.settimeout(10)
                got_ = b""
                while not got_.endswith(b"\r\n\r\nok\n"):
                    d = s.recv(4096)
                    assert d, "a keep-alive connection was closed"
                    got_ += d
                assert got_.startswith(b"HTTP/1.1 200 "), got_[:80]
        assert px.proc.poll() is None, "proxy exited"
        t = served_within(px, 5.0)
        # every idle one is still open: none was reset or answered
        sel = selectors.DefaultSelector()
        for s in socks:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
        ready = sel.select(0.2)
        sel.close()
        assert not ready, "%d held connections were closed or answered" \
            % len(ready)
    finally:
        for s in socks:
            s.close()
    assert wait_until(lambda: px.proc.poll() is None, 0.5)
    t2 = served_within(px, 5.0)
    assert up.count() == len(socks[::10]) + 2, up.count()
    print("  10,000 connections: a normal GET in %.3f s while open, %.3f s "
          "after" % (t, t2))


@test
def nofile_64_pauses_and_recovers(env):
    """ulimit -n 64: with 100 clients holding connections, accepting
    pauses (logged) without a crash; the clients it took are served (or,
    when no descriptor is left for their upstream connection, get 503)
    without leaking a record; once they close, new clients are served."""
    up = env.upstream()
    px = env.proxy(up.url, config={"workers": 1}, nofile=64)
    held = []
    for _ in range(100):
        try:
            held.append(px.connect(timeout=2))
        except OSError:
            break
    env.clients.extend(held)
    assert wait_until(lambda: b"pausing accepts" in b"".join(px.stderr), 3), \
        "no log line about the pause: %r" % b"".join(px.stderr)[-300:]
    # the accepted ones are served; the rest wait in the backlog
    for c in held:
        c.send(request("POST", "/ingest", NDJSON, BATCH))
    served = refused = 0
    pending = {c.sock: c for c in held}
    deadline = time.monotonic() + 5
    while pending and time.monotonic() < deadline:
        # the accepted ones answer at once; stop 1 s after the last answer
        ready, _, _ = select.select(list(pending), [], [],
                                    1.0 if served else 5.0)
        if not ready:
            break
        for s in ready:
            c = pending.pop(s)
            r = c.read_response(timeout=5)
            if r.status != 200:  # no descriptor left for its upstream
                check_problem(r, 503)
                refused += 1
            served += 1
    assert served - refused >= 5, "only %d of the held clients were " \
        "served (%d got 503)" % (served - refused, refused)
    reqs = up.requests()
    assert len(reqs) >= served - refused, (len(reqs), served, refused)
    for q in reqs:
        only_allowed(q.body)
    for c in held:
        c.close()
    ok = wait_until(lambda: _served_once(px), 5, step=0.1)
    assert ok, "no service after the clients left"
    assert px.proc.poll() is None, "proxy exited"
    for q in up.requests():
        if q.request_line.startswith(b"POST"):
            only_allowed(q.body)
    print("  ulimit -n 64: %d clients served, %d got 503, %d waited in the "
          "backlog" % (served - refused, refused, len(held) - served))


def _served_once(px):
    try:
        c = px.connect(timeout=1)
        c.send(request("GET", "/ok"))
        r = c.read_response(timeout=1)
        c.close()
        return r.status == 200
    except (Incomplete, OSError):
        return False


if __name__ == "__main__":
    main()
