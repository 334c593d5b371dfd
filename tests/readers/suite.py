"""suite.py: the multi-reader differential test (issue 8).

Sends generated attacks through the real consentgate binary to a real
upstream (gunicorn + Flask, tests/readers/upstream_app.py), then hands every
body the upstream received completely to the readers real ML pipelines run
(tests/readers/readers/), and judges:

LEAK  a record that any reader attributes to a person who is not allowed (by
      consentgate's own decision for that id as a string; unknown people are
      not allowed), in a request the upstream received completely at the
      ingest endpoint or an alias of it; a Consent-*/Content-Usage value the
      app sees that consentgate did not write; the app's subject header
      naming a person who is not allowed; a second client's request written
      inside an unfinished upstream request (class 8); a consent row the
      policy cannot see that lets a record through (class 7).
LOSS  after a 2xx: a record consentgate counted as kept missing, duplicated,
      reordered or altered upstream, a plain allowed record dropped, a reader
      reading another number of records than Consent-Result's kept or failing
      to parse one, or kept records the upstream never received completely.

usage: suite.py [--seed N] [--quick] [--results DIR] [--all] [--classes 1,2]
Prints one line per failing attack, per-class counts, then
`attacks=N leaks=N losses=N` and `N passed, N failed`; exits 1 on any
failure. Run by `make test-readers` (tests/readers/run.sh).
"""

import sys
sys.dont_write_bytecode = True  # noqa: E402 (no __pycache__ in the tree)

import argparse
import base64
import concurrent.futures
import copy
import gzip
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib

import attacks as atk
import infra

CONSENTGATE = os.environ.get("CONSENTGATE",
                             os.path.join(infra.ROOT, "build", "consentgate"))
# The shipped example policy and consent table (READERS_POLICY and
# READERS_CONSENT point elsewhere, e.g. to test an older binary).
SHIPPED_POLICY = os.environ.get("READERS_POLICY", os.path.join(
    infra.ROOT, "policy", "examples", "ai-training.json"))
SHIPPED_CONSENT = os.environ.get("READERS_CONSENT", os.path.join(
    infra.ROOT, "tests", "data", "consent-example.csv"))
NDJSON_MEDIA = ("application/x-ndjson", "application/ndjson",
                "application/jsonl", "application/x-jsonlines",
                "application/jsonlines")
# Readers that read every body as lines, whatever its type (file readers).
FILE_LINE_READERS = ("java-hadoop-linereader",)

EXTRA_ROWS = [
    # id as written (allowed) and what a double makes of it (denied)
    ("9007199254740993", "granted", "DE"), ("9007199254740992", "denied", "DE"),
    ("9007199254740995", "granted", "US"), ("9007199254740996", "denied", "US"),
    ("1234567890123456789", "granted", "AT"),
    ("1234567890123456800", "denied", "AT"),
    ("18446744073709551617", "granted", "DE"),
    ("18446744073709552000", "denied", "DE"),
    ("-0", "granted", "DE"), ("0", "denied", "DE"),
    # a string id that type inference (pandas) reads as a number
    ("0042", "granted", "DE"), ("42", "denied", "DE"),
]


def log(*a):
    print(*a, flush=True)


# ================================================================ setup

def write_variants(workdir):
    """The policy variants (from the shipped policy) and consent tables."""
    with open(SHIPPED_POLICY) as f:
        base = json.load(f)
    with open(SHIPPED_CONSENT) as f:
        csv = f.read()
    if not csv.endswith("\n"):
        csv += "\n"
    ext = csv + "".join("%s,ai-training,%s,%s,2025-03-01T12:00:00Z,ev-x%d\n"
                        % (s, st, j, i) for i, (s, st, j) in
                        enumerate(EXTRA_ROWS))
    ext_path = os.path.join(workdir, "consent-ext.csv")
    with open(ext_path, "w") as f:
        f.write(ext)

    def ingest(p):
        for r in p["routes"]:
            if r.get("name") == "ingest" or (r.get("path") == "/ingest" and
                                              r.get("action") == "inspect"):
                return r
        raise RuntimeError("the shipped policy has no inspected /ingest")

    out = {}

    def add(name, p, consent):
        path = os.path.join(workdir, "policy-%s.json" % name)
        with open(path, "w") as f:
            json.dump(p, f, indent=1)
        out[name] = (path, consent)

    out["shipped"] = (SHIPPED_POLICY, SHIPPED_CONSENT)
    add("ext", copy.deepcopy(base), ext_path)
    p = copy.deepcopy(base)
    p["routes"].append({"method": "*", "path_prefix": "/", "action": "pass"})
    add("catchall", p, ext_path)
    p = copy.deepcopy(base)
    ingest(p)["subjects"] = ["/author_id", "/mentions/*/id"]
    add("multi", p, ext_path)
    p = copy.deepcopy(p)
    ingest(p)["on_deny"] = "block"
    add("multi-block", p, ext_path)
    p = copy.deepcopy(base)
    ingest(p)["on_deny"] = "block"
    add("block", p, ext_path)
    p = copy.deepcopy(base)
    r = ingest(p)
    r.pop("subjects", None)
    r["subject_header"] = "X-Subject-Id"
    r["formats"] = ["object"]
    r["on_deny"] = "block"
    add("header", p, ext_path)
    p = copy.deepcopy(base)
    ingest(p)["content_usage"] = True
    add("cu", p, ext_path)
    return out


