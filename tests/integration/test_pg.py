"""test_pg.py: live consent from PostgreSQL (--consent postgresql://...).

The suite starts its own PostgreSQL (initdb into a temporary directory,
127.0.0.1 on a free port, its socket in that directory, as an unprivileged
user: `nobody` when run as root, since postgres refuses root) and gives
every test a database of its own with policy/sql/consent.sql applied.
It checks: the initial load; a withdrawal and a grant enforced on the next
record within 1 s of the INSERT; the database stopped and back (503 with
Retry-After and /readyz 503 while stale, then recovery); a change made
while consentgate could not connect applied after it reconnects; bad rows
refused by seq (fail closed), at start and live; a restart from a seed.

Without PostgreSQL's binaries it says so and skips, except under CI
(CI=1), where .ci/deps.sh installs them and their absence is a failure.
"""

import glob
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from harness import (ROOT, check_problem, free_port, main, request, test,
                     test_policy, wait_until)

SCHEMA = os.path.join(ROOT, "policy", "sql", "consent.sql")
NDJSON = "application/x-ndjson"
ENFORCE_S = 1.0   # a change must decide the next record within this
STALE_S = 2       # max_staleness_s of the staleness tests


def pg_bindir():
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                  key=lambda p: int(p.split("/")[4]))
    return os.path.dirname(dirs[-1]) if dirs else None


