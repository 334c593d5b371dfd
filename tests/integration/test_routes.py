"""test_routes.py: what a request's method and path may mean upstream, and
what a consent table may hold that the policy cannot see (issue 8, classes
5 and 7), through the real binary.

- Behind a catch-all pass route, every spelling of an inspected route's
  method and path that an upstream framework would route to the same
  endpoint (//ingest, /%69ngest, /ingest/, /INGEST, /ingest;x,
  /ingest.json, PUT/PATCH, lower-case post) is refused with a problem and
  nothing reaches the upstream; the route as written is inspected and other
  paths still pass.
- A consent row whose purpose the policy neither declares nor lists in
  "ignored_purposes" (the typo ai_training) stops serve, serve --check and
  a reload, naming the file and line (a snapshot: the purpose and its
  rows); a failed reload keeps deciding with the old table.
"""

import os
import re
import signal
import subprocess
import time

from harness import (CONSENTGATE, EEA, check_problem, main, request, test,
                     wait_until)

CONSENT = ("subject,purpose,status,jurisdiction,updated_at,evidence\n"
           "1001,ai-training,granted,DE,2025-03-01T12:00:00Z,ev-1001\n"
           "1002,ai-training,denied,DE,2025-03-01T12:00:00Z,ev-1002\n"
           "1006,ai-training,granted,US,2025-02-02T15:00:00Z,ev-1006\n"
           "1009,analytics,granted,US,2025-02-05T12:00:00Z,ev-1009\n")

# The opt-out of 1006 written with a typo in its purpose (line 3).
TYPO_CONSENT = ("subject,purpose,status,jurisdiction,updated_at,evidence\n"
                "1006,ai-training,granted,US,2025-02-02T15:00:00Z,ev-1006\n"
                "1006,ai_training,withdrawn,US,2025-06-02T15:00:00Z,ev-1006b\n"
                "1007,ai_training,denied,US,2025-06-03T15:00:00Z,ev-1007\n")

BODY = b'{"author_id":"1001","n":1}\n{"author_id":"1002","n":2}\n'


def catch_all_policy():
    """The example policy's shape with a catch-all pass route after the
    inspected one (the set-up the issue found leaking)."""
    return {
        "policy": "catch-all",
        "purposes": {"ai-training": {"aipref": "train-ai"}},
        "ignored_purposes": ["analytics"],
        "jurisdictions": {"EEA": EEA},
        "routes": [
            {"method": "GET", "path": "/status", "action": "pass"},
            {"name": "ingest", "method": "POST", "path": "/ingest",
             "action": "inspect", "purpose": "ai-training",
             "formats": ["ndjson", "array", "object"],
             "subjects": ["/author_id"], "on_deny": "drop"},
            {"method": "*", "path_prefix": "/", "action": "pass"},
        ],
        "rules": [
            {"id": "unknown-person", "if": {"known": False}, "then": "deny"},
            {"id": "strict-granted",
             "if": {"jurisdiction": ["EEA"], "status": ["granted"]},
             "then": "allow"},
            {"id": "strict-otherwise", "if": {"jurisdiction": ["EEA"]},
             "then": "deny"},
            {"id": "opted-out", "if": {"status": ["denied", "withdrawn"]},
             "then": "deny"},
            {"id": "default-allow", "then": "allow"},
        ],
    }


# (method, target, status): each means POST /ingest to a framework upstream
ALIASES = [
    ("POST", "//ingest", 404),
    ("POST", "/%69ngest", 404),
    ("POST", "/%2569ngest", 404),
    ("POST", "/ingest/", 404),
    ("POST", "/INGEST", 404),
    ("POST", "/Ingest", 404),
    ("POST", "/ingest;x", 404),
    ("POST", "/ingest;jsessionid=ABC", 404),
    ("POST", "/ingest.json", 404),
    ("POST", "/ingest.json?x=1", 404),
    ("POST", "///ingest//?a=b", 404),
    ("PUT", "/ingest", 405),
    ("PATCH", "/ingest", 405),
    ("PUT", "/INGEST/", 405),
]