class Oracle:
    """Who is allowed: consentgate's own decision (eval) for a one-record
    body {"author_id": id} with the id as a string. Cached; batched."""

    def __init__(self, policy, consent, workdir, tag):
        self.policy, self.consent = policy, consent
        self.workdir, self.tag = workdir, tag
        self.cache = {}
        self.lock = threading.Lock()
        self.n = 0

    def decide(self, ids):
        ids = [i for i in dict.fromkeys(ids) if i not in self.cache]
        if not ids:
            return
        with self.lock:
            self.n += 1
            path = os.path.join(self.workdir, "oracle-%s-%d.ndjson"
                                % (self.tag, self.n))
        with open(path, "w") as f:
            for i in ids:
                f.write(json.dumps({"author_id": i}) + "\n")
        p = subprocess.run([CONSENTGATE, "eval", "--policy", self.policy,
                            "--consent", self.consent, "--route",
                            "POST /ingest", "--content-type",
                            "application/x-ndjson", path],
                           capture_output=True, timeout=120)
        got = {}
        if p.returncode == 0:
            for line in p.stdout.decode("utf-8", "replace").splitlines()[1:]:
                f = line.split("\t")
                if len(f) >= 3 and f[0].isdigit():
                    got[int(f[0])] = f[2] == "allow"
        if len(got) == len(ids):
            for k, i in enumerate(ids):
                self.cache[i] = got[k]
            return
        if len(ids) == 1:
            self.cache[ids[0]] = False  # cannot even be decided: not allowed
            return
        half = len(ids) // 2
        self.decide(ids[:half])
        self.decide(ids[half:])

    def allowed(self, i):
        if i is None:
            return False
        if i not in self.cache:
            self.decide([i])
        return self.cache[i]


# ================================================================ sending

class Result:
    __slots__ = ("status", "headers", "error", "raw_file")

    def __init__(self, resp, err):
        self.status = resp.status if resp else None
        self.headers = resp.headers if resp else []
        self.error = err

    def get(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


def send(proxy, a, rng_seed):
    raw = a.raw()
    pieces = None
    if a.pieces == "random" and len(raw) > 2:
        rr = random.Random(rng_seed)
        k = rr.randint(1, min(6, len(raw) - 1))
        pieces = sorted(rr.sample(range(1, len(raw)), k))
    timeout = 30 if len(raw) > 200000 else infra.IO_TIMEOUT
    resp, err = infra.exchange(proxy.port, raw, timeout=timeout,
                               pieces=pieces)
    return Result(resp, err)


def parse_result(v):
    """Consent-Result 'kept=N, dropped=M' -> (N, M) or None."""
    if v is None:
        return None
    m = re.fullmatch(r"\s*kept=(\d+)\s*,\s*dropped=(\d+)\s*", v)
    if not m:
        return None
    return int(m.group(1)), int(m.group(2))


# ================================================================ judging

def pipeline_view(rec):
    """What a pipeline behind the WSGI app reads: the body after the
    Content-Encoding the app sees, and the mode its Content-Type means.
    Returns (body or None, modes list, note)."""
    h = rec["headers"]
    body = rec["body"]
    enc = h.get("HTTP_CONTENT_ENCODING", "")
    codings = [c.strip().lower() for c in enc.split(",") if c.strip()]
    for c in reversed(codings):
        if c in ("gzip", "x-gzip"):
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError, zlib.error):
                return None, [], "cannot gunzip"
        elif c == "identity":
            continue
        else:
            return None, [], "unknown coding %r" % c
    ct = h.get("CONTENT_TYPE")
    if ct is None:
        ct = h.get("HTTP_CONTENT_TYPE", "")
    media = ct.split(";")[0].strip().lower()
    if media in NDJSON_MEDIA:
        return body, ["lines"], media
    if media == "application/json" or media.endswith("+json"):
        return body, ["doc"], media
    return body, ["lines", "doc"], media or "none"


def match_records(up, recs, fmt):
    """Which client records the upstream body holds, in order, verbatim.
    Returns (indexes, leftover bytes or None)."""
    if fmt == "object":
        return ([0], None) if up == recs[0] else ([], up[:80])
    seps = b" \t\r\n" + (b",[]" if fmt == "array" else b"")
    pos, got = 0, []
    n = len(up)

    def skip(p):
        while p < n and up[p:p + 1] in [bytes([c]) for c in seps]:
            p += 1
        return p

    for i, r in enumerate(recs):
        p = skip(pos)
        if r and up.startswith(r, p):
            e = p + len(r)
            if e == n or up[e:e + 1] in [bytes([c]) for c in seps]:
                got.append(i)
                pos = e
    p = skip(pos)
    return got, (up[p:p + 80] if p < n else None)


def client_records(a):
    """The client's records as sent: NDJSON lines (split at LF, leading
    and trailing blanks and CRs off, blank lines skipped), else the
    generator's list."""
    if a.fmt == "ndjson":
        plain = a.extra.get("plain", a.body)
        return [p.strip(b" \t\r") for p in plain.split(b"\n")
                if p.strip(b" \t\r")]
    if a.fmt in ("array", "object") and a.records is not None:
        return a.records
    return None