class Postgres:
    """One PostgreSQL cluster for the suite, a database per test."""

    def __init__(self, bindir):
        self.bin = bindir
        self.dir = tempfile.mkdtemp(prefix="cg-pg-")
        self.user = None
        if os.geteuid() == 0:
            self.user = "nobody"
            os.chown(self.dir, pwd.getpwnam("nobody").pw_uid, -1)
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self._run([os.path.join(self.bin, "initdb"), "-D", self.data,
                   "-A", "trust", "-U", "postgres", "--no-sync"])
        self.start()
        self.ndb = 0

    def _run(self, argv, check=True):
        if self.user:
            argv = ["runuser", "-u", self.user, "--"] + argv
        return subprocess.run(argv, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, check=check,
                              timeout=60)

    def start(self):
        opts = ("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off "
                "-c synchronous_commit=off" % (self.port, self.dir))
        self._run([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-w",
                   "-t", "30", "-l", os.path.join(self.dir, "log"),
                   "-o", opts, "start"])

    def stop(self):
        self._run([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-w",
                   "-m", "fast", "stop"], check=False)

    def psql(self, db, sql):
        r = subprocess.run(
            [os.path.join(self.bin, "psql"), "-X", "-q", "-A", "-t",
             "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port),
             "-U", "postgres", "-d", db, "-c", sql],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30,
            # the SQL is UTF-8 whatever the database's encoding (a SET
            # inside the same -c would come too late: the string is
            # converted as a whole on arrival)
            env=dict(os.environ, PGCLIENTENCODING="UTF8"))
        if r.returncode != 0:
            raise AssertionError("psql %r: %s" % (sql[:80], r.stderr[-300:]))
        return r.stdout.decode().strip()

    def new_db(self, encoding=None):
        self.ndb += 1
        db = "t%d" % self.ndb
        self.psql("postgres", "CREATE DATABASE %s" % db + (
            " ENCODING '%s' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
            % encoding if encoding else ""))
        r = subprocess.run(
            [os.path.join(self.bin, "psql"), "-X", "-q", "-v",
             "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port),
             "-U", "postgres", "-d", db, "-f", SCHEMA],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        assert r.returncode == 0, r.stderr
        # consentgate logs in as a role of its own (the disconnect test
        # locks it out), reading only
        if self.ndb == 1:
            self.psql("postgres", "CREATE ROLE cg LOGIN")
        self.psql(db, "GRANT SELECT ON consent TO cg")
        return db

    def url(self, db):
        return "postgresql://cg@127.0.0.1:%d/%s" % (self.port, db)

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


PG = None


def insert(db, rows):
    """rows: (subject, purpose, status, jurisdiction, updated_at, evidence);
    the seq of the last one."""
    vals = ",".join("('%s','%s','%s','%s','%s','%s')" % r for r in rows)
    return int(PG.psql(db, "INSERT INTO consent (subject, purpose, status, "
                       "jurisdiction, updated_at, evidence) VALUES %s "
                       "RETURNING seq" % vals).splitlines()[-1])


def policy():
    p = test_policy()
    p["ignored_purposes"] = ["analytics"]
    return p


def start(env, db, up, config=None, extra=(), policy_doc=None):
    cfg = {"max_staleness_s": STALE_S}
    cfg.update(config or {})
    return env.proxy(up.url, policy=policy_doc or policy(), config=cfg,
                     extra=["--consent", PG.url(db), "--admin",
                            "127.0.0.1:0"] + list(extra))


def admin_port(px):
    for line in px.stderr:
        m = re.search(rb"admin on .* \(port (\d+)\)", line)
        if m:
            return int(m.group(1))
    raise AssertionError("no admin line: %r" % px.stderr[-5:])


def get(px, path):
    """(status, body) of GET path on the admin listener."""
    url = "http://127.0.0.1:%d%s" % (admin_port(px), path)
    try:
        r = urllib.request.urlopen(url, timeout=5)
        return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metric(px, name):
    for line in get(px, "/metrics")[1].splitlines():
        if line.startswith(name + " "):
            return line.split(" ", 1)[1]
    return None


def ingest(c, *subjects):
    body = b"".join(b'{"author_id":"%s","t":"x"}\n' % s.encode()
                    for s in subjects)
    c.send(request("POST", "/ingest", [("Content-Type", NDJSON)], body))
    return c.read_response()


def kept(resp):
    m = re.match(r"kept=(\d+)", resp.get("Consent-Result") or "")
    return int(m.group(1)) if m else None


def logged(px, pattern):
    return re.search(pattern, b"".join(px.stderr))


def until_kept(env, px, subject, want, timeout):
    """Send subject's record until it is kept (want 1) or dropped (0)."""
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < timeout:
        # a new connection each time: a 503 closes the connection
        last = ingest(env.client(px), subject)
        if last.status in (200, 204) and kept(last) == want:
            return time.monotonic() - t0
        time.sleep(0.01)
    raise AssertionError("%s: kept=%s for %.1f s after the change (want %d)"
                         ": %r" % (subject, kept(last) if last else None,
                                   timeout, want, last))


NOW = "2025-06-01T12:00:00Z"
LATER = "2025-06-02T12:00:00Z"


@test
def initial_load_decides_as_the_history_says(env):
    db = PG.new_db()
    last = insert(db, [
        ("1001", "ai-training", "granted", "DE", NOW, "ev-1"),
        ("1002", "ai-training", "granted", "FR", NOW, "ev-2"),
        ("1002", "ai-training", "withdrawn", "FR", LATER, "ev-3"),
        # an older row inserted later does not decide
        ("1003", "ai-training", "granted", "DE", LATER, "ev-4"),
        ("1003", "ai-training", "denied", "DE", NOW, "ev-5"),
        ("1004", "analytics", "granted", "US", NOW, "ev-6"),
    ])
    up = env.upstream()
    px = start(env, db, up)
    c = env.client(px)
    r = ingest(c, "1001", "1002", "1003", "1004", "9999")
    assert r.status == 200 and r.get("Consent-Result") == \
        "kept=3, dropped=2", r
    got = [json.loads(x)["author_id"]
           for x in up.requests()[-1].body.splitlines()]
    assert got == ["1001", "1003", "1004"], got
    snap = up.requests()[-1].get("Consent-Snapshot")
    assert snap.startswith("version=%d, age=" % last), snap
    assert metric(px, "consentgate_consent_version") == str(last)
    assert metric(px, "consentgate_consent_people") == "4"
    assert get(px, "/readyz")[0] == 200
    assert logged(px, rb"consent: loaded 6 rows \(4 people, 4 kept, seq "
                  rb"%d\)" % last), px.stderr[-5:]


@test
def ids_reach_us_as_utf8_from_a_latin1_database(env):
    # PostgreSQL sends text in the client encoding; left to default, a
    # LATIN1 database's "jürgen" arrives as bytes no record holds. The
    # initial COPY and the live catch-up both decide by the UTF-8 id.
    db = PG.new_db("LATIN1")
    insert(db, [("jürgen", "ai-training", "granted", "DE", NOW, "g-j"),
                ("müller", "ai-training", "granted", "DE", NOW, "g-m")])
    up = env.upstream()
    px = start(env, db, up)
    r = ingest(env.client(px), "jürgen", "müller", "jurgen")
    assert r.status == 200 and r.get("Consent-Result") == \
        "kept=2, dropped=1", (r, px.stderr[-8:])
    got = [json.loads(x)["author_id"]
           for x in up.requests()[-1].body.splitlines()]
    assert got == ["jürgen", "müller"], got
    insert(db, [("müller", "ai-training", "withdrawn", "DE", LATER, "w-m")])
    until_kept(env, px, "müller", 0, 5)
    assert kept(ingest(env.client(px), "jürgen")) == 1
    px.stop()
    # a URL asking for another client encoding cannot take it back
    px = env.proxy(up.url, policy=policy(),
                   config={"max_staleness_s": STALE_S},
                   extra=["--consent", PG.url(db) + "?client_encoding=LATIN1",
                          "--admin", "127.0.0.1:0"])
    r = ingest(env.client(px), "müller", "jürgen")
    assert r.get("Consent-Result") == "kept=1, dropped=1", r


@test
def large_initial_load_in_two_halves(env):
    # from 100,000 rows the load runs two COPYs (seq halves) on one
    # snapshot; a person's rows on both sides of the middle still decide
    # by updated_at, then seq
    db = PG.new_db()
    insert(db, [("8001", "ai-training", "granted", "DE", LATER, "late"),
                ("8002", "ai-training", "granted", "DE", NOW, "early")])
    PG.psql(db, "SET session_replication_role = replica; INSERT INTO consent "
            "(seq, subject, purpose, status, jurisdiction, updated_at, "
            "evidence) SELECT nextval(pg_get_serial_sequence('consent', "
            "'seq')), 'bulk-' || i, 'ai-training', 'granted', 'US', "
            "timestamptz '2025-01-01', 'b' FROM generate_series(1, 150000) i")
    last = insert(db, [
        # older than 8001's grant: does not decide
        ("8001", "ai-training", "withdrawn", "DE", NOW, "old"),
        # newer than 8002's grant: decides
        ("8002", "ai-training", "withdrawn", "DE", LATER, "new")])
    up = env.upstream()
    px = start(env, db, up)
    assert logged(px, rb"loaded 150004 rows \(150002 people"), \
        px.stderr[-5:]
    assert not logged(px, rb"one COPY instead of two"), px.stderr[-5:]
    r = ingest(env.client(px), "8001", "8002", "bulk-1", "bulk-75000",
               "bulk-150000")
    assert r.get("Consent-Result") == "kept=4, dropped=1", r
    assert metric(px, "consentgate_consent_version") == str(last)


@test
def withdrawal_and_grant_enforced_on_the_next_record(env):
    db = PG.new_db()
    insert(db, [("2001", "ai-training", "granted", "DE", NOW, "g-1"),
                ("2002", "ai-training", "denied", "DE", NOW, "d-1")])
    up = env.upstream()
    px = start(env, db, up)
    c = env.client(px)
    assert kept(ingest(c, "2001")) == 1 and ingest(c, "2002").status == 204
    seq = insert(db, [("2001", "ai-training", "withdrawn", "DE", LATER,
                       "w-1")])
    until_kept(env, px, "2001", 0, ENFORCE_S)
    insert(db, [("2002", "ai-training", "granted", "DE", LATER, "g-2")])
    until_kept(env, px, "2002", 1, ENFORCE_S)
    # a new person, and a purpose the table had not named yet
    insert(db, [("2003", "ai-training", "granted", "AT", LATER, "g-3"),
                ("2003", "analytics", "denied", "AT", LATER, "a-3")])
    until_kept(env, px, "2003", 1, ENFORCE_S)
    r = ingest(c, "2001", "2002", "2003")
    assert r.get("Consent-Result") == "kept=2, dropped=1", r
    assert int(metric(px, "consentgate_consent_version")) >= seq + 2
    assert metric(px, "consentgate_consent_people") == "3"


@test
def database_down_turns_stale_then_recovers(env):
    db = PG.new_db()
    insert(db, [("3001", "ai-training", "granted", "DE", NOW, "g")])
    up = env.upstream()
    px = start(env, db, up)
    c = env.client(px)
    assert kept(ingest(c, "3001")) == 1
    # its thread follows the database before the database goes
    assert wait_until(lambda: metric(
        px, "consentgate_consent_db_connected") == "1", 5), "never connected"
    PG.stop()
    try:
        def refused():
            r = ingest(env.client(px), "3001")
            return r.status == 503 and r
        assert wait_until(refused, STALE_S + 6, 0.2), \
            "never 503 with the database down"
        r = ingest(env.client(px), "3001")
        check_problem(r, 503)
        assert r.get("Retry-After") == "1", r
        assert get(px, "/readyz")[0] == 503
        assert metric(px, "consentgate_consent_db_connected") == "0"
        # pass routes do not depend on consent
        c2 = env.client(px)
        c2.send(request("GET", "/status"))
        assert c2.read_response().status != 503
    finally:
        PG.start()
    assert wait_until(lambda: kept(ingest(env.client(px), "3001")) == 1,
                      BACKOFF_BOUND, 0.2), "no recovery after the restart"
    assert get(px, "/readyz")[0] == 200
    assert logged(px, rb"consent: lost .*catching up from seq"), \
        [x for x in px.stderr if b"consent:" in x]


BACKOFF_BOUND = 20  # s: reconnect backoff (at most 8 s) plus a catch-up


@test
def change_while_disconnected_applied_after_reconnect(env):
    db = PG.new_db()
    insert(db, [("4001", "ai-training", "granted", "DE", NOW, "g")])
    up = env.upstream()
    # a long staleness limit: this test is about the catch-up
    px = start(env, db, up, config={"max_staleness_s": 120})
    c = env.client(px)
    assert kept(ingest(c, "4001")) == 1
    # lock consentgate's role out and cut its connection
    PG.psql("postgres", "ALTER ROLE cg NOLOGIN")
    try:
        PG.psql("postgres", "SELECT pg_terminate_backend(pid) FROM "
                "pg_stat_activity WHERE usename = 'cg'")
        assert wait_until(lambda: metric(
            px, "consentgate_consent_db_connected") == "0", 5), \
            "still connected"
        seq = insert(db, [("4001", "ai-training", "withdrawn", "DE", LATER,
                           "w")])
        time.sleep(1.5)  # its retries fail meanwhile
        assert kept(ingest(c, "4001")) == 1, "applied without a connection?"
    finally:
        PG.psql("postgres", "ALTER ROLE cg LOGIN")
    until_kept(env, px, "4001", 0, BACKOFF_BOUND)
    assert metric(px, "consentgate_consent_version") == str(seq)
    assert int(metric(px, "consentgate_consent_db_reconnects_total")) >= 1


@test
def bad_rows_refused_by_seq_and_fail_closed(env):
    # at start: a status the CSV import refuses (the schema's check is
    # dropped, as an older table might lack it): consentgate does not start
    db = PG.new_db()
    PG.psql(db, "ALTER TABLE consent DROP CONSTRAINT consent_status_check")
    insert(db, [("5001", "ai-training", "granted", "DE", NOW, "g")])
    bad = insert(db, [("5002", "ai-training", "revoked", "DE", NOW, "x")])
    up = env.upstream()
    try:
        start(env, db, up)
        raise AssertionError("started on a table with a bad row")
    except AssertionError as e:
        assert ("consent row seq %d" % bad) in str(e) and \
            "status must be granted, denied or withdrawn" in str(e), e
    # at start: a purpose the policy neither declares nor ignores
    db = PG.new_db()
    insert(db, [("5003", "ai-training", "granted", "DE", NOW, "g")])
    typo0 = insert(db, [("5003", "ai_training", "withdrawn", "DE", LATER,
                         "t")])
    try:
        start(env, db, up)
        raise AssertionError("started on a table with an unknown purpose")
    except AssertionError as e:
        assert ("consent row seq %d (purpose" % typo0) in str(e) and \
            "ai_training" in str(e) and "neither declared" in str(e), e
    # live: a purpose the policy does not know stops the table before it
    db = PG.new_db()
    insert(db, [("5101", "ai-training", "granted", "DE", NOW, "g")])
    px = start(env, db, up)
    c = env.client(px)
    assert kept(ingest(c, "5101")) == 1
    typo = insert(db, [("5101", "ai_training", "withdrawn", "DE", LATER,
                        "typo")])
    after = insert(db, [("5101", "ai-training", "withdrawn", "DE", LATER,
                         "w")])
    assert wait_until(lambda: logged(
        px, rb"row seq %d refused \(purpose 'ai_training'\)" % typo), 5), \
        px.stderr[-5:]
    assert metric(px, "consentgate_consent_refused_seq") == str(typo)
    assert metric(px, "consentgate_consent_version") == str(typo - 1)
    # nothing after it is applied, and it fails closed once stale
    assert wait_until(lambda: ingest(env.client(px), "5101").status == 503,
                      STALE_S + 4, 0.2), "a table stuck on a bad row served"
    assert get(px, "/readyz")[0] == 503
    # the policy learns the purpose (ignored): the row passes, and the
    # withdrawal after it is enforced
    doc = policy()
    doc["ignored_purposes"].append("ai_training")
    with open(px.policy_path, "w") as f:
        json.dump(doc, f)
    px.signal(signal.SIGHUP)
    until_kept(env, px, "5101", 0, 10)
    assert metric(px, "consentgate_consent_version") == str(after)
    assert metric(px, "consentgate_consent_refused_seq") == "0"
    assert logged(px, rb"row seq %d accepted now" % typo)


@test
def restart_from_seed_serves_at_once_and_catches_up(env):
    db = PG.new_db()
    insert(db, [("6001", "ai-training", "granted", "DE", NOW, "g"),
                ("6002", "ai-training", "granted", "DE", NOW, "g")])
    up = env.upstream()
    seed = os.path.join(env.workdir, "seed.snap")
    cfg = {"max_staleness_s": 120}
    px = start(env, db, up, config=cfg, extra=["--consent-seed", seed])
    assert wait_until(lambda: os.path.exists(seed), 10), "no seed written"
    first = insert(db, [("6001", "ai-training", "withdrawn", "DE", LATER,
                         "w")])
    until_kept(env, px, "6001", 0, ENFORCE_S)
    px.stop()
    PG.stop()
    try:
        # the database is down: the seed alone lets it start and serve
        px = start(env, db, up, config=cfg, extra=["--consent-seed", seed])
        assert logged(px, rb"serving the seed"), px.stderr[-5:]
        c = env.client(px)
        r = ingest(c, "6002")
        assert r.status == 200 and kept(r) == 1, r
        assert int(metric(px, "consentgate_consent_version")) < first
    finally:
        PG.start()
    # the withdrawal after the seed, and one made now, are caught up
    insert(db, [("6002", "ai-training", "withdrawn", "DE", LATER, "w2")])
    until_kept(env, px, "6002", 0, BACKOFF_BOUND)
    until_kept(env, px, "6001", 0, 1)


@test
def seed_of_another_history_is_never_confirmed(env):
    # a seed at seq 3, then a database whose history ends at seq 1 (a
    # restored or recreated one): consentgate serves the seed but never
    # calls it current, so it fails closed once stale
    db = PG.new_db()
    insert(db, [("7001", "ai-training", "granted", "DE", NOW, "g"),
                ("7002", "ai-training", "granted", "DE", NOW, "g"),
                ("7003", "ai-training", "granted", "DE", NOW, "g")])
    up = env.upstream()
    seed = os.path.join(env.workdir, "seed.snap")
    px = start(env, db, up, extra=["--consent-seed", seed])
    assert wait_until(lambda: logged(px, rb"seed .* written at seq 3"), 10), \
        px.stderr[-5:]
    px.stop()
    other = PG.new_db()
    insert(other, [("7001", "ai-training", "withdrawn", "DE", NOW, "w")])
    px = start(env, other, up, extra=["--consent-seed", seed])
    assert wait_until(lambda: logged(px, rb"ends at seq 1, before seq 3 .*"
                                     rb"not the same history"), 5), \
        px.stderr[-5:]
    assert wait_until(lambda: ingest(env.client(px), "7002").status == 503,
                      STALE_S + 4, 0.2), "another history confirmed current"
    assert get(px, "/readyz")[0] == 503


if __name__ == "__main__":
    bindir = pg_bindir()
    if bindir is None:
        if os.environ.get("CI"):
            print("FAIL test_pg: PostgreSQL binaries not found under "
                  "/usr/lib/postgresql (.ci/deps.sh installs them)")
            sys.exit(1)
        print("skipped test_pg: PostgreSQL is not installed (apt-get install "
              "postgresql; CI installs it)")
        sys.exit(0)
    PG = Postgres(bindir)
    try:
        main()
    finally:
        PG.close()
