#!/usr/bin/env python3
"""gen.py: deterministic data for the benchmark (stdlib only).

Writes into OUTDIR:
  consent.csv      PEOPLE people, ids 1..PEOPLE: 95% granted (mostly EEA,
                   some GB/CH/US), 5% denied or withdrawn.
  ndjson-64k.ndjson, ndjson-1m.ndjson   tweet-like records (~512 B each,
                   integer author_id), 5% written by people who did not consent.
  ndjson-64k.ndjson.gz                  the 64 KiB batch, gzip-encoded.
  profile.json     one record, its subject goes in X-Subject-Id.
  meta.tsv         name, body bytes, records, expected kept/dropped, subject.
The same seed gives the same bytes, so runs compare like with like.
"""
import gzip
import os
import random
import sys

EEA = ["AT", "BE", "DE", "DK", "ES", "FI", "FR", "IE", "IT", "NL", "PL",
       "PT", "SE", "NO"]
WORDS = ("the model data consent training people post reply image city "
         "weather coffee music game team news open source code review "
         "today tomorrow great small quick brown fox lazy dog").split()


def status_of(i, people):
    # Every 20th person has not consented: half denied, half withdrawn.
    if i % 20 == 7:
        return "denied" if (i // 20) % 2 == 0 else "withdrawn"
    return "granted"


def jurisdiction_of(i):
    r = (i * 2654435761) % 100
    if r < 70:
        return EEA[i % len(EEA)]
    if r < 80:
        return "GB"
    if r < 85:
        return "CH"
    return "US"


def write_csv(path, people):
    with open(path, "w", newline="") as f:
        f.write("subject,purpose,status,jurisdiction,updated_at,evidence\n")
        buf = []
        for i in range(1, people + 1):
            day = 1 + i % 28
            buf.append("%d,ai-training,%s,%s,2025-%02d-%02dT12:00:00Z,ev-%d\n"
                       % (i, status_of(i, people), jurisdiction_of(i),
                          1 + i % 12, day, i))
            if len(buf) >= 10000:
                f.write("".join(buf))
                buf = []
        f.write("".join(buf))


def pick_author(rng, people, consenting):
    while True:
        a = rng.randint(1, people)
        if (status_of(a, people) == "granted") == consenting:
            return a


def record(rng, n, author):
    text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(30, 40)))
    mentions = ",".join('{"id":%d,"name":"user%d"}' % (m, m)
                        for m in (rng.randint(1, 10**6) for _ in range(2)))
    rec = ('{"id":"%d","author_id":%d,"created_at":"2025-06-%02dT%02d:%02d:'
           '%02dZ","lang":"en","text":"%s","mentions":[%s],"public_metrics"'
           ':{"retweet_count":%d,"reply_count":%d,"like_count":%d}}'
           % (10**17 + n, author, 1 + n % 28, n % 24, n % 60, (n * 7) % 60,
              text, mentions, rng.randint(0, 999), rng.randint(0, 99),
              rng.randint(0, 9999)))
    # Pad to ~512 B so records/s figures compare with the design notes.
    if len(rec) < 500:
        rec = rec[:-1] + ',"source":"%s"}' % ("x" * (500 - len(rec)))
    return rec


def ndjson(rng, people, target):
    lines, size, n, dropped = [], 0, 0, 0
    while size < target:
        bad = n % 20 == 10  # exactly 5% of records, spread evenly
        line = record(rng, n, pick_author(rng, people, not bad))
        if size + len(line) + 1 > target and lines:
            break
        lines.append(line)
        size += len(line) + 1
        dropped += bad
        n += 1
    return ("\n".join(lines) + "\n").encode(), n, dropped


def main():
    outdir = sys.argv[1]
    people = int(sys.argv[2]) if len(sys.argv) > 2 else 1000000
    os.makedirs(outdir, exist_ok=True)
    rng = random.Random(20251129)
    write_csv(os.path.join(outdir, "consent.csv"), people)
    meta = []
    for name, target in (("ndjson-64k", 64 * 1024), ("ndjson-1m", 1 << 20)):
        body, n, dropped = ndjson(rng, people, target)
        with open(os.path.join(outdir, name + ".ndjson"), "wb") as f:
            f.write(body)
        meta.append((name, len(body), n, n - dropped, dropped, "-"))
        if name == "ndjson-64k":
            gz = gzip.compress(body, 6, mtime=0)
            with open(os.path.join(outdir, name + ".ndjson.gz"), "wb") as f:
                f.write(gz)
            meta.append(("gzip-64k", len(gz), n, n - dropped, dropped, "-"))
    author = pick_author(rng, people, True)
    prof = record(rng, 1, author).encode()
    with open(os.path.join(outdir, "profile.json"), "wb") as f:
        f.write(prof)
    meta.append(("profile", len(prof), 1, 1, 0, str(author)))
    with open(os.path.join(outdir, "meta.tsv"), "w") as f:
        f.write("name\tbytes\trecords\tkept\tdropped\tsubject\n")
        for m in meta:
            f.write("\t".join(str(x) for x in m) + "\n")


if __name__ == "__main__":
    main()
