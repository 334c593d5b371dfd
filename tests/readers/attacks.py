"""attacks.py: generators of attacks, one per class, plus mutation fuzzing of
records, keys, ids and framing. Deterministic for a given seed.

An attack is a request to one proxy variant; it carries the client's
records (the bytes of each, as sent) so the judge can check what the
upstream got byte for byte.
"""

import gzip
import json
import random

# Ids that the extended consent table (see suite.py) gives to two people:
# the first is allowed as written, the second is what a double rounds to.
BIG_IDS = [("9007199254740993", "9007199254740992"),
           ("9007199254740995", "9007199254740996"),
           ("1234567890123456789", "1234567890123456800"),
           ("18446744073709551617", "18446744073709552000")]
HUGE_IDS = ["123456789012345678901234567890", "99999999999999999999",
            "-9223372036854775809", "9223372036854775808"]
LINE_ENDS = ["\r", "\u2028", "\u2029", "\u0085", "\x0b", "\x0c", "\x1c",
             "\x1d", "\x1e", "\r\n", "\n\r", "\r\r"]
NDJSON_TYPES = ["application/x-ndjson", "application/ndjson",
                "application/jsonl"]
WORDS = ["hello", "world", "post", "training", "data", "ünïcödé", "日本語",
         "emoji \U0001f600", "a\\\"q\\\"", "tab\\t", "x" * 40, "line\\nbreak"]

# Keys that some reader folds onto "author_id" (or "mentions"/"id").
DECOY_AUTHOR = [
    "author_\u0131d",            # dotless i: equalsIgnoreCase, Turkish locale
    "author_\u0130d",            # dotted capital I
    "AUTHOR_ID", "Author_Id", "author_ID", "aUthor_id",
    "\uff41\uff55\uff54\uff48\uff4f\uff52\uff3f\uff49\uff44",  # fullwidth
    "\U0001d5ba\U0001d5ce\U0001d5cd\U0001d5c1\U0001d5c8\U0001d5cb_\U0001d5c2\U0001d5bd",  # math sans
    "\u1d43uthor_id",            # modifier small a (NFKC: a)
    "author_i\u1d48",            # modifier small d
    "\u24d0uthor_id",            # circled a
    "author\uff3fid",            # fullwidth low line
    "author_\u0131\u0307d",
    "AUTHOR_\u0130D",
    "author_id\u200b",           # zero width space
    "\ufeffauthor_id",
]
ESCAPED_AUTHOR = ["author\\u005fid", "\\u0061uthor_id", "author_i\\u0064",
                  "\\u0061\\u0075\\u0074\\u0068\\u006f\\u0072\\u005f\\u0069\\u0064",
                  "AUTHOR\\u005fID", "author_\\u0131d", "author_\\u0130d"]
DECOY_MENTIONS = ["mention\u017f", "MENTIONS", "Mentions", "mentıons",
                  "MENTİONS", "\uff4d\uff45\uff4e\uff54\uff49\uff4f\uff4e\uff53"]
DECOY_ID = ["ID", "Id", "\u0131d", "\u0130D", "\uff49\uff44", "i\u1d48", "\\u0069d"]


def jstr(s):
    """A JSON string literal with raw non-ASCII (as clients send it)."""
    return json.dumps(s, ensure_ascii=False)


class Attack:
    __slots__ = ("cls", "aid", "variant", "method", "target", "headers",
                 "body", "records", "fmt", "chunks", "pieces", "note",
                 "clean", "inspected", "expect_refusal", "extra")

    def __init__(self, cls, variant, body, records, fmt, note,
                 content_type="application/x-ndjson", method="POST",
                 target="/ingest", headers=None, clean=None):
        self.cls = cls
        self.aid = None
        self.variant = variant
        self.method = method
        self.target = target
        self.headers = list(headers or [])
        if content_type is not None:
            self.headers.insert(0, ("Content-Type", content_type))
        self.body = body
        self.records = records
        self.fmt = fmt
        self.chunks = None
        self.pieces = None
        self.note = note
        self.clean = clean or []  # indexes of plain records of allowed people
        self.inspected = target == "/ingest" and method == "POST"
        self.expect_refusal = False
        self.extra = {}

    def raw(self):
        lines = ["%s %s HTTP/1.1" % (self.method, self.target),
                 "Host: readers.test", "X-Readers-Attack: %s" % self.aid]
        for k, v in self.headers:
            lines.append("%s: %s" % (k, v))
        if self.chunks:
            lines.append("Transfer-Encoding: chunked")
        else:
            lines.append("Content-Length: %d" % len(self.body))
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
        if not self.chunks:
            return head + self.body
        out = [head]
        off, i = 0, 0
        while off < len(self.body):
            n = max(1, self.chunks[min(i, len(self.chunks) - 1)])
            part = self.body[off:off + n]
            out.append(b"%x\r\n" % len(part) + part + b"\r\n")
            off += len(part)
            i += 1
        out.append(b"0\r\n\r\n")
        return b"".join(out)


