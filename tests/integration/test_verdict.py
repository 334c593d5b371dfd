"""test_verdict.py: the proxy and `consentgate eval` decide alike.

One shared corpus goes through `consentgate eval` (offline) and through the
running proxy (the real binary on 127.0.0.1:0 in front of the recording
test upstream), and for every request the two must agree on:
- the status (`eval --output status` against the client's status);
- the Consent-* headers (`eval --output headers` against what the upstream
  received, or, when every record was dropped, against the client's
  Consent-Result; the snapshot age may differ by the seconds between them);
- the forwarded body, byte for byte (`eval --output kept` against the body
  the upstream recorded; nothing recorded when eval says nothing goes).

The corpus: every case of the case files (policy/examples/*.cases.json and
tests/cli/data/*.cases.json, each with its policy and consent rows), every
file of the scanner's fuzz corpus (tests/fuzz/corpus/scan) as NDJSON and as
JSON, and generated bodies: valid, malformed, blocked, all-dropped,
gzip, missing or unaccepted Content-Type, header subjects (allowed,
denied, missing, repeated in another spelling, a list). One named check
per request; the suite ends with "N passed, N failed".
"""

import concurrent.futures
import gzip
import itertools
import json
import os
import random
import re
import subprocess
import time

from harness import (CONSENTGATE, ROOT, main, request, subtests, test,
                     test_policy, wait_until)

SEED = int(os.environ.get("VERDICT_SEED", "9"))
# eval runs this many at a time, ahead of the proxy (which takes the
# requests one by one: the upstream's records are matched by order)
EVAL_THREADS = 4
BODY_FILES = itertools.count()

CONSENT = ("subject,purpose,status,jurisdiction,updated_at,evidence\n"
           "1001,ai-training,granted,DE,2025-03-01T12:00:00Z,ev-1001\n"
           "1002,ai-training,denied,DE,2025-03-01T12:00:00Z,ev-1002\n"
           "1003,ai-training,withdrawn,FR,2025-04-01T12:00:00Z,ev-1003\n"
           "1004,ai-training,granted,GB,2025-01-20T10:00:00Z,ev-1004\n"
           "1006,ai-training,granted,US,2025-02-02T15:00:00Z,ev-1006\n"
           "1007,ai-training,denied,BR,2025-02-03T16:00:00Z,ev-1007\n"
           "1009,analytics,granted,US,2025-02-05T12:00:00Z,ev-1009\n"
           "u1,ai-training,granted,US,2025-03-01T12:00:00Z,ev-1\n")

ALLOWED = ["1001", "1004", "1006", "1009", "u1"]
DENIED = ["1002", "1003", "1007", "4242", "9999"]

# Case files and the policy each is written for (as tests/cli/cases runs
# them); case files that `test` refuses are not requests.
CASE_FILES = [
    ("policy/examples/ai-training.cases.json",
     "policy/examples/ai-training.json"),
    ("tests/cli/data/failing.cases.json", "policy/examples/ai-training.json"),
    ("tests/cli/data/header-block.cases.json",
     "tests/cli/data/header-block.json"),
    ("tests/cli/data/aliases.cases.json", "tests/cli/data/catch-all.json"),
]

STATUSES = {}  # status -> requests compared, printed at the end

NDJSON = "application/x-ndjson"
JSON = "application/json"


class Side:
    """One policy and one consent snapshot, through eval and the proxy."""

    def __init__(self, env, upstream, policy_path, snap, tag):
        self.env = env
        self.up = upstream
        self.policy = policy_path
        self.snap = snap
        self.tag = tag
        with open(policy_path) as f:
            pol = json.load(f)
        self.proxy = env.proxy(upstream.url, policy=pol, consent="@" + snap)
        # the very bytes the proxy loaded: Consent-Policy carries their
        # digest
        self.policy = self.proxy.policy_path

    def eval(self, out, method, target, headers, body):
        path = os.path.join(self.env.workdir, "body-%d" % next(BODY_FILES))
        with open(path, "wb") as f:
            f.write(body)
        args = [CONSENTGATE, "eval", "--policy", self.policy, "--consent",
                self.snap, "--route", "%s %s" % (method, target),
                "--output", out]
        for k, v in headers:
            args += ["--header", "%s: %s" % (k, v)]
        args.append(path)
        p = subprocess.run(args, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=20)
        os.unlink(path)
        if p.returncode not in (0, 1):
            raise AssertionError("eval exit %d: %r" % (p.returncode,
                                                       p.stderr[-300:]))
        return p.stdout, p.returncode

    def through_proxy(self, method, target, headers, body, chunked=None,
                      pause_at=None):
        before = self.up.count()
        c = self.env.client(self.proxy)
        raw = request(method, target, headers, body, chunked=chunked)
        if pause_at:
            # the proxy sees more than 256 KiB of kept records before the
            # body ends: it must stream (chunked upstream, trailer)
            cut = len(raw) - len(body) + pause_at
            c.send(raw[:cut])
            time.sleep(0.2)
            raw = raw[cut:]
        c.send(raw)
        resp = c.read_response()
        c.close()
        rec = None
        if self.up.count() > before:
            rec = self.up.request(before + 1)
        return resp, rec


