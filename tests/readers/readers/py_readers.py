"""py_readers.py: the Python pipeline readers, run with Debian's python3.

usage: /usr/bin/python3 py_readers.py IN.jsonl OUT.jsonl

IN has one body a line: {"id", "mode": "lines"|"doc", "loc": "a"|"am",
"b64"}. OUT gets one line per (body, reader):
{"id", "r": reader, "recs": [...], "err": fatal error or null}
where each record is {"s": [author, mention ids...]} (null: no usable id)
or {"err": "..."} when that record does not parse. Ids are rendered as the
reader would: str() of what the library returned.
"""

import base64
import io
import json
import math
import sys

import simplejson
import ujson

try:
    import pandas
except Exception:  # pandas is optional only in the sense of a clear error
    pandas = None


def render(v):
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, (int, float)):
        return str(v)
    return None


def subjects(rec, loc):
    if not isinstance(rec, dict):
        return None  # not an object: a record of no one
    out = [render(rec["author_id"]) if "author_id" in rec else None]
    if loc == "am":
        m = rec.get("mentions")
        if isinstance(m, list):
            for e in m:
                if isinstance(e, dict) and "id" in e:
                    out.append(render(e["id"]))
    return out


def wrap(s):
    return {"n": 1} if s is None else {"s": s}


def split_records(lines, loads, loc):
    recs = []
    for ln in lines:
        if not ln.strip():
            continue
        try:
            recs.append(wrap(subjects(loads(ln), loc)))
        except Exception as e:
            recs.append({"err": "%s: %s" % (type(e).__name__, str(e)[:80])})
    return recs


def doc_records(text, loads, loc):
    v = loads(text)
    if isinstance(v, list):
        return [wrap(subjects(x, loc)) for x in v]
    return [wrap(subjects(v, loc))]


def textio_lines(body):
    return list(io.TextIOWrapper(io.BytesIO(body), encoding="utf-8",
                                 newline=None))


def pandas_render(v):
    if v is None:
        return None
    if isinstance(v, float):
        if math.isnan(v):
            return None
        if v.is_integer() and abs(v) < 1e300:
            return str(int(v))  # a pipeline's int(row.author_id)
        return str(v)
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
        return pandas_render(v)
    return render(v)


def pandas_records(body, mode, loc):
    text = body.decode("utf-8")
    if mode == "lines":
        df = pandas.read_json(io.StringIO(text), lines=True)
    else:
        v = json.loads(text)
        if not isinstance(v, list):
            return None  # read_json takes no single object: not applicable
        df = pandas.read_json(io.StringIO(text), orient="records")
    recs = []
    cols = list(df.columns)
    for i in range(len(df)):
        row = df.iloc[i]
        s = [pandas_render(row["author_id"]) if "author_id" in cols else None]
        if loc == "am" and "mentions" in cols:
            m = row["mentions"]
            if isinstance(m, list):
                for e in m:
                    if isinstance(e, dict) and "id" in e:
                        s.append(render(e["id"]))
        recs.append({"s": s})
    return recs


def run(item):
    body = base64.b64decode(item["b64"])
    mode, loc = item["mode"], item["loc"]
    out = []

    def emit(name, fn):
        try:
            recs = fn()
            if recs is None:
                return
            out.append({"r": name, "recs": recs, "err": None})
        except Exception as e:
            out.append({"r": name, "recs": [],
                        "err": "%s: %s" % (type(e).__name__, str(e)[:80])})

    if mode == "lines":
        emit("py-json-splitlines", lambda: split_records(
            body.decode("utf-8").splitlines(), json.loads, loc))
        emit("py-json-bytes-split", lambda: split_records(
            [x.decode("utf-8") for x in body.split(b"\n")], json.loads, loc))
        emit("py-json-textio", lambda: split_records(
            textio_lines(body), json.loads, loc))
        emit("py-ujson", lambda: split_records(
            textio_lines(body), ujson.loads, loc))
        emit("py-simplejson", lambda: split_records(
            textio_lines(body), simplejson.loads, loc))
    else:
        emit("py-json", lambda: doc_records(body.decode("utf-8"),
                                            json.loads, loc))
        emit("py-ujson", lambda: doc_records(body.decode("utf-8"),
                                             ujson.loads, loc))
        emit("py-simplejson", lambda: doc_records(body.decode("utf-8"),
                                                  simplejson.loads, loc))
    if pandas is not None:
        emit("py-pandas", lambda: pandas_records(body, mode, loc))
    return out


def main():
    src, dst = sys.argv[1], sys.argv[2]
    with open(src) as f, open(dst, "w") as o:
        for line in f:
            item = json.loads(line)
            for r in run(item):
                r["id"] = item["id"]
                o.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
