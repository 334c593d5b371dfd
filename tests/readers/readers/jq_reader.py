"""jq_reader.py: jq 1.6 (`jq -c`) as a pipeline reader, batched.

usage: /usr/bin/python3 jq_reader.py IN.jsonl OUT.jsonl   (see py_readers.py)

jq reads a body as a stream of JSON values whatever its lines; numbers are
doubles (ids rendered with tojson, as `jq -c .author_id` prints them); in a
document body a top-level array is taken apart with `.[]`.

jq takes about 40 ms to start, so bodies go to one jq process in batches,
each body preceded by a marker string value. The batch is trusted only when
every marker comes back in order and jq exits 0; otherwise the first body
that broke it is read by a jq of its own (its exact behaviour alone) and the
batch goes on after it.
"""

import base64
import json
import subprocess
import sys

PROG = r'''
def rend: if type == "string" then . elif type == "number" then tojson else null end;
def subj($loc):
  if type == "object" then
    [ (if has("author_id") then (.author_id | rend) else null end) ]
    + (if $loc == "am" and (.mentions | type) == "array"
       then [ .mentions[] | select(type == "object" and has("id")) | .id | rend ]
       else [] end)
  else null end;
foreach inputs as $v ({i: null, mode: "lines", loc: "a", mk: false};
  if ($v | type) == "string" and ($v | startswith("\u0001cg:"))
  then ($v | ltrimstr("\u0001cg:") | split(":")) as $p
       | {i: $p[0], mode: $p[1], loc: $p[2], mk: true}
  else .mk = false end;
  if .mk then ["m", .i]
  else . as $st
    | if $st.mode == "doc" and ($v | type) == "array"
      then ($v[] | ["v", $st.i, subj($st.loc)])
      else ["v", $st.i, ($v | subj($st.loc))] end
  end)
'''

TIMEOUT = 120


def marker(i, mode, loc):
    return ('\n"\\u0001cg:%s:%s:%s"\n' % (i, mode, loc)).encode()


def run_jq(data):
    p = subprocess.run(["jq", "-n", "-c", PROG], input=data,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=TIMEOUT)
    return p.returncode, p.stdout.decode("utf-8", "replace"), \
        p.stderr.decode("utf-8", "replace")


def parse_out(text):
    out = []
    for ln in text.splitlines():
        try:
            out.append(json.loads(ln))
        except ValueError:
            out.append(["?", ln])
    return out


def alone(item, body):
    idx = "0"
    rc, out, err = run_jq(marker(idx, item["mode"], item["loc"]) + body)
    recs = [{"n": 1} if v[2] is None else {"s": v[2]}
            for v in parse_out(out) if v[0] == "v"]
    e = None
    if rc != 0:
        e = (err.strip().splitlines() or ["exit %d" % rc])[-1][:80]
    return {"id": item["id"], "r": "jq", "recs": recs, "err": e}


def batch(items, bodies, o):
    start = 0
    while start < len(items):
        end = min(len(items), start + 400)
        data = b"".join(marker(str(k), items[k]["mode"], items[k]["loc"]) +
                        bodies[k] for k in range(start, end))
        data += marker("end", "lines", "a")
        rc, out, _ = run_jq(data)
        res = {}
        expect = start
        good_upto = start  # bodies [start, good_upto) are trusted
        broken = False
        cur = None
        for v in parse_out(out):
            if v[0] == "m":
                want = "end" if expect == end else str(expect)
                if v[1] != want:
                    broken = True
                    break
                if cur is not None:
                    good_upto = cur + 1
                if v[1] == "end":
                    good_upto = end
                    break
                cur = expect
                res[cur] = []
                expect += 1
            elif v[0] == "v" and cur is not None and v[1] == str(cur):
                res[cur].append({"n": 1} if v[2] is None else {"s": v[2]})
            else:
                broken = True
                break
        if rc != 0:
            broken = True
        if not broken and good_upto == end:
            for k in range(start, end):
                o.write(json.dumps({"id": items[k]["id"], "r": "jq",
                                    "recs": res[k], "err": None}) + "\n")
            start = end
            continue
        for k in range(start, good_upto):
            o.write(json.dumps({"id": items[k]["id"], "r": "jq",
                                "recs": res[k], "err": None}) + "\n")
        bad = good_upto
        o.write(json.dumps(alone(items[bad], bodies[bad])) + "\n")
        start = bad + 1


def main():
    items, bodies = [], []
    with open(sys.argv[1]) as f:
        for line in f:
            it = json.loads(line)
            items.append(it)
            bodies.append(base64.b64decode(it["b64"]))
    with open(sys.argv[2], "w") as o:
        batch(items, bodies, o)


if __name__ == "__main__":
    main()