def consent_lines(headers):
    """Consent-* and Content-Usage fields, with the snapshot age apart."""
    out, age = [], None
    for k, v in headers:
        kl = k.lower()
        if not (kl.startswith("consent-") or kl == "content-usage"):
            continue
        if kl == "consent-snapshot":
            m = re.search(r"age=(\d+)", v)
            age = int(m.group(1)) if m else None
            v = re.sub(r"age=\d+", "age=*", v)
        out.append("%s: %s" % (k, v))
    return sorted(out), age


def eval_outputs(side, method, target, headers, body):
    """What eval says of one request: (status, kept, kept's exit, headers)."""
    status_out, _ = side.eval("status", method, target, headers, body)
    want_status = int(status_out.strip() or b"0")
    kept, krc, hdrs = b"", 1, b""
    if want_status in (200, 204):  # something forwarded or counted
        kept, krc = side.eval("kept", method, target, headers, body)
        hdrs, _ = side.eval("headers", method, target, headers, body)
    return want_status, kept, krc, hdrs


def compare(side, method, target, headers, body, opts=None, evaluated=None):
    """One request through both; AssertionError on any difference.
    opts: {"chunked": chunk sizes} for a chunked request body (else
    Content-Length); {"pause_at": n} sends n body bytes, waits, then the
    rest, so that a long NDJSON body streams. evaluated: a future of
    eval_outputs, run ahead."""
    opts = opts or {}
    if evaluated is None:
        want_status, kept, krc, hdrs = eval_outputs(side, method, target,
                                                    headers, body)
    else:
        want_status, kept, krc, hdrs = evaluated.result()
    resp, rec = side.through_proxy(method, target, headers, body,
                                   opts.get("chunked"), opts.get("pause_at"))
    STATUSES[want_status] = STATUSES.get(want_status, 0) + 1
    if resp.status != want_status and not (
            want_status == 200 and 200 <= resp.status < 300):
        raise AssertionError("status: proxy %d, eval %d (%r)" % (
            resp.status, want_status, resp.body[:200]))
    want_hdrs = []
    for ln in hdrs.decode().splitlines():
        k, _, v = ln.partition(": ")
        want_hdrs.append((k, v))
    want, want_age = consent_lines(want_hdrs)
    if want_status == 200:
        if rec is None:
            raise AssertionError("eval forwards, the proxy did not")
        got, got_age = consent_lines(rec.headers + rec.trailers)
        if got != want:
            raise AssertionError("headers: proxy %r, eval %r" % (got, want))
        if (want_age is None) != (got_age is None) or (
                got_age is not None and abs(got_age - want_age) > 5):
            raise AssertionError("snapshot age: proxy %r, eval %r" % (
                got_age, want_age))
        if krc == 0 and rec.body != kept:
            raise AssertionError("body: proxy %r, eval %r" % (
                rec.body[:300], kept[:300]))
        streams = (dict((k.lower(), v) for k, v in headers)
                   .get("content-type") == NDJSON and
                   not any(k.lower() == "content-encoding" for k, _ in headers))
        if streams and opts.get("pause_at") and not rec.chunked:
            raise AssertionError("%d kept bytes were not streamed" %
                                 len(kept))
        return
    if rec is not None:
        raise AssertionError("eval says %d, the proxy forwarded %r" % (
            want_status, rec))
    if want_status == 204:
        got, _ = consent_lines(resp.headers)
        if got != want:
            raise AssertionError("204 headers: proxy %r, eval %r" % (got,
                                                                    want))


