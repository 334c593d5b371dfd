"""harness.py: what every integration suite shares.

Starts the recording test upstream and the real consentgate binary on
loopback, talks raw HTTP/1.1 over sockets, and runs tests with one line of
output each (`ok name` / `FAIL name: why`) and a closing `N passed, N failed`.
Every socket has a timeout and every loop is bounded in count and time.
Python 3 standard library only.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("BUILD", os.path.join(ROOT, "build"))
CONSENTGATE = os.environ.get("CONSENTGATE", os.path.join(BUILD, "consentgate"))
UPSTREAM_BIN = os.environ.get("TEST_UPSTREAM", os.path.join(BUILD, "test-upstream"))

START_TIMEOUT = 5.0  # s for a process to say it listens
IO_TIMEOUT = 5.0     # s for any socket operation
STOP_GRACE = 3.0     # s for the proxy to exit after SIGTERM

# CG_WRAP="valgrind ..." runs consentgate under that command (make
# valgrind): it starts and exits slower, and a nonzero exit after SIGTERM
# (--error-exitcode) or a SIGKILL (no leak check ran) is a failure.
WRAP = os.environ.get("CG_WRAP", "").split()
if WRAP:
    START_TIMEOUT, STOP_GRACE = 60.0, 60.0

# Paths the test upstream serves (see upstream.c); each is a pass route.
PASS_PREFIXES = ["/echo", "/chunked", "/close-delimited", "/empty204",
                 "/not-modified", "/slow", "/hang", "/die-mid", "/big", "/ok",
                 "/r200", "/static", "/upload", "/close-after",
                 "/resp-hop", "/early-hints", "/bad-cl", "/cl-te",
                 "/slow-read"]

EEA = ["AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR",
       "HU", "IE", "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK",
       "SI", "ES", "SE", "IS", "LI", "NO"]


def test_policy():
    """The example policy of the rule-file format plus pass routes for the
    upstream scenarios and a blocking variant of the ingest route."""
    routes = [{"method": "GET", "path": "/status", "action": "pass"}]
    # Inspected routes whose upstream scenario fails (upstream.c matches
    # by prefix): before the pass routes, which would match them first.
    for p in ("/die-mid-ingest", "/hang-ingest", "/slow-ingest"):
        routes.append({"method": "POST", "path": p, "action": "inspect",
                       "purpose": "ai-training", "formats": ["ndjson"],
                       "subjects": ["/author_id"], "on_deny": "drop"})
    for p in PASS_PREFIXES:
        routes.append({"method": "*", "path_prefix": p, "action": "pass"})
    routes.append({"name": "ingest", "method": "POST", "path": "/ingest",
                   "action": "inspect", "purpose": "ai-training",
                   "formats": ["ndjson", "array", "object"],
                   "subjects": ["/author_id", "/mentions/*/id"],
                   "on_deny": "drop"})
    routes.append({"name": "ingest-block", "method": "POST",
                   "path": "/ingest-block", "action": "inspect",
                   "purpose": "ai-training",
                   "formats": ["ndjson", "array", "object"],
                   "subjects": ["/author_id", "/mentions/*/id"],
                   "on_deny": "block"})
    routes.append({"name": "profile", "method": "POST", "path": "/profile",
                   "action": "inspect", "purpose": "ai-training",
                   "formats": ["object"], "subject_header": "X-Subject-Id",
                   "on_deny": "block"})
    routes.append({"name": "ingest-cu", "method": "POST", "path": "/ingest-cu",
                   "action": "inspect", "purpose": "ai-training",
                   "formats": ["ndjson"], "subjects": ["/author_id"],
                   "on_deny": "drop", "content_usage": True})
    routes.append({"name": "batch", "method": "POST", "path": "/batch",
                   "action": "inspect", "purpose": "ai-training",
                   "formats": ["array_at"], "array_at": "/data",
                   "subjects": ["/author_id"], "on_deny": "drop"})
    return {
        "policy": "integ-test",
        "purposes": {"ai-training": {"aipref": "train-ai",
                                     "fideslang": "train_ai_system"}},
        # test_consent's tables hold analytics rows: knowingly not decided
        "ignored_purposes": ["analytics"],
        "jurisdictions": {"EEA": EEA},
        "routes": routes,
        "rules": [
            {"id": "unknown-person", "if": {"known": False}, "then": "deny"},
            {"id": "strict-granted",
             "if": {"jurisdiction": ["EEA", "GB", "CH"], "status": ["granted"]},
             "then": "allow"},
            {"id": "strict-otherwise",
             "if": {"jurisdiction": ["EEA", "GB", "CH"]}, "then": "deny"},
            {"id": "opted-out", "if": {"status": ["denied", "withdrawn"]},
             "then": "deny"},
            {"id": "default-allow", "then": "allow"},
        ],
    }


DEFAULT_CONSENT = ("subject,purpose,status,jurisdiction,updated_at,evidence\n"
                   "u1,ai-training,granted,US,2025-03-01T12:00:00Z,ev-1\n")


# ---------------------------------------------------------------- processes

class Upstream:
    """The recording test upstream (upstream.c)."""

    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "rec-%d" % id(self))
        os.makedirs(self.dir)
        self.proc = subprocess.Popen([UPSTREAM_BIN, "--record", self.dir],
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        line = _readline_timeout(self.proc.stdout, START_TIMEOUT)
        m = re.match(rb"listening (\d+)", line or b"")
        if not m:
            self.stop()
            raise AssertionError("test upstream did not start: %r" % line)
        self.port = int(m.group(1))
        self.url = "http://127.0.0.1:%d" % self.port

    def requests(self):
        """Every complete request recorded so far, in arrival order."""
        out = []
        for name in sorted(os.listdir(self.dir)):
            # .tmp-N.meta: a request still being written (then renamed)
            if not name.endswith(".meta") or name.startswith("."):
                continue
            n = name[:-5]
            meta = {}
            with open(os.path.join(self.dir, name), "rb") as f:
                for line in f.read().decode().splitlines():
                    k, v = line.split(" ", 1)
                    meta[k] = int(v)
            with open(os.path.join(self.dir, n + ".head"), "rb") as f:
                head = f.read()
            with open(os.path.join(self.dir, n + ".body"), "rb") as f:
                body = f.read()
            out.append(Recorded(int(n), head, body, meta,
                                _read(os.path.join(self.dir, n + ".trailers"))))
        return out

    def count(self):
        return sum(1 for n in os.listdir(self.dir)
                   if n.endswith(".meta") and not n.startswith("."))

    def request(self, n):
        """Request number n (1-based) or None."""
        base = os.path.join(self.dir, "%06d" % n)
        if not os.path.exists(base + ".meta"):
            return None
        meta = {}
        with open(base + ".meta", "rb") as f:
            for line in f.read().decode().splitlines():
                k, v = line.split(" ", 1)
                meta[k] = int(v)
        with open(base + ".head", "rb") as f:
            head = f.read()
        with open(base + ".body", "rb") as f:
            body = f.read()
        return Recorded(n, head, body, meta, _read(base + ".trailers"))

    def raw_streams(self):
        """Bytes received per upstream connection, by connection number."""
        out = {}
        for name in sorted(os.listdir(self.dir)):
            if name.startswith("conn-") and name.endswith(".raw"):
                with open(os.path.join(self.dir, name), "rb") as f:
                    out[int(name[5:11])] = f.read()
        return out

    def raw_bytes(self):
        return sum(len(v) for v in self.raw_streams().values())

    def stop(self):
        _stop(self.proc, signal.SIGKILL, 2)


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


def _fields(lines):
    out = []
    for ln in lines:
        if not ln:
            continue
        k, _, v = ln.partition(b":")
        out.append((k.decode("latin-1"), v.strip().decode("latin-1")))
    return out


class Recorded:
    def __init__(self, n, head, body, meta, trailers=b""):
        self.n = n
        self.head = head
        self.body = body
        self.conn = meta.get("conn")
        self.seq = meta.get("seq")
        self.chunked = meta.get("chunked")
        lines = head.split(b"\r\n")
        self.request_line = lines[0]
        self.headers = _fields(lines[1:])
        self.trailer_bytes = trailers
        self.trailers = _fields(trailers.split(b"\r\n"))

    def get_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def get(self, name):
        v = self.get_all(name)
        return v[0] if v else None

    def get_trailers(self, name):
        return [v for k, v in self.trailers if k.lower() == name.lower()]

    def __repr__(self):
        return "<upstream request %d %r>" % (self.n, self.request_line)


class Proxy:
    """consentgate serve on 127.0.0.1:0 against an upstream URL."""

    def __init__(self, workdir, upstream_url, policy=None, consent=None,
                 config=None, extra=(), nofile=None):
        self.workdir = workdir
        tag = "%d" % id(self)
        pol = os.path.join(workdir, "policy-%s.json" % tag)
        with open(pol, "w") as f:
            json.dump(policy if policy is not None else test_policy(), f,
                      indent=1)
        csv = os.path.join(workdir, "consent-%s.csv" % tag)
        if isinstance(consent, str) and consent.startswith("@"):
            csv = consent[1:]  # a file made elsewhere (a snapshot)
        else:
            with open(csv, "w") as f:
                f.write(consent if consent is not None else DEFAULT_CONSENT)
        self.policy_path, self.consent_path = pol, csv
        args = WRAP + [CONSENTGATE, "serve", "--listen", "127.0.0.1:0",
                "--upstream", upstream_url, "--policy", pol, "--consent", csv]
        if config:
            cfg = os.path.join(workdir, "config-%s.json" % tag)
            with open(cfg, "w") as f:
                json.dump(config, f)
            args += ["--config", cfg]
        args += list(extra)
        if not os.access(CONSENTGATE, os.X_OK):
            raise AssertionError("no consentgate binary at %s" % CONSENTGATE)
        pre = None
        if nofile:
            import resource
            pre = lambda: resource.setrlimit(resource.RLIMIT_NOFILE,
                                             (nofile, nofile))
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, preexec_fn=pre)
        self.stderr = []
        self.port = None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            line = _readline_timeout(self.proc.stderr,
                                     deadline - time.monotonic())
            if line is None or line == b"":
                break
            self.stderr.append(line)
            m = re.search(rb"consentgate: listening on 127\.0\.0\.1:(\d+)",
                          line)
            if m:
                self.port = int(m.group(1))
                break
        if self.port is None:
            err = b"".join(self.stderr)[-300:]
            self.stop()
            raise AssertionError("consentgate serve did not start: %r" % err)
        # Keep draining stderr so the proxy never blocks on a full pipe.
        self._drain = threading.Thread(target=self._read_stderr, daemon=True)
        self._drain.start()

    def _read_stderr(self):
        try:
            for line in iter(self.proc.stderr.readline, b""):
                if len(self.stderr) < 10000:
                    self.stderr.append(line)
        except (OSError, ValueError):
            pass

    def connect(self, timeout=IO_TIMEOUT):
        return Client(self.port, timeout)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        """Exit code, or None if still running after timeout seconds."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        return _stop(self.proc, signal.SIGTERM, STOP_GRACE)

    def problems(self):
        """A crash or sanitizer report seen during the test, or None."""
        rc = self.proc.poll()
        if rc is not None and getattr(self, "_drain", None) is not None:
            self._drain.join(2)  # the whole report, up to the pipe's end
        text = b"".join(self.stderr).decode("utf-8", "replace")
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                       "runtime error:", "WARNING: ThreadSanitizer"):
            i = text.find(marker)
            if i >= 0:
                return "sanitizer: " + " ".join(text[i:i + 400].split())
        if rc is not None and rc < 0 and rc not in (-signal.SIGTERM,
                                                    -signal.SIGKILL):
            return "proxy died by signal %d; stderr: %s" % (
                -rc, " ".join(text[-300:].split()))
        if WRAP and rc is not None and rc != 0:
            i = max(text.find("=="), 0)
            return "%s: exit %d: %s" % (os.path.basename(WRAP[0]), rc,
                                        " ".join(text[i:i + 600].split()))
        return None