class Judge:
    def __init__(self, oracles, calib):
        self.oracles = oracles  # variant -> Oracle
        self.calib = calib      # variant -> {HTTP_CONSENT_*: value}
        self.failures = []      # (attack, kind, text)

    def fail(self, a, kind, text):
        self.failures.append((a, kind, text))

    def proof_headers(self, a, res, up, variant_cu):
        """Every Consent-* (and, where consentgate writes it, Content-Usage)
        the app sees must be consentgate's own value."""
        h = up["headers"]
        inspected = res.get("Consent-Result") is not None or (
            res.status is None and a.inspected)
        cal = self.calib.get(a.variant, {})
        for k, v in sorted(h.items()):
            if not k.startswith("HTTP_CONSENT_") and \
                    not (k == "HTTP_CONTENT_USAGE" and variant_cu and inspected):
                continue
            if not inspected:
                self.fail(a, "leak", "app sees %s=%r on a route consentgate "
                          "does not inspect (it wrote none)" % (k, v))
                continue
            if k == "HTTP_CONSENT_RESULT":
                want = res.get("Consent-Result")
                if want is None or v != want:
                    self.fail(a, "leak", "app sees %s=%r, consentgate "
                              "answered Consent-Result %r" % (k, v, want))
            elif k == "HTTP_CONSENT_SNAPSHOT":
                want = cal.get(k, "")
                wv = want.split(",")[0]
                if not re.fullmatch(re.escape(wv) + r", age=\d+", v):
                    self.fail(a, "leak", "app sees %s=%r, consentgate writes "
                              "%r" % (k, v, want))
            elif k in cal:
                if v != cal[k]:
                    self.fail(a, "leak", "app sees %s=%r, consentgate writes "
                              "%r" % (k, v, cal[k]))
            else:
                self.fail(a, "leak", "app sees %s=%r, which consentgate does "
                          "not write" % (k, v))
        if inspected and variant_cu:
            if h.get("HTTP_CONTENT_USAGE") is None:
                self.fail(a, "leak", "app sees no Content-Usage on a "
                          "content_usage route")

    def judge(self, a, res, ups, readings, loc):
        oracle = self.oracles[a.variant]
        complete = [u for u in ups if u["complete"]]
        kept = parse_result(res.get("Consent-Result"))
        ok2xx = res.status is not None and 200 <= res.status < 300
        variant_cu = a.variant == "cu"
        for u in complete:
            self.proof_headers(a, res, u, variant_cu)
        for u in complete:
            if u["endpoint"] not in ("ingest", "ingest-alias"):
                continue
            if a.extra.get("subject_header"):
                v = u["headers"].get("HTTP_X_SUBJECT_ID")
                parts = [p.strip() for p in (v or "").split(",")]
                for p in parts:
                    if not oracle.allowed(p if p else None):
                        self.fail(a, "leak", "app's X-Subject-Id %r names "
                                  "%r, who is not allowed" % (v, p))
                        break
                continue
            for (reader, mode, view_mode), rr in readings.get(u["file"],
                                                               {}).items():
                named_only = view_mode != mode or len(u["modes"]) > 1
                for ri, rec in enumerate(rr["recs"]):
                    s = rec.get("s")
                    if s is None:
                        continue
                    who = [x for x in s]
                    if named_only and all(x is None for x in who):
                        continue
                    bad = [x for x in who if not oracle.allowed(x)]
                    if bad:
                        self.fail(a, "leak", "%s reads record %d (%s) as %s"
                                  % (reader, ri, mode,
                                     ", ".join("unknown/no id" if x is None
                                               else repr(x) for x in bad)))
                        break
        if a.extra.get("control") and not ok2xx:
            self.fail(a, "refused", "a control request (unambiguous to "
                      "every reader) was refused: %s" % (
                          res.status or res.error))
            return
        if not ok2xx or kept is None:
            if a.extra.get("control") and ok2xx and a.inspected:
                self.fail(a, "refused", "a control request got %d without "
                          "Consent-Result" % res.status)
            return
        k = kept[0]
        if k > 0 and not complete:
            why = ups[0]["error"] if ups else "nothing arrived"
            self.fail(a, "loss", "2xx with kept=%d but the upstream never "
                      "received the request completely (%s)" % (k, why))
            return
        for u in complete:
            if u["endpoint"] not in ("ingest", "ingest-alias"):
                continue
            recs = client_records(a)
            view, _, _ = pipeline_view(u)
            if recs is not None:
                got, left = match_records(view if view is not None
                                          else u["body"], recs, a.fmt)
                if len(got) != k or left is not None:
                    self.fail(a, "loss", "upstream body holds %d of the "
                              "client's records verbatim, kept=%d%s"
                              % (len(got), k, ", then %r" % left
                                 if left else ""))
                clean = set(a.records[i] for i in a.clean) if a.records \
                    else set()
                kept_bytes = set(recs[i] for i in got)
                missing = [r for r in clean if r not in kept_bytes]
                if missing and left is None:
                    self.fail(a, "loss", "%d plain allowed record(s) dropped,"
                              " e.g. %r" % (len(missing), missing[0][:80]))
            if "lines" in u["modes"] and "doc" in u["modes"]:
                continue  # the app cannot tell the format: no count
            for (reader, mode, view_mode), rr in readings.get(u["file"],
                                                               {}).items():
                if view_mode != mode:
                    continue
                if rr.get("err") and k > 0:
                    self.fail(a, "loss", "%s cannot read the body (kept=%d):"
                              " %s" % (reader, k, rr["err"]))
                    continue
                errs = [i for i, x in enumerate(rr["recs"]) if "err" in x]
                if errs:
                    self.fail(a, "loss", "%s fails to parse record %d of a "
                              "kept body: %s" % (reader, errs[0],
                                                 rr["recs"][errs[0]]["err"]))
                elif len(rr["recs"]) != k:
                    self.fail(a, "loss", "%s reads %d records, kept=%d"
                              % (reader, len(rr["recs"]), k))