class Gen:
    def __init__(self, rng, allowed, denied, unknown):
        self.r = rng
        self.allowed = allowed
        self.denied = denied
        self.unknown = unknown

    # ---- ids, whitespace, records
    def A(self):
        return self.r.choice(self.allowed)

    def D(self):
        return self.r.choice(self.denied + self.unknown)

    def ws(self, crs=False):
        r = self.r.random()
        if r < 0.6:
            return ""
        if r < 0.8:
            return self.r.choice([" ", "  ", "\t"])
        if crs:
            return self.r.choice(["\r", " \r", "\r ", "\r\r", "\t\r"])
        return " "

    def text(self):
        return jstr(" ".join(self.r.choice(WORDS)
                             for _ in range(self.r.randint(1, 4))).replace(
                                 "\\\"", "\"").replace("\\t", "\t").replace(
                                     "\\n", "\n"))

    def obj(self, pairs, ws=None):
        ws = ws or (lambda: self.ws())
        parts = ["{"]
        for i, (k, v) in enumerate(pairs):
            if i:
                parts.append(ws() + "," + ws())
            else:
                parts.append(ws())
            parts.append(k + ws() + ":" + ws() + v)
        parts.append(ws() + "}")
        return "".join(parts)

    def rec(self, author, mentions=None, extra=0, quote=True, ws=None,
            key='"author_id"'):
        pairs = []
        if author is not None:
            pairs.append((key, jstr(author) if quote else author))
        for _ in range(extra if extra else self.r.randint(0, 2)):
            pairs.append((self.r.choice(['"text"', '"lang"', '"n"', '"meta"']),
                          self.r.choice([self.text(), str(self.r.randint(0, 99)),
                                         "true", "null", "[1,2]",
                                         '{"k":"v"}'])))
        if mentions is not None:
            pairs.append(('"mentions"', "[" + ",".join(
                '{"id":%s}' % (jstr(m) if isinstance(m, str) else m)
                for m in mentions) + "]"))
        self.r.shuffle(pairs)
        return self.obj(pairs, ws)

    def plain_allowed(self, multi=False):
        m = [self.A() for _ in range(self.r.randint(0, 2))] if multi and \
            self.r.random() < 0.5 else None
        return self.rec(self.A(), mentions=m).encode()

    def plain_denied(self):
        return self.rec(self.D()).encode()

    # ---- bodies
    def ndjson(self, recs, term="\n", trailing=None, blank=False):
        if trailing is None:
            trailing = self.r.random() < 0.7
        sep = term.encode()
        if blank:
            sep = sep + sep
        body = sep.join(recs)
        if trailing:
            body += term.encode()
        return body

    def array(self, recs, pretty=False):
        if pretty:
            return b"[\n" + b",\n".join(b"  " + r for r in recs) + b"\n]"
        sp = self.r.choice([b"", b" ", b"\n", b"\r\n"])
        return b"[" + sp + (b"," + sp).join(recs) + sp + b"]"

    def batch(self, core, nclean=None, multi=False):
        """core records mixed with plain allowed/denied ones; returns
        (records, indexes of clean allowed records)."""
        recs, clean = [], []
        n = self.r.randint(0, 3) if nclean is None else nclean
        pos = self.r.randint(0, n)
        for i in range(n + 1):
            if i == pos:
                for c in core:
                    recs.append(c)
            else:
                if self.r.random() < 0.65:
                    clean.append(len(recs))
                    recs.append(self.plain_allowed(multi))
                else:
                    recs.append(self.plain_denied())
        return recs, clean


