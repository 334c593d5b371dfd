"""test_metrics.py: /metrics as a Prometheus server reads it. A strict
parser of the text format (every sample `name{labels} value`, every family
with HELP and TYPE before its samples and in one group, histograms
cumulative and monotone with +Inf equal to _count), then known traffic and
the exact counter deltas it must give: requests by route and status code,
records by the rule that decided them, the latency histograms (which read
the same clocks as the access log), and a reload that removes a route.
"""

import json
import math
import os
import re
import urllib.request

from harness import admin_port, main, request, test, test_policy, wait_until

CONSENT = ("subject,purpose,status,jurisdiction,updated_at,evidence\n"
           "u1,ai-training,granted,US,2025-03-01T12:00:00Z,ev-1\n"
           "u2,ai-training,denied,US,2025-03-01T12:00:00Z,ev-2\n")
NDJSON = (("Content-Type", "application/x-ndjson"),)
ARRAY = (("Content-Type", "application/json"),)

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"'
SAMPLE = re.compile(r"^(%s)(?:\{((?:%s)(?:,(?:%s))*)?\})? (\S+)$"
                    % (NAME, LABEL, LABEL))
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def parse(text):
    """{(name, frozenset(labels)): value} of an exposition, after checking
    it strictly; AssertionError names the first line that breaks a rule."""
    helps, types, samples = {}, {}, {}
    done, current = set(), None
    hist = {}  # (family, labels without le) -> {"buckets": [...], ...}
    assert text.endswith("\n"), "the exposition ends without a newline"
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = "line %d %r" % (n, line)
        if line.startswith("#"):
            m = re.match(r"^# (HELP|TYPE) (%s) (.+)$" % NAME, line)
            assert m, where
            kind, name, rest = m.groups()
            book = helps if kind == "HELP" else types
            assert name not in book, "second %s: %s" % (kind, where)
            assert name not in done, "%s after its samples: %s" % (kind,
                                                                   where)
            if kind == "TYPE":
                assert rest in TYPES, where
            book[name] = rest
            continue
        assert line, "an empty line: " + where
        m = SAMPLE.match(line)
        assert m, "not a sample: " + where
        name, value = m.group(1), m.group(m.lastindex)
        labels = tuple(re.findall(LABEL, m.group(2) or ""))
        assert len(set(k for k, _ in labels)) == len(labels), where
        v = float(value)  # ValueError: not a number
        family = name
        for suffix in ("_bucket", "_sum", "_count"):
            base = name[:-len(suffix)]
            if name.endswith(suffix) and types.get(base) == "histogram":
                family = base
        assert family in types and family in helps, \
            "no HELP and TYPE before: " + where
        if family != current:
            assert family not in done, "%s in two groups: %s" % (family,
                                                                 where)
            if current:
                done.add(current)
            current = family
        key = (name, frozenset(labels))
        assert key not in samples, "a second sample: " + where
        samples[key] = v
        if types[family] == "counter":
            assert v >= 0 and not math.isnan(v), where
        if types[family] == "histogram":
            rest = frozenset(l for l in labels if l[0] != "le")
            h = hist.setdefault((family, rest), {"buckets": []})
            if name.endswith("_bucket"):
                le = dict(labels).get("le")
                assert le is not None, "a bucket without le: " + where
                h["buckets"].append((float(le), v))
            else:
                h[name[len(family) + 1:]] = v
    for (family, _), h in hist.items():
        b = h["buckets"]
        assert b and b[-1][0] == math.inf, "%s: no +Inf bucket" % family
        assert all(b[i][0] < b[i + 1][0] for i in range(len(b) - 1)), \
            "%s: bucket bounds not ascending" % family
        assert all(b[i][1] <= b[i + 1][1] for i in range(len(b) - 1)), \
            "%s: buckets not cumulative" % family
        assert "count" in h and "sum" in h, "%s: no _sum or _count" % family
        assert b[-1][1] == h["count"], "%s: +Inf %s != _count %s" % (
            family, b[-1][1], h["count"])
    return samples


def scrape(port):
    r = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                               timeout=10)
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(r.read().decode())


def get(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0)


def delta(before, after, name, **labels):
    return get(after, name, **labels) - get(before, name, **labels)


def family_sum(samples, name, **match):
    """The sum of name's samples whose labels include match."""
    return sum(v for (n, ls), v in samples.items() if n == name and
               set(match.items()) <= ls)


def send(px, method, path, body=b"", headers=()):
    c = px.connect()
    c.send(request(method, path, list(headers), body))
    r = c.read_response()
    c.close()
    return r


def metrics_policy():
    """The test policy, and a pass route under /ingest whose other methods
    the inspected route refuses with 405."""
    pol = test_policy()
    pol["routes"].append({"method": "*", "path_prefix": "/ingest",
                          "action": "pass"})
    return pol