def _stop(proc, sig, grace):
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        except OSError:
            pass
    return proc.returncode


def _readline_timeout(stream, timeout):
    """One line from a pipe within timeout seconds; None on timeout."""
    box = []
    t = threading.Thread(target=lambda: box.append(stream.readline()),
                         daemon=True)
    t.start()
    t.join(max(timeout, 0.01))
    return box[0] if box else None


def admin_port(px):
    """The port of px's admin listener, from its "admin on" start line."""
    assert wait_until(lambda: any(b"admin on" in l for l in px.stderr), 5)
    for line in px.stderr:
        m = re.search(rb"admin on .* \(port (\d+)\)", line)
        if m:
            return int(m.group(1))
    raise AssertionError("no admin port in %r" % px.stderr[:5])


def free_port():
    """A loopback port with nothing listening on it."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Nginx:
    """Debian's nginx on 127.0.0.1 (a free port), one process in the
    foreground, its files in workdir/name. http_body(dir, port) gives what
    goes inside `http { }`. Stopped like the other processes (Env.procs)."""

    BIN = shutil.which("nginx") or "/usr/sbin/nginx"

    def __init__(self, workdir, http_body, name="nginx"):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        d = self.dir
        conf = ("daemon off;\nmaster_process off;\nworker_processes 1;\n"
                "error_log %s/error.log;\npid %s/nginx.pid;\n"
                "events { worker_connections 128; }\nhttp {\n%s}\n"
                % (d, d, http_body(d, self.port)))
        path = os.path.join(d, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        self.proc = subprocess.Popen([self.BIN, "-c", path, "-p", d],
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        if not wait_until(self._up, START_TIMEOUT):
            self.stop()
            raise AssertionError("nginx did not start on port %d" % self.port)

    def _up(self):
        if self.proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", self.port), 0.2).close()
            return True
        except OSError:
            return False

    def stop(self):
        return _stop(self.proc, signal.SIGTERM, 3)


# ------------------------------------------------------------------ clients

class Incomplete(Exception):
    """The peer closed (or went silent) before a complete response."""


class Response:
    def __init__(self, status, reason, headers, body, raw):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.raw = raw

    def get_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def get(self, name):
        v = self.get_all(name)
        return v[0] if v else None

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<response %d %r %r>" % (self.status, self.headers,
                                        self.body[:200])


class Client:
    """One client connection with a receive buffer."""

    def __init__(self, port, timeout=IO_TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout)
        self.sock.settimeout(timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()  # appends stay linear for large bodies
        self.eof = False

    def send(self, data):
        self.sock.sendall(data)

    def send_pieces(self, data, rng, max_pieces=8):
        """Send data in a few random writes (separate TCP segments)."""
        if len(data) < 2 or max_pieces < 2:
            self.send(data)
            return
        k = rng.randint(1, min(max_pieces, len(data)) - 1)
        cuts = sorted(rng.sample(range(1, len(data)), k))
        prev = 0
        for c in cuts + [len(data)]:
            self.sock.sendall(data[prev:c])
            prev = c

    def _fill(self, deadline):
        if self.eof:
            raise Incomplete("connection closed; %d bytes buffered: %r"
                             % (len(self.buf), self.buf[:120]))
        left = deadline - time.monotonic()
        if left <= 0:
            raise Incomplete("timeout; %d bytes buffered: %r"
                             % (len(self.buf), self.buf[:120]))
        self.sock.settimeout(left)
        try:
            d = self.sock.recv(262144)
        except socket.timeout:
            raise Incomplete("timeout; %d bytes buffered: %r"
                             % (len(self.buf), self.buf[:120]))
        except ConnectionResetError:
            d = b""
        if not d:
            self.eof = True
            raise Incomplete("connection closed; %d bytes buffered: %r"
                             % (len(self.buf), self.buf[:120]))
        self.buf += d

    def _take_line(self, deadline):
        while b"\r\n" not in self.buf:
            if len(self.buf) > 1 << 20:
                raise AssertionError("line too long")
            self._fill(deadline)
        i = self.buf.find(b"\r\n")
        line = bytes(self.buf[:i])
        del self.buf[:i + 2]
        return line

    def read_response(self, head_request=False, timeout=IO_TIMEOUT,
                      skip_1xx=True):
        """Read one whole response; Incomplete when it is cut short."""
        deadline = time.monotonic() + timeout
        while True:
            start_len = len(self.buf)
            while b"\r\n\r\n" not in self.buf:
                if len(self.buf) > 1 << 20:
                    raise AssertionError("response head too long")
                self._fill(deadline)
            i = self.buf.find(b"\r\n\r\n")
            head = bytes(self.buf[:i])
            del self.buf[:i + 4]
            lines = head.split(b"\r\n")
            m = re.match(rb"HTTP/1\.([01]) (\d{3}) ?(.*)$", lines[0])
            if not m:
                raise AssertionError("bad status line %r" % lines[0])
            status = int(m.group(2))
            headers = []
            for ln in lines[1:]:
                k, sep, v = ln.partition(b":")
                if not sep:
                    raise AssertionError("bad header line %r" % ln)
                headers.append((k.decode("latin-1"),
                                v.strip().decode("latin-1")))
            if 100 <= status < 200 and skip_1xx:
                continue
            break
        r = Response(status, m.group(3).decode("latin-1"), headers, b"",
                     head + b"\r\n\r\n")
        te = r.get("Transfer-Encoding")
        cl = r.get_all("Content-Length")
        if len(cl) > 1:
            raise AssertionError("several Content-Length: %r" % cl)
        if head_request or status in (204, 304) or 100 <= status < 200:
            return r
        if te is not None:
            if te.lower() != "chunked":
                raise AssertionError("response TE %r" % te)
            body = []
            while True:
                size_line = self._take_line(deadline)
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    while self._take_line(deadline) != b"":
                        pass
                    break
                while len(self.buf) < size + 2:
                    self._fill(deadline)
                body.append(bytes(self.buf[:size]))
                if self.buf[size:size + 2] != b"\r\n":
                    raise AssertionError("chunk not followed by CRLF")
                del self.buf[:size + 2]
            r.body = b"".join(body)
        elif cl:
            n = int(cl[0])
            while len(self.buf) < n:
                self._fill(deadline)
            r.body = bytes(self.buf[:n])
            del self.buf[:n]
        else:
            # Close-delimited: the body ends when the connection does.
            while True:
                try:
                    self._fill(deadline)
                except Incomplete:
                    if not self.eof:
                        raise
                    break
            r.body = bytes(self.buf)
            self.buf = bytearray()
        r.raw += r.body
        return r

    def wait_closed(self, timeout=IO_TIMEOUT):
        """True when the peer closes within timeout with nothing more sent
        (bytes that arrive are kept in buf)."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            try:
                self._fill(deadline)
            except Incomplete:
                return self.eof
        return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def request(method, target, headers=(), body=b"", host="test.local",
            chunked=None):
    """Bytes of a well-formed request; chunked = list of chunk sizes."""
    lines = ["%s %s HTTP/1.1" % (method, target), "Host: %s" % host]
    for k, v in headers:
        lines.append("%s: %s" % (k, v))
    if chunked is not None:
        lines.append("Transfer-Encoding: chunked")
    elif body or method in ("POST", "PUT"):
        lines.append("Content-Length: %d" % len(body))
    out = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if chunked is not None:
        out += chunk(body, chunked)
    else:
        out += body
    return out


