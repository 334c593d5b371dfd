"""test_ops.py: what operators rely on: the decision log (the proof),
/metrics and /healthz on the admin listener.
"""

import json
import os
import urllib.request

from harness import free_port, main, request, test, wait_until

CONSENT = ("subject,purpose,status,jurisdiction,updated_at,evidence\n"
           "1001,ai-training,granted,DE,2025-03-01T12:00:00Z,ev-1001\n"
           "1002,ai-training,denied,FR,2025-03-01T12:00:00Z,ev-1002\n"
           "1006,ai-training,granted,US,2025-03-01T12:00:00Z,ev-1006\n")
BATCH = (b'{"author_id":1001,"t":"secret words one"}\n'
         b'{"author_id":1002,"t":"secret words two"}\n'
         b'{"author_id":4242,"t":"secret words three"}\n'
         b'{"author_id":1006,"t":"secret words four"}\n')


def ingest(c, body, ctype="application/x-ndjson"):
    c.send(request("POST", "/ingest", [("Content-Type", ctype)], body))
    return c.read_response()


def read_log(path, n):
    assert wait_until(lambda: os.path.exists(path) and
                      open(path).read().count("\n") >= n, 5), \
        "decision log has fewer than %d lines" % n
    return [json.loads(l) for l in open(path).read().splitlines()]


@test
def decision_log_proves_every_record_without_personal_data(env):
    up = env.upstream()
    log = os.path.join(env.workdir, "decisions.jsonl")
    px = env.proxy(up.url, consent=CONSENT, extra=["--decision-log", log])
    c = env.client(px)
    r = ingest(c, BATCH)
    assert r.status == 200, r
    r = ingest(c, b'{"author_id":1002}\n')
    assert r.status == 204, r
    r = ingest(c, b'{"author_id":1.5}\n')
    assert r.status == 422, r
    lines = read_log(log, 3)
    assert [l["outcome"] for l in lines] == ["forwarded", "all-dropped", "refused"], lines
    first = lines[0]
    assert first["status"] == 200 and first["kept"] == 2 and first["dropped"] == 2, first
    assert first["policy"] and len(first["digest"]) == 16 and first["snapshot"] > 0, first
    assert first["purpose"] == "ai-training", first
    got = [(d[0], d[1], d[3]) for d in first["decisions"]]
    assert got == [(0, "allow", "ev-1001"), (1, "deny", "ev-1002"),
                   (2, "deny", ""), (3, "allow", "ev-1006")], first["decisions"]
    # what is not about a person is left out: a random request id, the
    # client's port or the snapshot version may hold "1001" by chance
    text = ""
    for line in open(log):
        doc = json.loads(line)
        for k in ("request_id", "conn", "client", "time", "snapshot",
                  "digest"):
            doc.pop(k, None)
        text += json.dumps(doc) + "\n"
    for personal in ("1001", "1002", "4242", "secret"):
        assert personal not in text.replace('"ev-%s"' % personal, ""), \
            "decision log carries %r" % personal


@test
def decision_log_reopens_on_sighup_for_rotation(env):
    import signal
    up = env.upstream()
    log = os.path.join(env.workdir, "rotate.jsonl")
    px = env.proxy(up.url, consent=CONSENT, extra=["--decision-log", log])
    c = env.client(px)
    assert ingest(c, BATCH).status == 200
    read_log(log, 1)
    os.rename(log, log + ".1")
    px.signal(signal.SIGHUP)
    assert wait_until(lambda: os.path.exists(log), 5), "log not reopened"
    assert ingest(c, b'{"author_id":1006}\n').status == 200
    lines = read_log(log, 1)
    assert len(lines) == 1 and lines[0]["kept"] == 1, lines
    assert len(open(log + ".1").read().splitlines()) == 1


@test
def metrics_and_healthz_on_the_admin_listener(env):
    up = env.upstream()
    port = free_port()
    px = env.proxy(up.url, consent=CONSENT,
                   extra=["--admin", "127.0.0.1:%d" % port])
    c = env.client(px)
    assert ingest(c, BATCH).status == 200
    assert ingest(c, b'{"author_id":1002}\n').status == 204
    c.send(request("GET", "/nowhere"))
    assert c.read_response().status == 404
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                  timeout=5).read().decode()
    values = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = value
    assert values['consentgate_records_total{decision="kept"}'] == "2", body
    assert values['consentgate_records_total{decision="dropped"}'] == "3", body
    assert values['consentgate_inspected_requests_total{outcome="forwarded"}'] == "1", body
    assert values['consentgate_inspected_requests_total{outcome="all-dropped"}'] == "1", body
    assert values['consentgate_responses_total{code="4xx"}'] == "1", body
    assert values['consentgate_requests_total'] == "3", body
    assert values["consentgate_consent_people"] == "3", body
    h = urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=5)
    assert h.status == 200 and h.read().startswith(b"ok"), h


@test
def healthz_reports_stale_consent(env):
    up = env.upstream()
    port = free_port()
    # the CSV's snapshot is "created" at load; a 1 s limit makes it stale soon
    px = env.proxy(up.url, consent=CONSENT, config={"max_staleness_s": 1},
                   extra=["--admin", "127.0.0.1:%d" % port])

    def stale():
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=5)
            return False
        except urllib.error.HTTPError as e:
            return e.code == 503
    assert wait_until(stale, 5), "healthz never turned 503"
    c = env.client(px)
    r = ingest(c, BATCH)
    assert r.status == 503, r
    assert up.count() == 0, "a stale snapshot let a request through"


if __name__ == "__main__":
    main()