def framed(g, cls, variant, recs, clean, note, fmts=("ndjson", "array",
                                                      "object"), multi=False):
    """Put records into an NDJSON, array or object body (random)."""
    fmt = g.r.choice(fmts)
    if fmt == "object":
        core = [r for i, r in enumerate(recs) if i not in clean] or recs
        rec = g.r.choice(core)
        a = Attack(cls, variant, rec, [rec], "object", note,
                   content_type="application/json",
                   clean=[0] if rec in [recs[i] for i in clean] else [])
        return a
    if fmt == "array":
        body = g.array(recs, pretty=g.r.random() < 0.2)
        return Attack(cls, variant, body, recs, "array", note,
                      content_type="application/json", clean=clean)
    term = g.r.choice(["\n"] * 6 + ["\r\n"])
    body = g.ndjson(recs, term=term, blank=g.r.random() < 0.1)
    return Attack(cls, variant, body, recs, "ndjson", note,
                  content_type=g.r.choice(NDJSON_TYPES), clean=clean)


def finish(g, a, gzip_p=0.1, chunk_p=0.25, piece_p=0.2, keep_plain=False):
    """Framing fuzz: gzip, chunked client bodies, split TCP writes."""
    if not keep_plain:
        a.extra["plain"] = a.body
    if g.r.random() < gzip_p and a.fmt in ("ndjson", "array", "object"):
        a.body = gzip.compress(a.body, mtime=0)
        a.headers.append(("Content-Encoding", "gzip"))
        a.note += " gzip"
    if g.r.random() < chunk_p:
        a.chunks = [g.r.choice([1, 7, 64, 500, 4096, 65536])
                    for _ in range(g.r.randint(1, 3))]
    if g.r.random() < piece_p:
        a.pieces = "random"
    return a


def big(g, cls, variant, core, note):
    """A streamed NDJSON body: > 256 KiB of allowed records around core."""
    recs, clean = [], []
    filler = []
    size = 0
    target = g.r.choice([300_000, 400_000, 600_000])
    while size < target:
        r = g.rec(g.A(), extra=3).encode()
        r = r[:-1] + b',"pad":"' + b"p" * 900 + b'"}'
        filler.append(r)
        size += len(r) + 1
    at = g.r.randint(0, len(filler))
    for i, r in enumerate(filler):
        if i == at:
            recs.extend(core)
        clean.append(len(recs))
        recs.append(r)
    if at == len(filler):
        recs.extend(core)
    body = g.ndjson(recs, trailing=True)
    a = Attack(cls, variant, body, recs, "ndjson", note + " streamed",
               content_type="application/x-ndjson", clean=clean)
    return a


# ================================================================ classes