def start(env, extra=()):
    up = env.upstream()
    px = env.proxy(up.url, policy=metrics_policy(), consent=CONSENT,
                   extra=["--admin", "127.0.0.1:0"] + list(extra))
    return up, px, admin_port(px)


def reload_policy(px, port, pol):
    """Write pol over the proxy's rule file atomically and POST /reload."""
    tmp = px.policy_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(pol, f)
    os.rename(tmp, px.policy_path)
    req = urllib.request.Request("http://127.0.0.1:%d/reload" % port,
                                 method="POST", data=b"")
    assert urllib.request.urlopen(req, timeout=10).status == 200


def known_traffic(px):
    """3 inspected POSTs, one route miss, one wrong method: statuses."""
    return [
        # kept u1 (default-allow), dropped nobody (unknown-person)
        send(px, "POST", "/ingest",
             b'{"author_id":"u1"}\n{"author_id":"nobody"}\n', NDJSON).status,
        # a whole body: kept u1 twice, dropped u2 (opted-out)
        send(px, "POST", "/ingest",
             b'[{"author_id":"u1"},{"author_id":"u2"},{"author_id":"u1"}]',
             ARRAY).status,
        # every record dropped: 204, nothing upstream
        send(px, "POST", "/ingest", b'{"author_id":"u2"}\n', NDJSON).status,
        send(px, "GET", "/nowhere").status,
        send(px, "PUT", "/ingest").status,
    ]


@test
def metrics_parse_as_prometheus_text(env):
    """Before any traffic and after it, the whole exposition parses."""
    up, px, port = start(env)
    s = scrape(port)
    for h in ("decision", "upstream", "request"):
        assert get(s, "consentgate_%s_duration_seconds_count" % h) == 0, h
    known_traffic(px)
    scrape(port)


@test
def parser_refuses_what_prometheus_would(env):
    """The parser the other tests rely on is strict."""
    good = ("# HELP a_total A\n# TYPE a_total counter\na_total 1\n"
            "# HELP h H\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\n"
            "h_bucket{le=\"+Inf\"} 2\nh_sum 0.5\nh_count 2\n")
    parse(good)
    bad = [
        good.replace("# HELP a_total A\n", ""),          # no HELP
        good.replace("a_total 1\n", "a_total{x=1} 1\n"),  # unquoted label
        good.replace("h_count 2", "h_count 3"),           # +Inf != count
        good.replace("h_bucket{le=\"1\"} 1", "h_bucket{le=\"1\"} 3"),
        good + "a_total 2\n",                             # two groups
        good.replace("\n", "\n\n", 1),                    # empty line
    ]
    for text in bad:
        try:
            parse(text)
        except (AssertionError, ValueError):
            continue
        raise AssertionError("accepted %r" % text)


@test
def known_traffic_moves_exact_counters(env):
    up, px, port = start(env)
    before = scrape(port)
    statuses = known_traffic(px)
    assert statuses == [200, 200, 204, 404, 405], statuses
    # a request is counted as it ends, a moment after its last byte
    assert wait_until(lambda: delta(before, scrape(port),
                                    "consentgate_request_duration_seconds"
                                    "_count") == 5, 5)
    after = scrape(port)
    req = "consentgate_http_requests_total"
    assert delta(before, after, req, route="ingest", code="200") == 2
    assert delta(before, after, req, route="ingest", code="204") == 1
    assert delta(before, after, req, route="", code="404") == 1
    assert delta(before, after, req, route="", code="405") == 1
    assert family_sum(after, req) - family_sum(before, req) == 5
    rule = "consentgate_records_by_rule_total"
    want = {("default-allow", "kept"): 3, ("unknown-person", "dropped"): 1,
            ("opted-out", "dropped"): 2}
    for (r, d), n in want.items():
        got = delta(before, after, rule, route="ingest", rule=r, decision=d)
        assert got == n, (r, d, got)
    for d in ("kept", "dropped"):
        # every record is counted under one rule
        assert (family_sum(after, rule, decision=d) -
                family_sum(before, rule, decision=d) ==
                delta(before, after, "consentgate_records_total",
                      decision=d)), d
    assert delta(before, after, rule, route="ingest", rule="default-allow",
                 decision="dropped") == 0
    hist = "consentgate_%s_duration_seconds_count"
    assert delta(before, after, hist % "decision") == 3
    assert delta(before, after, hist % "upstream") == 2  # 204: none sent
    assert delta(before, after, hist % "request") == 5
    # the old class counters are unchanged in form
    assert delta(before, after, "consentgate_responses_total",
                 code="4xx") == 2