# ================================================================ class 7

TYPO_PURPOSES = ["ai_training", "AI-training", "ai-training ", "ai-trainig",
                 "ai training", "Ai-Training", "ai-training\u200b"]


def class7(binary, workdir, ups, policy, rng, n, judge_out):
    """Consent rows the policy cannot see: refuse to start."""
    out = []
    with open(SHIPPED_CONSENT) as f:
        csv = f.read()
    if not csv.endswith("\n"):
        csv += "\n"
    for i in range(n):
        purpose = TYPO_PURPOSES[i % len(TYPO_PURPOSES)]
        sid = "7%03d" % i
        juris = rng.choice(["US", "BR", "JP", "IN", "CA"])
        status = rng.choice(["denied", "withdrawn"])
        body = csv + '%s,"%s",%s,%s,2025-04-01T12:00:00Z,ev-typo-%d\n' % (
            sid, purpose, status, juris, i)
        if rng.random() < 0.3:
            body = csv + "%s,ai-training,granted,%s,2024-01-01T12:00:00Z,ev-old\n" \
                % (sid, juris) + body[len(csv):]
        path = os.path.join(workdir, "consent-typo-%d.csv" % i)
        with open(path, "w") as f:
            f.write(body)
        aid = "c7-%04d" % i
        note = "row %s,%s,%s,%s" % (sid, purpose, status, juris)
        chk = subprocess.run([binary, "serve", "--check", "--policy", policy,
                              "--consent", path, "--upstream", ups.url],
                             capture_output=True, timeout=30)
        checked_ok = chk.returncode == 0
        p = infra.Proxy(binary, workdir, "typo%d" % i, ups.url, policy, path)
        forwarded = None
        raw = None
        if p.started():
            a = atk.Attack(7, "typo", ('{"author_id":"%s","text":"opted out"}\n'
                                       % sid).encode(), None, "ndjson", note)
            a.aid = aid
            raw = a.raw()
            resp, err = infra.exchange(p.port, raw)
            time.sleep(0.05)
            forwarded = [r for r in ups.records()
                         if r["headers"].get("HTTP_X_READERS_ATTACK") == aid
                         and r["complete"]]
            out.append((a, resp))
        p.stop()
        judge_out.append((aid, note, checked_ok, p.started(), forwarded, raw,
                          chk.stdout.decode(errors="replace")[-200:]))
    return out


# ================================================================ class 8

class RawUpstream:
    """A raw-socket upstream that answers 200 early: after the first chunk
    of a request body, while the proxy is still sending. It keeps the
    connection open and keeps reading; every byte is kept per connection."""

    def __init__(self, mode):
        self.mode = mode
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.conns = []  # bytearrays
        self.stop_flag = False
        self.lock = threading.Lock()
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        deadline = time.monotonic() + 120
        while not self.stop_flag and time.monotonic() < deadline:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            buf = bytearray()
            with self.lock:
                self.conns.append(buf)
            threading.Thread(target=self.serve, args=(c, buf),
                             daemon=True).start()

    def serve(self, c, buf):
        c.settimeout(0.2)
        answered = 0
        deadline = time.monotonic() + 60
        while not self.stop_flag and time.monotonic() < deadline:
            try:
                d = c.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not d:
                break
            with self.lock:
                buf.extend(d)
            # one answer per request head seen: the first request of a
            # connection is answered early (after 64 bytes of its body, or
            # at once), later ones once their body has arrived
            heads = buf.count(b" HTTP/1.1\r\n")
            while answered < heads:
                i = _nth(buf, b" HTTP/1.1\r\n", answered)
                j = buf.find(b"\r\n\r\n", i)
                if j < 0:
                    break
                if answered == 0:
                    need = 0 if self.mode == "instant" else 64
                else:
                    m = re.search(rb"(?i)content-length:\s*(\d+)",
                                  bytes(buf[i:j]))
                    need = int(m.group(1)) if m else 5
                if len(buf) < j + 4 + need:
                    break
                if self.mode == "slowread" and answered == 0:
                    time.sleep(0.2)
                try:
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
                              b"Content-Type: text/plain\r\n\r\nok\n")
                except OSError:
                    return
                answered += 1
        try:
            c.close()
        except OSError:
            pass

    def streams(self):
        with self.lock:
            return [bytes(b) for b in self.conns]

    def close(self):
        self.stop_flag = True
        try:
            self.sock.close()
        except OSError:
            pass
        self.t.join(2)