def class1(g, variants):
    """Line ends: CR not before the record-ending LF, separators that some
    reader takes for line ends, CRLF, pretty-printed bodies."""
    r = g.r
    v = r.choice(variants)
    multi = v == "multi"
    kind = r.randrange(10)
    A, D = g.A(), g.D()
    if kind <= 2:
        # the example and variations on where the CRs go
        sep1 = r.choice(["\r", "\r\r", " \r", "\r\t", "\r \r", "\r\x0b",
                         "\u2028", "\u0085", "\x0c", "\x1e", "\r\n\r"
                         if r.random() < 0.05 else "\r"])
        sep2 = r.choice(["\r", "\r\r", " \r", "\u2029", "\x1c", "\x1d"])
        inner = g.rec(D, extra=1)
        key = r.choice(['"quoted"', '"reply_to"', '"x"'])
        pre = g.rec(A, extra=0)[:-1]
        if pre.endswith("{"):
            rec = pre + key + ":" + sep1 + inner + sep2 + "}"
        else:
            rec = pre + "," + key + ":" + sep1 + inner + sep2 + "}"
        core = [rec.encode()]
        note = "nested record after %r" % sep1
    elif kind == 3:
        # two records on one line, CR between (a reader splitting on CR sees two)
        sep = r.choice(["\r", " \r ", "\r\r", "\u2028", "\u0085", "\x0b",
                        "\x0c", "\x1c", "\x1d", "\x1e", "\u2029"])
        rec = g.rec(A) + sep + g.rec(D)
        core = [rec.encode()]
        note = "two values joined by %r" % sep
    elif kind == 4:
        # raw separators inside strings of an allowed record (pipeline loss)
        sep = r.choice(["\u2028", "\u2029", "\u0085"])
        rec = g.obj([('"author_id"', jstr(A)),
                     ('"text"', jstr("a" + sep + "b"))])
        core = [rec.encode()]
        note = "raw %r in a string" % sep
    elif kind == 5:
        # a string split by a separator, the second half a record of D
        sep = r.choice(["\u2028", "\u2029", "\u0085", "\r"])
        inner = g.rec(D)
        rec = ('{"author_id":%s,"text":"%s' % (jstr(A), sep)) + '","q":' + \
            inner + "}"
        core = [rec.encode()]
        note = "string broken by %r" % sep
    elif kind == 6:
        # whitespace CRs between tokens of one record (fuzz)
        rec = g.rec(A, extra=2, ws=lambda: g.ws(crs=True),
                    mentions=[D] if multi and r.random() < 0.3 else None)
        core = [rec.encode()]
        note = "CRs between tokens"
    elif kind == 7:
        # pretty-printed object/array body, nested object on its own line
        inner = g.rec(D, extra=1)
        nl = r.choice(["\n", "\r\n", "\r"])
        rec = ("{" + nl + '  "author_id": ' + jstr(A) + "," + nl +
               '  "quoted":' + nl + inner + nl + "}")
        if r.random() < 0.5:
            a = Attack(1, v, rec.encode(), [rec.encode()], "object",
                       "pretty object, nested line %r" % nl,
                       content_type="application/json")
        else:
            recs = [rec.encode(), g.plain_allowed()]
            body = b"[" + nl.encode() + (b"," + nl.encode()).join(recs) + \
                nl.encode() + b"]"
            a = Attack(1, v, body, recs, "array",
                       "pretty array, nested line %r" % nl,
                       content_type="application/json", clean=[1])
        return finish(g, a)
    elif kind == 8:
        # CRLF everywhere (must be kept exactly), mixed terminators
        recs, clean = g.batch([], nclean=r.randint(1, 4), multi=multi)
        term = r.choice(["\r\n", "\n", "\r\n"])
        body = g.ndjson(recs, term=term)
        if r.random() < 0.3:
            body = body.replace(b"\n", b"\r\n", 1)
        a = Attack(1, v, body, recs, "ndjson", "terminators %r" % term,
                   clean=clean)
        return finish(g, a)
    else:
        # a lone CR (or CR CR) as the record separator
        sep = r.choice(["\r", "\r\r", "\r\r\n", "\n\r", "\u2028", "\x85"])
        recs = [g.rec(A).encode(), g.rec(D).encode()]
        if r.random() < 0.5:
            recs.reverse()
        body = recs[0] + sep.encode() + recs[1] + b"\n"
        a = Attack(1, v, body, None, "ndjson", "records split by %r" % sep)
        a.records = [body.rstrip(b"\n")]
        return finish(g, a)
    recs, clean = g.batch(core, multi=multi)
    if r.random() < 0.04:
        return big(g, 1, v, core, note)
    a = framed(g, 1, v, recs, clean, note)
    return finish(g, a)