def chunk(body, sizes, trailers=b""):
    """body in chunks of the given sizes (the last repeats), then 0 + CRLF."""
    out = []
    off = 0
    i = 0
    while off < len(body):
        n = sizes[min(i, len(sizes) - 1)] if sizes else len(body)
        n = max(1, n)
        part = body[off:off + n]
        out.append(b"%x\r\n" % len(part) + part + b"\r\n")
        off += len(part)
        i += 1
    out.append(b"0\r\n" + trailers + b"\r\n")
    return b"".join(out)


_PATTERN = {}


def pattern(n, off=0):
    """The body the test upstream's /big and /chunked send."""
    key = (n, off)
    if key not in _PATTERN:
        _PATTERN[key] = bytes(ord("a") + ((k * 7 + k // 26) % 26)
                              for k in range(off, off + n))
    return _PATTERN[key]


def check_problem(resp, status):
    """resp is an RFC 9457 problem with this status."""
    assert resp.status == status, "status %d, want %d: %r" % (
        resp.status, status, resp)
    ct = (resp.get("Content-Type") or "").split(";")[0].strip().lower()
    assert ct == "application/problem+json", "Content-Type %r" % ct
    doc = resp.json()
    assert doc.get("status") == status, "problem status %r" % doc
    for k in ("type", "title", "detail"):
        assert k in doc, "problem lacks %r: %r" % (k, doc)
    return doc


def wait_until(pred, timeout, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


# ------------------------------------------------------------------- runner

class Env:
    """What one test starts; everything is stopped when the test ends."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.procs = []
        self.clients = []

    def upstream(self):
        u = Upstream(self.workdir)
        self.procs.append(u)
        return u

    def proxy(self, upstream_url, **kw):
        p = Proxy(self.workdir, upstream_url, **kw)
        self.procs.append(p)
        return p

    def client(self, proxy, timeout=IO_TIMEOUT):
        c = proxy.connect(timeout)
        self.clients.append(c)
        return c

    def close(self):
        """Stop everything; a list of crash or sanitizer reports."""
        out = []
        for c in self.clients:
            c.close()
        for p in self.procs:
            if isinstance(p, Proxy) and p.proc.poll() is not None:
                why = p.problems()  # died during the test
                if why:
                    out.append(why)
        for p in reversed(self.procs):
            p.stop()
        for p in self.procs:
            if isinstance(p, Proxy):
                why = p.problems()
                if why and why not in out:
                    out.append(why)
        return out


TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


class Results:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def ok(self, name):
        self.passed += 1
        print("ok %s" % name, flush=True)

    def fail(self, name, why):
        self.failed += 1
        why = " ".join(str(why).split())
        if len(why) > 600:
            why = why[:600] + "..."
        print("FAIL %s: %s" % (name, why), flush=True)

    def check(self, name, fn, *args):
        """Run fn(*args) as one named check."""
        try:
            fn(*args)
        except AssertionError as e:
            self.fail(name, e or traceback.format_exc(limit=1))
            return False
        except Exception as e:  # a crash is a failure with its reason
            self.fail(name, "%s: %s" % (type(e).__name__, e))
            return False
        self.ok(name)
        return True


def main(tests=None):
    """Run the registered tests (or those named on the command line)."""
    tests = tests if tests is not None else TESTS
    only = set(sys.argv[1:])
    res = Results()
    for fn in tests:
        if only and fn.__name__ not in only:
            continue
        workdir = tempfile.mkdtemp(prefix="cg-integ-")
        env = Env(workdir)
        fn_args = (env, res) if getattr(fn, "subtests", False) else (env,)
        t0 = time.monotonic()
        try:
            if getattr(fn, "subtests", False):
                # The test reports its own named checks through res.
                try:
                    fn(*fn_args)
                except Exception as e:
                    res.fail(fn.__name__, "%s: %s" % (type(e).__name__, e))
            else:
                res.check(fn.__name__, fn, *fn_args)
        finally:
            t1 = time.monotonic()
            for why in env.close():
                res.fail(fn.__name__ + "/proxy-health", why)
            shutil.rmtree(workdir, ignore_errors=True)
            if os.environ.get("INTEG_TIMING"):
                print("  time %s: %.2fs run, %.2fs teardown"
                      % (fn.__name__, t1 - t0, time.monotonic() - t1))
    print("%d passed, %d failed" % (res.passed, res.failed), flush=True)
    sys.exit(1 if res.failed else 0)


def subtests(fn):
    """A test that reports several named checks (fn(env, results))."""
    fn.subtests = True
    TESTS.append(fn)
    return fn