def send_alias(env, px, method, target):
    c = env.client(px)
    c.send(request(method, target, headers=[
        ("Content-Type", "application/x-ndjson")], body=BODY))
    return c.read_response()


@test
def catch_all_aliases_refused_nothing_forwarded(env):
    up = env.upstream()
    px = env.proxy(up.url, policy=catch_all_policy(), consent=CONSENT)
    for method, target, status in ALIASES:
        r = send_alias(env, px, method, target)
        doc = check_problem(r, status)
        assert "'ingest' (POST /ingest)" in doc["detail"], \
            "%s %s: detail does not name the route: %r" % (method, target,
                                                           doc)
        if status == 404:
            assert doc["detail"].endswith("send POST /ingest"), doc
    time.sleep(0.1)
    assert up.raw_bytes() == 0, "an alias reached the upstream: %r" % [
        x.request_line for x in up.requests()]


@test
def problems_say_what_would_be_taken(env):
    """405 names the method in Allow, 413 the limit, 415 the media types
    the route takes; every problem has a Date (RFC 9110 6.6.1)."""
    up = env.upstream()
    px = env.proxy(up.url, policy=catch_all_policy(), consent=CONSENT,
                   config={"max_body_bytes": 1000})
    r = send_alias(env, px, "PUT", "/ingest")
    check_problem(r, 405)
    assert r.get("Allow") == "POST", r.headers
    c = env.client(px)
    c.send(request("POST", "/ingest", [("Content-Type", "text/plain")],
                   BODY))
    r = c.read_response()
    doc = check_problem(r, 415)
    assert doc.get("accepted") == ["application/x-ndjson",
                                   "application/json"], doc
    c = env.client(px)
    c.send(request("POST", "/ingest", [("Content-Type",
                                        "application/x-ndjson")],
                   b"x" * 2000))
    r = c.read_response()
    doc = check_problem(r, 413)
    assert doc.get("limit") == 1000 and "1000 bytes" in doc["detail"], doc
    date = r.get("Date")
    assert date and date.endswith(" GMT") and len(date) == 29, date
    time.sleep(0.1)
    assert up.raw_bytes() == 0


@test
def lowercase_method_refused_nothing_forwarded(env):
    """werkzeug upper-cases methods: "post /ingest" is POST /ingest to
    Flask. consentgate refuses it (the strict framing or the route match)."""
    up = env.upstream()
    px = env.proxy(up.url, policy=catch_all_policy(), consent=CONSENT)
    for method, target in (("post", "/ingest"), ("Post", "/ingest"),
                           ("post", "/status")):
        c = env.client(px)
        c.send(request(method, target, body=BODY))
        try:
            r = c.read_response()
        except Exception:  # closed without an answer is refused too
            r = None
        if r is not None:
            check_problem(r, 400)
    time.sleep(0.1)
    assert up.raw_bytes() == 0, "a lower-case method reached the upstream"


@test
def as_written_inspected_and_other_paths_pass(env):
    up = env.upstream()
    px = env.proxy(up.url, policy=catch_all_policy(), consent=CONSENT)
    r = send_alias(env, px, "POST", "/ingest")
    assert r.status == 200, r
    assert r.get("Consent-Result").replace(" ", "") == "kept=1,dropped=1", r
    got = up.request(1)
    assert got.request_line.startswith(b"POST /ingest "), got
    assert got.body == b'{"author_id":"1001","n":1}\n', got.body
    # paths that are no spelling of /ingest still take the catch-all
    for target in ("/ingest/x", "/ingestion", "/v1/ingest", "/echo"):
        r = send_alias(env, px, "POST", target)
        assert r.status == 200, (target, r)
    assert wait_until(lambda: up.count() == 5, 2), up.count()
    # the pass route forwards the body untouched (it is not inspected)
    assert up.request(2).body == BODY