def class2(g, variants):
    """Repeated and look-alike headers."""
    r = g.r
    kind = r.randrange(6)
    A, D = g.A(), g.D()
    if kind == 0:
        # two Content-Types: consentgate and the WSGI app pick different ones
        inner = g.rec(D)
        pretty = ('{\n"author_id":%s,\n"quoted":\n%s\n}' % (jstr(A), inner))
        lines_body = g.rec(A) + "\n" + g.rec(D) + "\n"
        first, last = r.choice([("application/json", r.choice(NDJSON_TYPES)),
                                (r.choice(NDJSON_TYPES), "application/json")])
        body = pretty if first == "application/json" else lines_body
        if r.random() < 0.3:
            body = "[" + g.rec(A) + ",\n" + inner + "]"
        name2 = r.choice(["Content-Type", "content-type", "CONTENT-TYPE",
                          "Content_Type", "content_type"])
        hdrs = [("Content-Type", first), (name2, last)]
        if r.random() < 0.3:
            hdrs.reverse()
        a = Attack(2, r.choice(["shipped", "ext"]), body.encode(), None,
                   "unknown", "Content-Type %s then %s: %s" % (
                       hdrs[0][1], name2, hdrs[1][1]),
                   content_type=None, headers=hdrs)
        return finish(g, a, gzip_p=0.1, chunk_p=0.2)
    if kind == 1:
        # only a look-alike Content-Type, or a type with parameters
        body = g.rec(A) + "\n" + g.rec(D) + "\n"
        hdrs = r.choice([
            [("Content_Type", "application/json")],
            [("Content_Type", "application/x-ndjson")],
            [("Content-Type", "application/json; charset=utf-8"),
             ("Content_Type", "application/x-ndjson")],
            [("Content-Type", "application/x-ndjson, application/json")],
            [("Content-Type", "application/json;x=\"a,b\"")],
        ])
        a = Attack(2, r.choice(["shipped", "ext"]), body.encode(), None,
                   "unknown", "types %r" % (hdrs,), content_type=None,
                   headers=hdrs)
        return finish(g, a)
    if kind == 2:
        # Content-Encoding twice or with an underscore twin
        recs, clean = g.batch([g.rec(D).encode()])
        body = g.ndjson(recs)
        enc = r.choice([
            [("Content-Encoding", "gzip"), ("Content-Encoding", "identity")],
            [("Content-Encoding", "identity"), ("Content_Encoding", "gzip")],
            [("Content-Encoding", "gzip"), ("Content_Encoding", "identity")],
            [("Content_Encoding", "gzip")],
            [("Content-Encoding", "gzip, identity")],
            [("content-encoding", "gzip"), ("CONTENT-ENCODING", "gzip")],
        ])
        if any(v.startswith("gzip") for k, v in enc[:1]):
            body = gzip.compress(body, mtime=0)
        a = Attack(2, r.choice(["shipped", "ext"]), body, recs, "ndjson",
                   "encodings %r" % (enc,), headers=enc, clean=clean)
        if body[:2] == b"\x1f\x8b":
            a.extra["plain"] = gzip.decompress(body)
        else:
            a.extra["plain"] = body
        return finish(g, a, gzip_p=0, keep_plain=True)
    if kind == 3:
        # the subject header repeated or with a WSGI twin
        names = ["X-Subject-Id", "X_Subject_Id", "x-subject-id",
                 "X-SUBJECT-ID", "x_subject_id"]
        vals = [A, D] if r.random() < 0.5 else [D, A]
        n1, n2 = r.choice(names), r.choice(names)
        hdrs = [(n1, vals[0]), (n2, vals[1])]
        if r.random() < 0.2:
            hdrs = [("X-Subject-Id", "%s, %s" % tuple(vals))]
        if r.random() < 0.15:
            hdrs = [("X_Subject_Id", D)]
        if r.random() < 0.1:
            hdrs = [("X-Subject-Id", A)]  # plain, must pass
        body = g.obj([('"text"', g.text())]).encode()
        a = Attack(2, "header", body, [body], "object",
                   "subject headers %r" % (hdrs,),
                   content_type="application/json", headers=hdrs)
        a.extra["subject_header"] = True
        return finish(g, a, gzip_p=0.05)
    # kinds 4, 5: proof headers from the client
    spoof = [
        ("Consent_Result", "kept=99, dropped=0"),
        ("Consent-Result", "kept=99, dropped=0"),
        ("consent_result", "kept=1, dropped=0"),
        ("Consent_Purpose", "analytics"),
        ("Consent-Purpose", "analytics"),
        ("Consent_Policy", 'id="forged", digest="0000000000000000"'),
        ("CONSENT_POLICY", 'id="forged", digest="0000000000000000"'),
        ("Consent_Snapshot", "version=1, age=0"),
        ("Content_Usage", "train-ai=y"),
        ("Content-Usage", "train-ai=y"),
        ("content_usage", "train-ai=y"),
        ("Consent_Evidence", "forged"),
    ]
    hdrs = r.sample(spoof, r.randint(1, 3))
    v = r.choice(["shipped", "ext", "cu", "cu", "catchall"])
    target, method = "/ingest", "POST"
    if v == "catchall" and r.random() < 0.5:
        target = r.choice(["/other", "/status"])
        method = "POST" if target == "/other" else "GET"
    recs, clean = g.batch([], nclean=r.randint(1, 3))
    if r.random() < 0.05:
        a = big(g, 2, v, [], "spoofed %r" % (hdrs,))
        a.headers.extend(hdrs)
        return a
    a = framed(g, 2, v, recs, clean, "spoofed %r" % (hdrs,),
               fmts=("ndjson", "array"))
    a.headers.extend(hdrs)
    a.method, a.target = method, target
    a.inspected = target == "/ingest"
    if method == "GET":
        a.body, a.records = b"", None
    return finish(g, a)