def snapshot(env, csv_text, name, version):
    csv = os.path.join(env.workdir, name + ".csv")
    snap = os.path.join(env.workdir, name + ".snap")
    with open(csv, "w") as f:
        f.write(csv_text)
    p = subprocess.run([CONSENTGATE, "consent", "build", csv, "-o", snap,
                        "--version", str(version)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=20)
    assert p.returncode == 0, p.stderr
    return snap


def rows_csv(rows):
    out = ["subject,purpose,status,jurisdiction,updated_at,evidence"]
    for r in rows:
        r = list(r) + [""] * (6 - len(r))
        out.append(",".join('"%s"' % x.replace('"', '""') for x in r))
    return "\n".join(out) + "\n"


def case_requests(path):
    """(name, consent key, method, target, headers, body) of a case file."""
    with open(os.path.join(ROOT, path)) as f:
        doc = json.load(f)
    d = os.path.dirname(os.path.join(ROOT, path))
    out = []
    for c in doc["cases"]:
        holder = c if ("consent" in c or "consent_file" in c) else doc
        if "consent_file" in holder:
            with open(os.path.join(d, holder["consent_file"])) as f:
                consent = f.read()
        else:
            consent = rows_csv(holder.get("consent", []))
        method, target = c["route"].split(" ", 1)
        headers = list(c.get("headers", {}).items())
        if "records" in c:
            body = b"".join(json.dumps(r, separators=(",", ":")).encode() +
                            b"\n" for r in c["records"])
            if "content_type" not in c:
                headers.append(("Content-Type", NDJSON))
        elif "body_file" in c:
            with open(os.path.join(d, c["body_file"]), "rb") as f:
                body = f.read()
        else:
            body = c.get("body", "").encode()
        if "content_type" in c:
            headers.append(("Content-Type", c["content_type"]))
        out.append((c["name"], consent, method, target, headers, body))
    return out


def record(rng, author, mentions=()):
    r = {"author_id": author, "text": "t%d" % rng.randint(0, 999)}
    if mentions:
        r["mentions"] = [{"id": m} for m in mentions]
    if rng.random() < 0.3:
        r["n"] = rng.choice([0.1, 1e3, -7, 12345678901234567890, None, True])
    return r


def ndjson(records, crlf=False):
    end = b"\r\n" if crlf else b"\n"
    return b"".join(json.dumps(r, separators=(",", ":")).encode() + end
                    for r in records)


def generated(rng):
    """(name, method, target, headers, body[, options for compare]) of the
    generated corpus."""
    out = []
    ids = ALLOWED + DENIED
    for i in range(120):  # valid mixed batches, three formats
        recs = [record(rng, rng.choice(ids),
                       rng.sample(ids, rng.randint(0, 2)))
                for _ in range(rng.randint(1, 12))]
        kind = i % 4
        if kind == 0:
            out.append(("valid-ndjson-%d" % i, "POST", "/ingest",
                        [("Content-Type", NDJSON)], ndjson(recs, i % 8 == 0)))
        elif kind == 1:
            out.append(("valid-array-%d" % i, "POST", "/ingest",
                        [("Content-Type", JSON)],
                        json.dumps(recs, indent=rng.choice([None, 2]))
                        .encode()))
        elif kind == 2:
            out.append(("valid-batch-%d" % i, "POST", "/batch",
                        [("Content-Type", JSON)],
                        json.dumps({"v": 1, "data": recs}).encode()))
        else:
            out.append(("valid-cu-%d" % i, "POST", "/ingest-cu",
                        [("Content-Type", "application/jsonl")],
                        ndjson(recs)))
    for i in range(60):  # malformed: cut, corrupted, ambiguous
        recs = [record(rng, rng.choice(ids)) for _ in range(rng.randint(2, 6))]
        body = bytearray(ndjson(recs))
        how = i % 6
        if how == 0:
            body = body[:rng.randint(1, len(body) - 2)]
        elif how == 1:
            body[rng.randrange(len(body))] = ord(rng.choice("{}[],:\"\\"))
        elif how == 2:
            body += b'{"author_id":"1001","author_id":"1002"}\n'
        elif how == 3:
            body += b'{"author_id":1e3}\n'
        elif how == 4:
            body += b'{"author_id":"1001"}\r{"author_id":"1002"}\n'
        else:
            body += b'{"Author_id":"1002","author_id":"1001"}\n'
        ct = NDJSON if i % 2 == 0 else JSON
        out.append(("malformed-%d" % i, "POST", "/ingest",
                    [("Content-Type", ct)], bytes(body)))
    for i in range(50):  # blocked: a denied person among allowed ones
        recs = [record(rng, rng.choice(ALLOWED)) for _ in range(rng.randint(0, 5))]
        recs.insert(rng.randint(0, len(recs)), record(rng, rng.choice(DENIED)))
        recs += [record(rng, rng.choice(ids)) for _ in range(rng.randint(0, 3))]
        if i % 2:
            out.append(("blocked-ndjson-%d" % i, "POST", "/ingest-block",
                        [("Content-Type", NDJSON)], ndjson(recs)))
        else:
            out.append(("blocked-array-%d" % i, "POST", "/ingest-block",
                        [("Content-Type", JSON)], json.dumps(recs).encode()))
    for i in range(40):  # every record dropped
        recs = [record(rng, rng.choice(DENIED)) for _ in range(rng.randint(1, 6))]
        if i % 3 == 0:
            recs.append({"text": "no author"})
        ct = NDJSON if i % 2 else JSON
        body = ndjson(recs) if ct == NDJSON else json.dumps(recs).encode()
        out.append(("all-dropped-%d" % i, "POST", "/ingest",
                    [("Content-Type", ct)], body))
    for i in range(40):  # gzip, identity, missing and other content types
        recs = [record(rng, rng.choice(ids)) for _ in range(rng.randint(1, 6))]
        body = ndjson(recs)
        how = i % 8
        if how == 0:
            out.append(("gzip-%d" % i, "POST", "/ingest",
                        [("Content-Type", NDJSON),
                         ("Content-Encoding", "gzip")], gzip.compress(body)))
        elif how == 1:
            out.append(("gzip-corrupt-%d" % i, "POST", "/ingest",
                        [("Content-Type", NDJSON),
                         ("Content-Encoding", "gzip")],
                        gzip.compress(body)[:-6]))
        elif how == 2:
            out.append(("identity-%d" % i, "POST", "/ingest",
                        [("Content-Type", NDJSON),
                         ("Content-Encoding", "identity")], body))
        elif how == 3:
            out.append(("no-content-type-%d" % i, "POST", "/ingest", [],
                        body))
        elif how == 4:
            out.append(("text-plain-%d" % i, "POST", "/ingest",
                        [("Content-Type", "text/plain")], body))
        elif how == 5:
            out.append(("brotli-%d" % i, "POST", "/ingest",
                        [("Content-Type", NDJSON),
                         ("Content-Encoding", "br")], body))
        elif how == 6:
            out.append(("charset-latin1-%d" % i, "POST", "/ingest",
                        [("Content-Type", JSON + "; charset=latin-1")],
                        json.dumps(recs).encode()))
        else:
            out.append(("empty-%d" % i, "POST", "/ingest",
                        [("Content-Type", rng.choice([NDJSON, JSON]))], b""))
    for i in range(48):  # one person in a header
        body = json.dumps({"bio": "b%d" % i}).encode()
        who = rng.choice(ids)
        how = i % 6
        if how == 0:
            h = [("X-Subject-Id", who), ("Content-Type", JSON)]
        elif how == 1:
            h = [("x-subject-id", who)]  # no Content-Type: still decided
        elif how == 2:
            h = [("Content-Type", JSON)]  # nobody named
        elif how == 3:
            h = [("X-Subject-Id", who), ("X_Subject_Id", rng.choice(ids)),
                 ("Content-Type", JSON)]
        elif how == 4:
            h = [("X-Subject-Id", "%s, %s" % (who, rng.choice(ids))),
                 ("Content-Type", JSON)]
        else:
            h = [("X-Subject-Id", who), ("X-SUBJECT-ID", who),
                 ("Content-Type", JSON)]
        out.append(("header-subject-%d" % i, "POST", "/profile", h, body))
    # Long NDJSON streams upstream chunked (Consent-Result in the trailer);
    # a bad record or, on a block route, a denied one after streaming
    # began leaves the upstream without a complete request
    for i in range(8):
        recs = [record(rng, rng.choice(ALLOWED)) for _ in range(9000)]
        target = "/ingest"
        if i % 4 == 1:
            recs[-1] = {"author_id": 1e3}
        elif i % 4 == 2:
            target = "/ingest-block"
            recs.insert(8500, record(rng, rng.choice(DENIED)))
        elif i % 4 == 3:
            recs += [record(rng, rng.choice(DENIED)) for _ in range(50)]
        out.append(("streamed-%d" % i, "POST", target,
                    [("Content-Type", NDJSON)], ndjson(recs),
                    {"pause_at": 300000}))
    for i in range(20):  # chunked client bodies, every format
        recs = [record(rng, rng.choice(ids)) for _ in range(rng.randint(1, 8))]
        if i % 2:
            out.append(("chunked-ndjson-%d" % i, "POST", "/ingest",
                        [("Content-Type", NDJSON)], ndjson(recs),
                        {"chunked": [rng.randint(1, 50)]}))
        else:
            out.append(("chunked-array-%d" % i, "POST", "/ingest",
                        [("Content-Type", JSON)], json.dumps(recs).encode(),
                        {"chunked": [rng.randint(1, 50)]}))
    for target in ("/status", "/nowhere", "//ingest", "/INGEST",
                   "/echo/x"):
        out.append(("route-%s" % target, "POST" if target != "/status"
                    else "GET", target, [("Content-Type", NDJSON)],
                    b"" if target == "/status"
                    else b'{"author_id":"1002"}\n'))
    return out


def generated_policy():
    """The harness policy without its failing-upstream routes."""
    pol = test_policy()
    pol["routes"] = [r for r in pol["routes"]
                     if not r.get("path", "").endswith("-ingest")]
    return pol


@subtests
def shared_corpus(env, res):
    rng = random.Random(SEED)
    up = env.upstream()
    sides = {}
    version = [100]

    def side(policy_path, consent_text):
        key = (policy_path, consent_text)
        if key not in sides:
            version[0] += 1
            snap = snapshot(env, consent_text, "c%d" % version[0],
                            version[0])
            sides[key] = Side(env, up, policy_path, snap, version[0])
        return sides[key]

    checks = []  # (name, side, method, target, headers, body, opts)
    for cases, pol in CASE_FILES:
        for name, consent, method, target, headers, body in \
                case_requests(cases):
            s = side(os.path.join(ROOT, pol), consent)
            checks.append(("%s/%s" % (os.path.basename(cases), name), s,
                           method, target, headers, body, None))
    gpol = os.path.join(env.workdir, "generated-policy.json")
    with open(gpol, "w") as f:
        json.dump(generated_policy(), f)
    g = side(gpol, CONSENT)
    corpus = os.path.join(ROOT, "tests", "fuzz", "corpus", "scan")
    for fn in sorted(os.listdir(corpus)):
        with open(os.path.join(corpus, fn), "rb") as f:
            body = f.read()
        for ct in (NDJSON, JSON):
            checks.append(("fuzz-scan/%s/%s" % (fn, ct.split("/")[1]), g,
                           "POST", "/ingest", [("Content-Type", ct)], body,
                           None))
    for name, method, target, headers, body, *opts in generated(rng):
        checks.append(("generated/%s" % name, g, method, target, headers,
                       body, opts[0] if opts else None))
    with concurrent.futures.ThreadPoolExecutor(EVAL_THREADS) as pool:
        ahead = [pool.submit(eval_outputs, *c[1:6]) for c in checks]
        for c, evaluated in zip(checks, ahead):
            res.check(c[0], compare, *c[1:7], evaluated)
    print("statuses compared: %s" % ", ".join(
        "%d x%d" % kv for kv in sorted(STATUSES.items())), flush=True)


@test
def decision_log_carries_every_subjects_evidence(env):
    """A record of several people: the log proves each person's part (the
    fifth element: each one's decision, rule and evidence), not only the
    deciding row; one person: four elements."""
    up = env.upstream()
    log = os.path.join(env.workdir, "decisions.jsonl")
    px = env.proxy(up.url, consent=CONSENT, extra=["--decision-log", log])
    c = env.client(px)
    body = (b'{"author_id":"1001","mentions":[{"id":"1006"}]}\n'
            b'{"author_id":"1002","mentions":[{"id":"1006"},{"id":"4242"}]}\n'
            b'{"author_id":"1006"}\n')
    c.send(request("POST", "/ingest", [("Content-Type", NDJSON)], body))
    r = c.read_response()
    assert r.status == 200, r
    assert wait_until(lambda: os.path.exists(log) and
                      open(log).read().endswith("\n"), 5), "no log line"
    d = json.loads(open(log).read().splitlines()[0])["decisions"]
    assert d[0] == [0, "allow", "default-allow", "ev-1006",
                    [["allow", "strict-granted", "ev-1001"],
                     ["allow", "default-allow", "ev-1006"]]], d
    # the first denied person decides; the others are decided all the same
    assert d[1] == [1, "deny", "strict-otherwise", "ev-1002",
                    [["deny", "strict-otherwise", "ev-1002"],
                     ["allow", "default-allow", "ev-1006"],
                     ["deny", "unknown-person", ""]]], d
    assert d[2] == [2, "allow", "default-allow", "ev-1006"], d


if __name__ == "__main__":
    main()