def write(env, name, text):
    path = os.path.join(env.workdir, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def write_policy(env, policy):
    import json
    return write(env, "policy.json", json.dumps(policy, indent=1))


def serve_args(env, policy, consent, check=False):
    args = [CONSENTGATE, "serve", "--listen", "127.0.0.1:0", "--upstream",
            "http://127.0.0.1:9", "--policy", policy, "--consent", consent]
    return args + (["--check"] if check else [])


@test
def typo_purpose_refused_at_start_with_line(env):
    pol = write_policy(env, catch_all_policy())
    csv = write(env, "consent.csv", TYPO_CONSENT)
    for check in (False, True):
        out = subprocess.run(serve_args(env, pol, csv, check),
                             capture_output=True, timeout=10)
        err = out.stderr.decode()
        assert out.returncode != 0, "serve%s started with a typo purpose" % (
            " --check" if check else "")
        assert b"configuration OK" not in out.stdout
        assert re.search(r"consent\.csv:3: purpose 'ai_training' is not "
                         r"declared by policy 'catch-all'", err), err
        assert "did you mean 'ai-training'?" in err, err
        assert "its 2 rows" in err, err
        assert "listening" not in err, err


@test
def typo_purpose_refused_in_a_snapshot(env):
    pol = write_policy(env, catch_all_policy())
    csv = write(env, "consent.csv", TYPO_CONSENT)
    snap = os.path.join(env.workdir, "consent.snap")
    out = subprocess.run([CONSENTGATE, "consent", "build", csv, "-o", snap],
                         capture_output=True, timeout=10)
    assert out.returncode == 0, out.stderr
    out = subprocess.run(serve_args(env, pol, snap, True),
                         capture_output=True, timeout=10)
    err = out.stderr.decode()
    assert out.returncode != 0, "serve --check accepted the snapshot"
    # no lines in a snapshot: the purpose and how many rows it has there
    assert re.search(r"consent\.snap: purpose 'ai_training' is not declared"
                     r".*its 2 rows would be silently ignored", err), err


@test
def undeclared_purpose_needs_ignored_purposes(env):
    """The analytics rows of the example table load only because the policy
    lists analytics in ignored_purposes."""
    policy = catch_all_policy()
    csv = write(env, "consent.csv", CONSENT)
    out = subprocess.run(serve_args(env, write_policy(env, policy), csv, True),
                         capture_output=True, timeout=10)
    assert out.returncode == 0, out.stderr
    del policy["ignored_purposes"]
    out = subprocess.run(serve_args(env, write_policy(env, policy), csv, True),
                         capture_output=True, timeout=10)
    assert out.returncode != 0, "analytics rows loaded without being ignored"
    assert re.search(rb"consent\.csv:5: purpose 'analytics'", out.stderr), \
        out.stderr


@test
def reload_with_typo_purpose_keeps_the_old_table(env):
    up = env.upstream()
    good = ("subject,purpose,status,jurisdiction,updated_at,evidence\n"
            "1006,ai-training,granted,US,2025-02-02T15:00:00Z,ev-1006\n")
    px = env.proxy(up.url, policy=catch_all_policy(), consent=good)
    body = b'{"author_id":"1006"}\n{"author_id":"1007"}\n'

    def kept():
        c = env.client(px)
        c.send(request("POST", "/ingest", headers=[
            ("Content-Type", "application/x-ndjson")], body=body))
        r = c.read_response()
        assert r.status == 200, r
        return r.get("Consent-Result").replace(" ", "")

    # 1007 is unknown: denied; 1006 granted in the US: kept
    assert kept() == "kept=1,dropped=1"
    tmp = px.consent_path + ".tmp"
    with open(tmp, "w") as f:
        f.write(TYPO_CONSENT)
    os.replace(tmp, px.consent_path)
    px.signal(signal.SIGHUP)
    assert wait_until(lambda: b"reload failed" in b"".join(px.stderr), 3), \
        b"".join(px.stderr)[-500:]
    log = b"".join(px.stderr).decode()
    assert re.search(r"reload: .*\.csv:3: purpose 'ai_training' is not "
                     r"declared", log), log[-800:]
    assert px.proc.poll() is None, "proxy exited on a refused reload"
    assert kept() == "kept=1,dropped=1", "the refused table was used"


if __name__ == "__main__":
    main()