def class3(g, variants):
    """Numeric ids that readers round."""
    r = g.r
    v = r.choice(["ext", "ext", "multi", "block"])
    kind = r.randrange(6)
    if kind == 5:
        # a quoted id that a reader's type inference turns into a number
        q = r.choice([b for b, _ in BIG_IDS] + ["0042", "-0", "0042",
                                                 "1001.0", "+1001", "1e3"])
        rec = g.rec(q)
        recs, clean = g.batch([rec.encode()])
        a = framed(g, 3, v if v != "multi" else "ext", recs, clean,
                   "quoted %s" % q, fmts=("ndjson", "array"))
        return finish(g, a)
    if kind <= 1:
        exact, _ = r.choice(BIG_IDS)
        num = exact
        note = "unquoted %s" % exact
    elif kind == 2:
        num = r.choice(HUGE_IDS)
        note = "unquoted %s" % num
    elif kind == 3:
        num = r.choice(["-0", "-0", "0", "-00", "1001.0", "1e3", "1001e0",
                        "9007199254740993.0", "1.0e16", "-0.0"])
        note = "unquoted %s" % num
    else:
        exact, _ = r.choice(BIG_IDS)
        num = r.choice([exact, "-0", r.choice(HUGE_IDS)])
        note = "mention %s" % num
        v = "multi"
    if kind == 4:
        rec = g.rec(g.A(), mentions=[num] if r.random() < 0.5 else
                    [g.A(), num])
        rec = rec.replace('"id":"%s"' % num, '"id":%s' % num)
    else:
        mentions = None
        if v == "multi" and r.random() < 0.3:
            mentions = [g.A()]
        rec = g.rec(num, quote=False, mentions=mentions)
    # the mutation: whitespace around, extra digits, sign
    if r.random() < 0.1:
        rec = rec.replace(num, num + r.choice(["", "0", "1"]), 1)
    recs, clean = g.batch([rec.encode()], multi=(v == "multi"))
    a = framed(g, 3, v, recs, clean, note)
    return finish(g, a)


def class4(g, variants):
    """Key look-alikes: decoys that some reader folds onto the subject key."""
    r = g.r
    v = r.choice(["shipped", "ext", "multi", "block", "ext"])
    A, D = g.A(), g.D()
    kind = r.randrange(6)
    if kind <= 2:
        decoy = r.choice(DECOY_AUTHOR)
        pairs = [('"author_id"', jstr(A)), (jstr(decoy), jstr(D))]
        if r.random() < 0.5:
            pairs.reverse()
        if r.random() < 0.15:
            pairs = [(jstr(decoy), jstr(D))]
        note = "decoy key %r %s" % (decoy, "last" if pairs[-1][1] == jstr(D)
                                    else "first")
    elif kind == 3:
        esc = r.choice(ESCAPED_AUTHOR)
        pairs = [('"author_id"', jstr(A)), ('"%s"' % esc, jstr(D))]
        if r.random() < 0.5:
            pairs.reverse()
        if r.random() < 0.2:
            pairs = [('"%s"' % esc, jstr(A))]  # escaped spelling alone
        note = "escaped key %r" % esc
    elif kind == 4:
        v = "multi"
        dm = r.choice(DECOY_MENTIONS)
        di = r.choice(DECOY_ID)
        if r.random() < 0.5:
            pairs = [('"author_id"', jstr(A)),
                     (jstr(dm), '[{"id":%s}]' % jstr(D))]
            note = "decoy mentions key %r" % dm
        else:
            k = '"%s"' % di if di.startswith("\\") else jstr(di)
            pairs = [('"author_id"', jstr(A)),
                     ('"mentions"', '[{"id":%s,%s:%s}]' % (jstr(g.A()), k,
                                                          jstr(D)))]
            note = "decoy id key %r" % di
    else:
        # exact duplicate, decoy first or last, maybe three times
        n = r.randint(2, 3)
        ids = [A] + [D] * (n - 1)
        r.shuffle(ids)
        pairs = [('"author_id"', jstr(x)) for x in ids]
        note = "duplicate author_id %r" % ids
    for _ in range(r.randint(0, 2)):
        pairs.insert(r.randint(0, len(pairs)), ('"text"', g.text()))
    rec = g.obj(pairs)
    recs, clean = g.batch([rec.encode()], multi=(v == "multi"))
    a = framed(g, 4, v, recs, clean, note)
    return finish(g, a)