def _nth(buf, pat, n):
    i = -1
    for _ in range(n + 1):
        i = buf.find(pat, i + 1)
        if i < 0:
            return -1
    return i


def parse_stream(data):
    """Requests on one upstream connection: list of dicts with the request
    line, whether its body completed, its de-chunked body."""
    out = []
    pos = 0
    for _ in range(100):
        if pos >= len(data):
            break
        j = data.find(b"\r\n\r\n", pos)
        if j < 0:
            out.append({"line": data[pos:pos + 60], "complete": False,
                        "body": b"", "head": data[pos:]})
            break
        head = data[pos:j]
        line = head.split(b"\r\n")[0]
        hl = head.lower()
        body = bytearray()
        p = j + 4
        complete = False
        if b"transfer-encoding: chunked" in hl:
            for _ in range(1000000):
                k = data.find(b"\r\n", p)
                if k < 0:
                    break
                try:
                    size = int(data[p:k].split(b";")[0], 16)
                except ValueError:
                    break
                if size == 0:
                    e = data.find(b"\r\n\r\n", k)
                    if e >= 0:
                        p = e + 4
                        complete = True
                    break
                if k + 2 + size + 2 > len(data):
                    break
                body += data[k + 2:k + 2 + size]
                p = k + 2 + size + 2
        else:
            m = re.search(rb"content-length:\s*(\d+)", hl)
            n = int(m.group(1)) if m else 0
            if p + n <= len(data):
                body += data[p:p + n]
                p += n
                complete = True
        out.append({"line": line, "head": head, "complete": complete,
                    "body": bytes(body), "end": p})
        if not complete:
            out[-1]["rest"] = data[p:]
            break
        pos = p
    return out


def class8(binary, workdir, gen, policy, consent, n, rng):
    """Streamed body, early upstream answer, then a second client."""
    results = []
    for i in range(n):
        mode = ["early", "early", "slowread", "instant"][i % 4]
        ups = RawUpstream(mode)
        p = infra.Proxy(binary, workdir, "early%d" % i, ups.url, policy,
                        consent, config={"workers": 1,
                                         "response_timeout_ms": 5000})
        aid1, aid2 = "c8-%04da" % i, "c8-%04db" % i
        marker = "second-client-%d-%d" % (i, rng.randint(0, 1 << 30))
        try:
            if not p.started():
                results.append((aid1, mode, "proxy did not start", None, None,
                                [], b""))
                continue
            a1 = atk.big(gen, 8, "shipped", [], "early answer (%s)" % mode)
            a1.aid = aid1
            if i % 3 == 1:
                a1.chunks = [65536]
            raw1 = a1.raw()
            rec2 = ('{"author_id":"1001","text":"%s"}\n' % marker).encode()
            a2 = atk.Attack(8, "shipped", rec2, [rec2.rstrip(b"\n")],
                            "ndjson", "second client")
            a2.aid = aid2
            raw2 = a2.raw()
            # the first client sends more than 256 KiB (the body streams),
            # pauses, and sends the rest; the second client's request goes
            # during the pause (odd scenarios) or after the first answer
            cut = len(raw1) - rng.randint(2000, 40000)
            resp1 = resp2 = None
            err1 = err2 = None
            s1 = socket.create_connection(("127.0.0.1", p.port), 10)
            try:
                s1.sendall(raw1[:cut])
                time.sleep(0.4)
                if i % 2 == 1:
                    resp2, err2 = infra.exchange(p.port, raw2, timeout=8)
                    time.sleep(0.2)
                try:
                    s1.sendall(raw1[cut:])
                except OSError as e:
                    err1 = "send rest: %s" % e
                try:
                    resp1 = infra.read_response(s1, time.monotonic() + 10)
                except (OSError, ValueError) as e:
                    err1 = (err1 or "") + " read: %s" % e
            finally:
                s1.close()
            if i % 2 == 0:
                time.sleep(0.2)
                resp2, err2 = infra.exchange(p.port, raw2, timeout=8)
            time.sleep(0.5)
            streams = ups.streams()
            results.append((aid1, mode, None, (a1, resp1, err1),
                            (a2, resp2, err2), streams, marker.encode()))
        finally:
            p.stop()
            ups.close()
    return results


