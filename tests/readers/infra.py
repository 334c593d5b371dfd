"""infra.py: processes, clients and readers for the reader differential suite.

Everything here runs on loopback with ephemeral ports; every socket has a
timeout, every loop is bounded, and every process started is registered in
PROCS and killed by stop_all() (also on failure).
"""

import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PY = "/usr/bin/python3"  # Debian's python3, with the Debian reader modules
JARS = ["/usr/share/java/jackson-databind.jar",
        "/usr/share/java/jackson-core.jar",
        "/usr/share/java/jackson-annotations.jar",
        "/usr/share/java/gson.jar"]
IO_TIMEOUT = 10.0
START_TIMEOUT = 10.0

PROCS = []
_procs_lock = threading.Lock()


def spawn(args, **kw):
    p = subprocess.Popen(args, **kw)
    with _procs_lock:
        PROCS.append(p)
    return p


def stop(p, grace=2.0):
    if p is None or p.poll() is not None:
        return
    try:
        os.killpg(p.pid, signal.SIGTERM) if getattr(p, "_cg_group", False) \
            else p.terminate()
        p.wait(grace)
    except (subprocess.TimeoutExpired, ProcessLookupError, OSError):
        pass
    if p.poll() is None:
        try:
            if getattr(p, "_cg_group", False):
                os.killpg(p.pid, signal.SIGKILL)
            else:
                p.kill()
            p.wait(grace)
        except (subprocess.TimeoutExpired, ProcessLookupError, OSError):
            pass


def stop_all():
    with _procs_lock:
        ps = list(PROCS)
    for p in ps:
        stop(p)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


# ------------------------------------------------------------ the upstream

class Gunicorn:
    """gunicorn + upstream_app.py on 127.0.0.1:<free port> (retried)."""

    def __init__(self, workdir, workers=3):
        self.dir = os.path.join(workdir, "upstream-records")
        os.makedirs(self.dir, exist_ok=True)
        env = dict(os.environ, READERS_RECORD_DIR=self.dir,
                   PYTHONDONTWRITEBYTECODE="1")
        self.proc = None
        for attempt in range(5):
            port = free_port()
            log = open(os.path.join(workdir, "gunicorn-%d.log" % attempt), "wb")
            p = spawn([PY, "-m", "gunicorn", "--chdir", HERE, "-w", str(workers),
                       "-k", "sync", "-b", "127.0.0.1:%d" % port,
                       "--timeout", "30", "--graceful-timeout", "2",
                       "upstream_app:app"],
                      env=env, stdout=log, stderr=log, start_new_session=True)
            p._cg_group = True
            if wait_port(port, p, START_TIMEOUT):
                self.proc, self.port = p, port
                break
            stop(p)
        if self.proc is None:
            raise RuntimeError("gunicorn did not start (see %s)" % workdir)
        self.url = "http://127.0.0.1:%d" % self.port

    def records(self):
        out = []
        for name in sorted(os.listdir(self.dir)):
            if not name.endswith(".json"):
                continue
            try:
                with open(os.path.join(self.dir, name)) as f:
                    r = json.load(f)
            except (OSError, ValueError):
                continue
            r["body"] = base64.b64decode(r.pop("body_b64"))
            r["file"] = name
            out.append(r)
        return out

    def stop(self):
        stop(self.proc)


# ------------------------------------------------------------ consentgate