PATH_ALIASES = ["//ingest", "/%69ngest", "/%69%6e%67%65%73%74", "/ingest/",
                "/INGEST", "/Ingest", "/ingest;x", "/ingest;jsessionid=1",
                "/ingest.json", "/./ingest", "/a/../ingest", "/ingest/.",
                "/ingest//", "///ingest", "/%2fingest", "/ingest%2f",
                "/ingest%3bx", "/ingest.ndjson", "/INGEST/", "/%49NGEST",
                "/ingest?x=1", "/ingest#frag", "/ingest%20", "/ingest%09"]


def class5(g, variants):
    """Paths and methods, with a catch-all pass route after /ingest."""
    r = g.r
    method = r.choice(["POST"] * 4 + ["PUT", "PATCH", "post", "Post", "pOST",
                                      "put", "patch"])
    target = r.choice(PATH_ALIASES + ["/ingest"])
    if r.random() < 0.1:
        target = r.choice(["http://readers.test", "http://127.0.0.1",
                           "HTTP://readers.test"]) + target
    if r.random() < 0.1:
        # mutate: two transformations composed
        t2 = r.choice(["/", "//", "/./"])
        target = target.replace("/", t2, 1)
    recs, clean = g.batch([g.plain_denied()], nclean=r.randint(0, 3))
    a = framed(g, 5, "catchall", recs, clean, "%s %s" % (method, target),
               fmts=("ndjson", "ndjson", "array"))
    a.method, a.target = method, target
    a.inspected = method == "POST" and target in ("/ingest", "/ingest?x=1")
    return finish(g, a)


def class6(g, variants):
    """Several subjects: /author_id and /mentions/*/id."""
    r = g.r
    A, D = g.A(), g.D()
    kind = r.randrange(9)
    ms = [g.A() for _ in range(r.randint(1, 3))]
    if kind == 0:
        pairs = [('"mentions"', "[%s]" % ",".join('{"id":%s}' % jstr(m)
                                                  for m in ms))]
        note = "no author, allowed mentions"
    elif kind == 1:
        pairs = [('"author_id"', "null"),
                 ('"mentions"', '[{"id":%s}]' % jstr(ms[0]))]
        note = "author null"
    elif kind == 2:
        pairs = [('"author_id"', jstr(A)),
                 ('"mentions"', '[{"id":%s},{"id":%s}]' % (jstr(ms[0]),
                                                          jstr(D)))]
        note = "denied mention"
    elif kind == 3:
        pairs = [('"author_id"', jstr(D)),
                 ('"mentions"', '[{"id":%s}]' % jstr(ms[0]))]
        note = "denied author, allowed mention"
    elif kind == 4:
        pairs = [('"author_id"', jstr(A)),
                 ('"mentions"', r.choice(['[{"name":"x"}]', "[]", '{"id":%s}'
                                          % jstr(D), '[{"id":null}]',
                                          '[{"id":%s}]' % jstr(D), '"x"',
                                          '[{"id":[%s]}]' % jstr(D)]))]
        note = "odd mentions"
    elif kind == 5:
        pairs = [('"author_id"', r.choice(['""', '{}', '[]', 'true',
                                           jstr("4242")])),
                 ('"mentions"', '[{"id":%s}]' % jstr(ms[0]))]
        note = "odd author"
    elif kind == 6:
        pairs = [('"mentions"', '[{"id":%s}]' % jstr(ms[0])),
                 ('"text"', g.text())]
        if r.random() < 0.5:
            pairs.append(('"quoted"', g.rec(D)))
        note = "no author, mention, quoted"
    elif kind == 7:
        pairs = [('"author_id"', jstr(A)),
                 ('"mentions"', '[{"id":%s},{"id":%s}]' % (jstr(ms[0]),
                                                          jstr(ms[0])))]
        note = "allowed author and mentions"
    else:
        pairs = [('"Author_Id"', jstr(D)),
                 ('"mentions"', '[{"id":%s}]' % jstr(ms[0]))]
        note = "decoy author only, mention"
    r.shuffle(pairs)
    rec = g.obj(pairs)
    recs, clean = g.batch([rec.encode()], multi=True)
    v = r.choice(["multi", "multi", "multi-block"])
    a = framed(g, 6, v, recs, clean, note)
    return finish(g, a)