def judge8(results, failures):
    n_att = 0
    for aid, mode, perr, r1, r2, streams, marker in results:
        n_att += 1
        if perr:
            failures.append((aid, 8, "fail", perr, None))
            continue
        a1, resp1, err1 = r1
        a2, resp2, err2 = r2
        reqs = []
        for s in streams:
            reqs.append(parse_stream(s))
        # LEAK: the second client's bytes inside the first's unfinished body
        for rs in reqs:
            for k, rq in enumerate(rs):
                if b"X-Readers-Attack: " + a1.aid.encode() in rq["head"]:
                    if not rq["complete"]:
                        tail = rq.get("rest", b"")
                        if marker in rq["body"] or marker in tail or \
                                (b"X-Readers-Attack: " + a2.aid.encode()) in tail:
                            failures.append((aid, 8, "leak",
                                             "the second client's request "
                                             "was written inside the first "
                                             "request's unfinished chunked "
                                             "body (%s upstream)" % mode,
                                             a1.raw()[:300] + b"..." +
                                             a2.raw()))
        # LOSS: 2xx to the first client counting records never delivered
        if resp1 is not None and 200 <= resp1.status < 300:
            kept = parse_result(resp1.get("Consent-Result"))
            delivered = None
            for rs in reqs:
                for rq in rs:
                    if b"X-Readers-Attack: " + a1.aid.encode() in rq["head"]:
                        delivered = rq
            if kept and kept[0] > 0:
                if delivered is None or not delivered["complete"]:
                    failures.append((aid, 8, "loss", "first client got %d "
                                     "with Consent-Result %r but the upstream "
                                     "request never completed (%s upstream,"
                                     " %d body bytes of %d)" % (
                                         resp1.status,
                                         resp1.get("Consent-Result"), mode,
                                         len(delivered["body"]) if delivered
                                         else 0, len(a1.body)),
                                     a1.raw()[:600]))
                else:
                    got, left = match_records(delivered["body"], a1.records,
                                              "ndjson")
                    if len(got) != kept[0] or left is not None:
                        failures.append((aid, 8, "loss", "upstream got %d "
                                         "records, kept=%d" % (len(got),
                                                               kept[0]),
                                         a1.raw()[:600]))
            elif kept is None and resp1.status == 200:
                failures.append((aid, 8, "loss", "first client got 200 "
                                 "without Consent-Result for an inspected "
                                 "body (%s upstream)" % mode,
                                 a1.raw()[:600]))
    return n_att


# ================================================================ main

def escape(raw, limit=4000):
    s = raw[:limit].decode("latin-1").encode("unicode_escape").decode("ascii")
    if len(raw) > limit:
        s += "...(+%d bytes)" % (len(raw) - limit)
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--results", default=os.path.join(
        infra.ROOT, "build", "readers-results"))
    ap.add_argument("--all", action="store_true",
                    help="print every failing attack (default: 25 a class)")
    ap.add_argument("--classes", default="1,2,3,4,5,6,7,8")
    ap.add_argument("--per-class", type=int, default=None)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    classes = [int(x) for x in args.classes.split(",") if x]
    per = args.per_class or (250 if args.quick else 1700)
    n7 = 7 if args.quick else 14
    n8 = 4 if args.quick else 12
    t0 = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="cg-readers-")
    results_dir = args.results
    shutil.rmtree(results_dir, ignore_errors=True)
    os.makedirs(os.path.join(results_dir, "repro"))
    log("readers: seed=%d%s consentgate=%s" % (args.seed, " quick" if
                                                args.quick else "",
                                                CONSENTGATE))
    log("readers: python3-orjson is not in Debian 12: the orjson reader is "
        "skipped")
    log("readers: Spark/Hadoop is not in Debian: java-hadoop-linereader "
        "implements LineReader's splitting (CR, LF, CRLF; malformed lines "
        "kept)")
    failed_setup = []
    try:
        return run(args, classes, per, n7, n8, workdir, results_dir, t0,
                   failed_setup)
    finally:
        infra.stop_all()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log("readers: kept %s" % workdir)