class Proxy:
    """consentgate serve --listen 127.0.0.1:0; the port from its stderr."""

    def __init__(self, binary, workdir, name, upstream_url, policy_path,
                 consent_path, config=None):
        self.name = name
        args = [binary, "serve", "--listen", "127.0.0.1:0", "--upstream",
                upstream_url, "--policy", policy_path, "--consent",
                consent_path]
        if config:
            cfg = os.path.join(workdir, "config-%s.json" % name)
            with open(cfg, "w") as f:
                json.dump(config, f)
            args += ["--config", cfg]
        self.args = args
        self.stderr = []
        self.proc = spawn(args, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
        self.port = None
        deadline = time.monotonic() + START_TIMEOUT
        buf = b""
        while time.monotonic() < deadline:
            line = _readline_timeout(self.proc.stderr,
                                     deadline - time.monotonic())
            if not line:
                break
            self.stderr.append(line)
            m = re.search(rb"listening on 127\.0\.0\.1:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                break
        if self.port is not None:
            t = threading.Thread(target=self._drain, daemon=True)
            t.start()

    def _drain(self):
        try:
            for line in iter(self.proc.stderr.readline, b""):
                if len(self.stderr) < 2000:
                    self.stderr.append(line)
        except (OSError, ValueError):
            pass

    def started(self):
        return self.port is not None

    def stop(self):
        stop(self.proc)


def _readline_timeout(stream, timeout):
    out = []
    t = threading.Thread(target=lambda: out.append(stream.readline()),
                         daemon=True)
    t.start()
    t.join(max(0.0, timeout))
    return out[0] if out else None


# ------------------------------------------------------------ raw client

class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # list of (name, value)
        self.body = body

    def get_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def get(self, name):
        v = self.get_all(name)
        return v[0] if v else None


def exchange(port, raw, timeout=IO_TIMEOUT, pieces=None):
    """Send raw request bytes on a new connection; read one response.
    Returns (Response or None, error string or None)."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout)
    except OSError as e:
        return None, "connect: %s" % e
    s.settimeout(timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        if pieces:
            prev = 0
            for c in pieces + [len(raw)]:
                s.sendall(raw[prev:c])
                prev = c
        else:
            s.sendall(raw)
        return read_response(s, time.monotonic() + timeout), None
    except (OSError, ValueError) as e:
        return None, "%s: %s" % (type(e).__name__, e)
    finally:
        s.close()


def read_response(s, deadline):
    buf = bytearray()

    def fill():
        left = deadline - time.monotonic()
        if left <= 0:
            raise ValueError("timeout")
        s.settimeout(left)
        d = s.recv(262144)
        if not d:
            raise ValueError("closed after %d bytes" % len(buf))
        buf.extend(d)

    while True:
        while b"\r\n\r\n" not in buf:
            if len(buf) > 1 << 20:
                raise ValueError("head too long")
            fill()
        i = buf.find(b"\r\n\r\n")
        head = bytes(buf[:i]).decode("latin-1")
        del buf[:i + 4]
        lines = head.split("\r\n")
        m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
        if not m:
            raise ValueError("bad status line %r" % lines[0][:80])
        status = int(m.group(1))
        headers = []
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            headers.append((k.strip(), v.strip()))
        if 100 <= status < 200:
            continue
        break
    r = Response(status, headers, b"")
    te = r.get("Transfer-Encoding")
    cl = r.get("Content-Length")
    if status in (204, 304):
        return r
    if te and "chunked" in te.lower():
        body = bytearray()
        for _ in range(100000):
            while b"\r\n" not in buf:
                fill()
            j = buf.find(b"\r\n")
            size = int(bytes(buf[:j]).split(b";")[0], 16)
            del buf[:j + 2]
            if size == 0:
                for _ in range(1000):  # trailers
                    while b"\r\n" not in buf:
                        fill()
                    j = buf.find(b"\r\n")
                    line = bytes(buf[:j])
                    del buf[:j + 2]
                    if not line:
                        break
                    k, _, v = line.decode("latin-1").partition(":")
                    r.headers.append((k.strip(), v.strip()))
                break
            while len(buf) < size + 2:
                fill()
            body += buf[:size]
            del buf[:size + 2]
        r.body = bytes(body)
    elif cl is not None:
        n = int(cl)
        while len(buf) < n:
            fill()
        r.body = bytes(buf[:n])
    else:
        try:
            for _ in range(100000):
                fill()
        except ValueError:
            pass
        r.body = bytes(buf)
    return r


# ------------------------------------------------------------ readers

class Readers:
    """Builds the Go and Java readers once per run and runs every reader
    over a JSONL file of bodies (see readers/py_readers.py)."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.rdir = os.path.join(HERE, "readers")
        self.go_bin = None
        self.java_dir = None
        self.errors = []
        self.have = {}

    def build(self):
        gotmp = os.path.join(self.workdir, "go")
        os.makedirs(gotmp, exist_ok=True)
        env = dict(os.environ, GOCACHE=os.path.join(gotmp, "cache"),
                   GOPATH=os.path.join(gotmp, "path"), GO111MODULE="off",
                   GOFLAGS="", CGO_ENABLED="0", GOPROXY="off")
        out = os.path.join(gotmp, "go_reader")
        p = subprocess.run(["go", "build", "-o", out,
                            os.path.join(self.rdir, "go_reader.go")],
                           env=env, capture_output=True, timeout=300)
        if p.returncode == 0:
            self.go_bin = out
        else:
            self.errors.append("go build: %s" % p.stderr.decode()[-300:])
        jdir = os.path.join(self.workdir, "java")
        os.makedirs(jdir, exist_ok=True)
        p = subprocess.run(["javac", "-nowarn", "-encoding", "UTF-8", "-cp",
                            ":".join(JARS), "-d", jdir,
                            os.path.join(self.rdir, "JavaReaders.java")],
                           capture_output=True, timeout=300)
        if p.returncode == 0:
            self.java_dir = jdir
        else:
            self.errors.append("javac: %s" % p.stderr.decode()[-300:])

    def run(self, items):
        """items: list of dicts {id, mode, loc, b64}. Returns
        {body id: {reader: {"recs": [...], "err": ...}}}."""
        src = os.path.join(self.workdir, "reader-input.jsonl")
        with open(src, "w") as f:
            for it in items:
                f.write(json.dumps(it) + "\n")
        cp = ":".join(JARS + [self.java_dir or "."])
        jobs = {
            "python": [PY, os.path.join(self.rdir, "py_readers.py")],
            "node": ["node", os.path.join(self.rdir, "node_reader.js")],
            "jq": [PY, os.path.join(self.rdir, "jq_reader.py")],
        }
        if self.go_bin:
            jobs["go"] = [self.go_bin]
        if self.java_dir:
            jobs["java"] = ["java", "-Xshare:auto", "-XX:+UseSerialGC",
                            "-XX:TieredStopAtLevel=1", "-Duser.language=en",
                            "-Duser.country=US", "-cp", cp, "JavaReaders"]
            jobs["java-tr"] = ["java", "-Xshare:auto", "-XX:+UseSerialGC",
                               "-XX:TieredStopAtLevel=1",
                               "-Duser.language=tr", "-Duser.country=TR",
                               "-Dreaders.suffix=-tr", "-cp", cp,
                               "JavaReaders"]
        extra = {"java": ["java-readline-jackson", "java-readline-gson",
                          "java-jackson-ci", "java-equalsignorecase",
                          "java-hadoop-linereader"],
                 "java-tr": ["java-jackson-ci", "java-equalsignorecase"]}
        procs = {}
        # Two at a time: this is a 2-core machine.
        order = ["java", "python", "go", "node", "jq", "java-tr"]
        running = []
        results = {}
        for name in order + [None]:
            while running and (len(running) >= 2 or name is None):
                n, p, dst, t0 = running.pop(0)
                try:
                    p.wait(600)
                except subprocess.TimeoutExpired:
                    stop(p)
                err = p.stderr.read().decode("utf-8", "replace")[-300:]
                p.stderr.close()
                if p.returncode != 0:
                    self.errors.append("reader %s exited %s: %s"
                                       % (n, p.returncode, err))
                self.have[n] = time.monotonic() - t0
                if os.path.exists(dst):
                    with open(dst) as f:
                        for line in f:
                            try:
                                r = json.loads(line)
                            except ValueError:
                                continue
                            results.setdefault(r["id"], {})[r["r"]] = r
            if name is None:
                break
            if name not in jobs:
                continue
            dst = os.path.join(self.workdir, "reader-%s.jsonl" % name)
            args = jobs[name] + [src, dst] + extra.get(name, [])
            p = spawn(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            running.append((name, p, dst, time.monotonic()))
        return results


def b64(b):
    return base64.b64encode(b).decode("ascii")