CLASSES = {1: class1, 2: class2, 3: class3, 4: class4, 5: class5, 6: class6}
CLASS_NAMES = {1: "line-ends", 2: "headers", 3: "numeric-ids",
               4: "key-look-alikes", 5: "paths-methods",
               6: "several-subjects", 7: "consent-rows",
               8: "early-answer"}


def control(g, cls):
    """A request of the class's shape that is unambiguous to every reader:
    it must be forwarded (2xx) with every allowed record delivered. Keeps
    the suite honest: a proxy that refused everything would fail here."""
    r = g.r
    multi = cls == 6
    v = {1: r.choice(["shipped", "ext", "block"]), 2: r.choice(["shipped",
                                                                "header"]),
         3: "ext", 4: r.choice(["shipped", "ext"]), 5: "catchall",
         6: "multi"}[cls]
    recs, clean = [], []
    block = v == "block"
    for _ in range(r.randint(1, 4)):
        if block or r.random() < 0.7:
            clean.append(len(recs))
            if cls == 3:
                recs.append(g.rec(g.A()).encode())
            elif cls == 4:
                recs.append(g.obj([('"author_id"', jstr(g.A())),
                                   (jstr(r.choice(["titel_\u00fc", "\u65e5\u672c",
                                                   "autor", "author"])),
                                    g.text())]).encode())
            else:
                recs.append(g.plain_allowed(multi))
        else:
            recs.append(g.plain_denied())
    if cls == 3 and r.random() < 0.4:
        small = [x for x in g.allowed if x.isdigit()]  # exact in a double
        if small:
            clean.append(len(recs))
            recs.append(g.rec(r.choice(small), quote=False).encode())
    if v == "header":
        body = g.obj([('"text"', g.text())]).encode()
        a = Attack(cls, v, body, [body], "object", "control: one subject "
                   "header", content_type="application/json",
                   headers=[("X-Subject-Id", g.A())], clean=[0])
        a.extra["subject_header"] = True
    else:
        fmt = r.choice(["ndjson", "ndjson", "array", "object"])
        if fmt == "object":
            recs, clean = [recs[clean[0]] if clean else g.plain_allowed()], [0]
            a = Attack(cls, v, recs[0], recs, "object", "control: object",
                       content_type=r.choice(["application/json",
                                              "application/json; charset=utf-8"]),
                       clean=clean)
        elif fmt == "array":
            a = Attack(cls, v, b"[" + b",".join(recs) + b"]", recs, "array",
                       "control: array", content_type="application/json",
                       clean=clean)
        else:
            term = r.choice(["\n", "\r\n"])
            a = Attack(cls, v, g.ndjson(recs, term=term), recs, "ndjson",
                       "control: NDJSON %r" % term,
                       content_type=r.choice(NDJSON_TYPES), clean=clean)
    if cls == 5:
        a.target = r.choice(["/ingest", "/ingest?x=1", "/ingest?a=b&c=%2F"])
    a.extra["control"] = True
    return finish(g, a, gzip_p=0.15, chunk_p=0.25, piece_p=0.2)