def run(args, classes, per, n7, n8, workdir, results_dir, t0, failed_setup):
    if not os.access(CONSENTGATE, os.X_OK):
        log("FAIL setup: no consentgate binary at %s" % CONSENTGATE)
        log("0 passed, 1 failed")
        return 1
    readers = infra.Readers(workdir)
    builder = threading.Thread(target=readers.build, daemon=True)
    builder.start()
    variants = write_variants(workdir)
    ups = infra.Gunicorn(workdir)
    oracles, proxies = {}, {}
    by_consent = {}
    for name, (pol, csv) in variants.items():
        if csv not in by_consent:
            by_consent[csv] = Oracle(pol, csv, workdir, name)
        oracles[name] = by_consent[csv]
    setup_fail = 0
    for name, (pol, csv) in variants.items():
        p = infra.Proxy(CONSENTGATE, workdir, name, ups.url, pol, csv)
        if not p.started():
            log("FAIL setup/%s: consentgate did not start: %s" % (
                name, b"".join(p.stderr)[-300:].decode(errors="replace")))
            setup_fail += 1
            continue
        proxies[name] = p
    # the people: every id in the consent tables plus unknown ones
    pool = set()
    for csv in by_consent:
        with open(csv) as f:
            for line in f.read().splitlines()[1:]:
                if line:
                    pool.add(line.split(",")[0])
    unknown = ["4242", "9999", "u-zed", "1"]
    for o in by_consent.values():
        o.decide(sorted(pool) + unknown)
    shipped_ids = set()
    with open(SHIPPED_CONSENT) as f:
        for line in f.read().splitlines()[1:]:
            if line:
                shipped_ids.add(line.split(",")[0])
    o = oracles["shipped"]
    allowed = sorted(i for i in shipped_ids if o.allowed(i))
    denied = sorted(i for i in shipped_ids if not o.allowed(i))
    if not allowed or not denied or "shipped" not in proxies:
        log("FAIL setup: the shipped policy and table give %d allowed and %d "
            "denied people" % (len(allowed), len(denied)))
        log("0 passed, %d failed" % (setup_fail + 1))
        return 1
    log("readers: %d allowed, %d denied people in the shipped table; "
        "unknown: %s" % (len(allowed), len(denied), " ".join(unknown)))
    # calibration: what consentgate writes on each variant's ingest route
    calib = {}
    for name, p in proxies.items():
        a = atk.Attack(0, name, b'{"author_id":"%s"}\n' % allowed[0].encode(),
                       None, "ndjson", "calibration")
        if name == "header":
            a = atk.Attack(0, name, b'{"text":"x"}', None, "object",
                           "calibration", content_type="application/json",
                           headers=[("X-Subject-Id", allowed[0])])
        a.aid = "cal-%s" % name
        infra.exchange(p.port, a.raw())
    time.sleep(0.2)
    for r in ups.records():
        aid = r["headers"].get("HTTP_X_READERS_ATTACK", "")
        if aid.startswith("cal-"):
            calib[aid[4:]] = {k: v for k, v in r["headers"].items()
                              if k.startswith("HTTP_CONSENT_") or
                              k == "HTTP_CONTENT_USAGE"}
    # ------------------------------------------------------------ generate
    all_attacks = []
    counts = {}
    for c in classes:
        if c not in atk.CLASSES:
            continue
        g = atk.Gen(random.Random(args.seed * 1000 + c), allowed, denied,
                    unknown)
        for k in range(per):
            if k % 10 == 9:
                a = atk.control(g, c)
            else:
                a = atk.CLASSES[c](g, ["shipped", "ext"])
            a.aid = "c%d-%05d" % (c, k)
            if a.variant not in proxies:
                continue
            all_attacks.append(a)
            counts[c] = counts.get(c, 0) + 1
    # ------------------------------------------------------------ send
    log("readers: sending %d attacks (setup %.1fs)" % (
        len(all_attacks), time.monotonic() - t0))
    t_send = time.monotonic()
    res = {}

    lat = {}

    def one(a):
        t = time.monotonic()
        r = send(proxies[a.variant], a, hash(a.aid) & 0xffffffff)
        k = (a.cls, r.status)
        lat[k] = lat.get(k, 0) + time.monotonic() - t
        return a.aid, r

    order = list(all_attacks)
    random.Random(args.seed).shuffle(order)
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        for aid, r in ex.map(one, order):
            res[aid] = r
    # classes 7 and 8: own proxies
    c7 = []
    c8 = []
    if 7 in classes:
        class7(CONSENTGATE, workdir, ups, SHIPPED_POLICY,
               random.Random(args.seed * 1000 + 7), n7, c7)
        counts[7] = len(c7)
    if 8 in classes:
        g8 = atk.Gen(random.Random(args.seed * 1000 + 8), allowed, denied,
                     unknown)
        c8 = class8(CONSENTGATE, workdir, g8, SHIPPED_POLICY,
                    SHIPPED_CONSENT, n8, random.Random(args.seed * 1000 + 8))
        counts[8] = len(c8)
    st = {}
    for a in all_attacks:
        r = res[a.aid]
        key = (a.cls, r.status or (r.error or "")[:40])
        st[key] = st.get(key, 0) + 1
    log("readers: responses " + ", ".join("c%d:%s=%d" % (k[0], k[1], v)
                                         for k, v in sorted(st.items(), key=str)))
    if os.environ.get("READERS_DEBUG"):
        log("readers: latency " + ", ".join("c%d:%s=%.1fs" % (k[0], k[1], v)
                                           for k, v in sorted(lat.items(), key=str)))
    time.sleep(0.5)
    log("readers: sent in %.1fs; reading upstream records" % (
        time.monotonic() - t_send))
    ups_recs = {}
    stray = []
    for r in ups.records():
        aid = r["headers"].get("HTTP_X_READERS_ATTACK")
        if aid is None:
            stray.append(r)
        ups_recs.setdefault(aid, []).append(r)
    # ------------------------------------------------------------ readers
    builder.join(300)
    for e in readers.errors:
        log("FAIL setup/readers: %s" % e)
        setup_fail += 1
    items = []
    by_id = {a.aid: a for a in all_attacks}
    for aid, rs in ups_recs.items():
        a = by_id.get(aid)
        if a is None:
            continue
        loc = "am" if a.variant in ("multi", "multi-block") else "a"
        for u in rs:
            body, modes, note = pipeline_view(u)
            u["modes"] = modes
            if not u["complete"] or body is None:
                continue
            if u["endpoint"] not in ("ingest", "ingest-alias"):
                continue
            for m in modes:
                items.append({"id": "%s|%s" % (u["file"], m), "mode": m,
                              "loc": loc, "b64": infra.b64(body)})
    t_read = time.monotonic()
    log("readers: %d upstream bodies to read" % len(items))
    raw_readings = readers.run(items) if items else {}
    log("readers: read in %.1fs (%s)" % (
        time.monotonic() - t_read, ", ".join("%s %.1fs" % kv for kv in
                                             sorted(readers.have.items()))))
    for e in readers.errors[setup_fail:]:
        log("FAIL setup/readers: %s" % e)
    readings = {}
    for bid, per_reader in raw_readings.items():
        f, m = bid.rsplit("|", 1)
        for rname, rr in per_reader.items():
            view = "lines" if rname.startswith(FILE_LINE_READERS) else m
            readings.setdefault(f, {})[(rname, m, view)] = rr
    # ------------------------------------------------------------ judge
    judge = Judge(oracles, calib)
    ids_needed = set()
    for f, rs in readings.items():
        for rr in rs.values():
            for rec in rr["recs"]:
                for x in rec.get("s") or []:
                    if x is not None:
                        ids_needed.add(x)
    for o in by_consent.values():
        o.decide(sorted(ids_needed))
    for a in all_attacks:
        judge.judge(a, res[a.aid], ups_recs.get(a.aid, []), readings, None)
    failures = {}
    for a, kind, text in judge.failures:
        failures.setdefault(a.aid, (a, []))[1].append((kind, text))
    # class 7
    extra_fail = []
    for aid, note, checked_ok, started, forwarded, raw, out in c7:
        if forwarded:
            extra_fail.append((aid, 7, "leak", "consentgate started with %s "
                               "and forwarded that opted-out person's record"
                               % note, raw))
        elif checked_ok or started:
            extra_fail.append((aid, 7, "fail", "consent table with %s: %s" % (
                note, "serve --check says OK" if checked_ok else
                "serve started") + (" and serve started" if checked_ok and
                                    started else ""), raw))
    judge8(c8, extra_fail)
    # stray upstream requests (no attack id): a request smuggled in
    for r in stray:
        extra_fail.append(("stray-" + r["file"], 0, "leak",
                           "the upstream app got a request consentgate's "
                           "clients never sent as such: %s %s" % (
                               r["method"], r["raw_uri"]), r["body"][:300]))
    # ------------------------------------------------------------ report
    kinds_per_class = {}
    leaks = losses = others = 0
    printed = {}
    lines_out = []
    for aid in sorted(failures):
        a, fl = failures[aid]
        kinds = sorted(set(k for k, _ in fl))
        raw = a.raw()
        path = os.path.join(results_dir, "repro", aid + ".req")
        with open(path, "wb") as f:
            f.write(raw)
        for k in kinds:
            kinds_per_class.setdefault(a.cls, {}).setdefault(k, 0)
            kinds_per_class[a.cls][k] += 1
        leaks += "leak" in kinds
        losses += "loss" in kinds
        r = res[a.aid]
        text = "; ".join(t for _, t in fl[:3]) + (
            " (+%d more)" % (len(fl) - 3) if len(fl) > 3 else "")
        line = "%s c%d %s %s [%s %s %s -> %s] %s repro=%s" % (
            "/".join(k.upper() for k in kinds), a.cls, aid, a.variant,
            a.method, a.target, a.note, r.status or r.error, text,
            os.path.relpath(path, infra.ROOT))
        lines_out.append((a.cls, line, escape(raw, 600)))
    for aid, cls, kind, text, raw in extra_fail:
        path = os.path.join(results_dir, "repro", aid + ".req")
        with open(path, "wb") as f:
            f.write(raw or b"")
        kinds_per_class.setdefault(cls, {}).setdefault(kind, 0)
        kinds_per_class[cls][kind] += 1
        if kind == "leak":
            leaks += 1
        elif kind == "loss":
            losses += 1
        else:
            others += 1
        lines_out.append((cls, "%s c%d %s %s repro=%s" % (
            kind.upper(), cls, aid, text, os.path.relpath(path, infra.ROOT)),
            escape(raw or b"", 600)))
    with open(os.path.join(results_dir, "failures.txt"), "w") as f:
        for cls, line, raw in lines_out:
            f.write(line + "\n    request: " + raw + "\n")
    for cls, line, raw in lines_out:
        printed[cls] = printed.get(cls, 0) + 1
        if args.all or printed[cls] <= 25:
            log(line)
            if printed[cls] <= 3 or args.all:
                log("    request: " + raw[:400])
    for cls in sorted(printed):
        if not args.all and printed[cls] > 25:
            log("... class %d: %d more failing attacks in %s" % (
                cls, printed[cls] - 25, os.path.join(results_dir,
                                                     "failures.txt")))
    total = sum(counts.values())
    log("")
    log("per class (attacks: failing attacks by kind):")
    for c in sorted(counts):
        k = kinds_per_class.get(c, {})
        log("  %d %-17s attacks=%-5d %s" % (c, atk.CLASS_NAMES[c], counts[c],
                                            " ".join("%s=%d" % kv for kv in
                                                     sorted(k.items()))
                                            or "ok"))
    ups_n = sum(len(v) for v in ups_recs.values())
    log("upstream requests=%d, bodies read=%d, readers=%d, run %.0fs" % (
        ups_n, len(items), len(set(r for rs in readings.values() for
                                   (r, _, _) in rs)),
        time.monotonic() - t0))
    nfail = len(failures) + len(extra_fail) + setup_fail
    log("attacks=%d leaks=%d losses=%d" % (total, leaks, losses))
    log("%d passed, %d failed" % (total - len(failures) -
                                  len([x for x in extra_fail if x[1]]),
                                  nfail))
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