@test
def rule_series_exist_at_zero_before_traffic(env):
    """Every (route, rule) pair a decision can name is exposed at 0 from
    the start and after a reload, so that rate() sees the first records;
    rules a rule without conditions shadows, and "(no rule)" after it, are
    not."""
    up, px, port = start(env)
    name = "consentgate_records_by_rule_total"
    rules = ["unknown-person", "strict-granted", "strict-otherwise",
             "opted-out", "default-allow"]

    def pairs(s):
        return {(dict(ls)["route"], dict(ls)["rule"], dict(ls)["decision"]):
                v for (n, ls), v in s.items() if n == name}
    got = pairs(scrape(port))
    for route in ("ingest", "batch", "profile", "ingest-cu"):
        for r in rules:
            for d in ("kept", "dropped"):
                assert got.get((route, r, d)) == 0, (route, r, d, got)
    assert not any(r == "(no rule)" for _, r, _ in got), got
    assert not any(route == "" or route.startswith("GET") for route, _, _
                   in got), got
    # a reload: a new rule before the catch-all appears at once; one after
    # it (never matched) does not (a policy always ends in a catch-all
    # for each purpose, so "(no rule)" never shows)
    pol = metrics_policy()
    pol["rules"].insert(0, {"id": "late-rule", "if": {"known": True},
                            "then": "deny"})
    pol["rules"].append({"id": "after-default", "if": {"known": True},
                         "then": "deny"})
    reload_policy(px, port, pol)
    got = pairs(scrape(port))
    assert got.get(("ingest", "late-rule", "kept")) == 0, got
    assert not any(r == "after-default" for _, r, _ in got), got
    # the first records move them from 0, and the sum stays exact
    assert send(px, "POST", "/ingest", b'{"author_id":"u1"}\n',
                NDJSON).status == 204
    assert wait_until(lambda: pairs(scrape(port)).get(
        ("ingest", "late-rule", "dropped")) == 1, 5)


@test
def histograms_read_the_access_log_clocks(env):
    """The upstream and total histograms observe the very readings the
    access log prints (it truncates to microseconds)."""
    acc = os.path.join(env.workdir, "access.jsonl")
    up, px, port = start(env, ["--access-log", acc])
    before = scrape(port)
    known_traffic(px)
    send(px, "POST", "/slow-ingest", b'{"author_id":"u1"}\n', NDJSON)

    def lines():
        try:
            return [json.loads(l) for l in open(acc)]
        except (OSError, ValueError):
            return []
    assert wait_until(lambda: len(lines()) == 6, 5), lines()
    after = scrape(port)
    for h, field in (("upstream", "upstream_ms"), ("request", "total_ms")):
        ms = [l[field] for l in lines() if l[field] is not None]
        name = "consentgate_%s_duration_seconds" % h
        got = delta(before, after, name + "_sum")
        assert delta(before, after, name + "_count") == len(ms), h
        log = sum(ms) / 1000
        assert 0 <= got - log < len(ms) * 1e-6 + 1e-9, (h, got, log)


@test
def reload_that_removes_a_route_keeps_counting(env):
    """Counters are kept by route name: a reload that removes a route
    leaves its series as they were, and the exposition stays valid."""
    up, px, port = start(env)
    assert send(px, "POST", "/batch", b'{"data":[{"author_id":"u1"}]}',
                ARRAY).status == 200
    assert wait_until(lambda: get(scrape(port),
                                  "consentgate_http_requests_total",
                                  route="batch", code="200") == 1, 5)
    pol = metrics_policy()
    pol["routes"] = [r for r in pol["routes"] if r.get("name") != "batch"]
    for r in pol["routes"]:
        if r.get("name") == "ingest":
            r["name"] = "ingest-v2"
    reload_policy(px, port, pol)
    assert send(px, "POST", "/batch", b'{"data":[]}', ARRAY).status == 404
    assert send(px, "POST", "/ingest", b'{"author_id":"u1"}\n',
                NDJSON).status == 200
    assert wait_until(lambda: get(scrape(port),
                                  "consentgate_http_requests_total",
                                  route="ingest-v2", code="200") == 1, 5)
    s = scrape(port)
    req = "consentgate_http_requests_total"
    assert get(s, req, route="batch", code="200") == 1
    assert get(s, req, route="", code="404") == 1
    assert get(s, "consentgate_records_by_rule_total", route="batch",
               rule="default-allow", decision="kept") == 1
    assert get(s, "consentgate_records_by_rule_total", route="ingest-v2",
               rule="default-allow", decision="kept") == 1
    assert px.proc.poll() is None


@test
def tls_families_parse_in_groups(env):
    """With TLS on, each TLS family's samples come in one group."""
    import tempfile
    from tlsfiles import Certs
    c = Certs(tempfile.mkdtemp(prefix="cg-metrics-certs-", dir=env.workdir))
    up, px, port = start(env, ["--tls-cert", c.server[0],
                               "--tls-key", c.server[1]])
    cl = px.connect()
    cl.send(request("GET", "/echo/x"))  # plain HTTP on the TLS port
    assert cl.read_response().status == 400
    cl.close()
    assert wait_until(lambda: get(scrape(port),
                                  "consentgate_tls_handshake_failures_total",
                                  side="client", reason="plain_http") == 1, 5)
    assert get(scrape(port), "consentgate_tls_handshakes_total",
               side="client") == 0


if __name__ == "__main__":
    main()
