"""upstream_app.py: the recording ML-ingestion upstream, a Flask app served
by Debian's gunicorn (sync workers).

For every request it records what the application sees: method, raw URI,
PATH_INFO, the WSGI environ headers (HTTP_* keys, CONTENT_TYPE,
CONTENT_LENGTH, exactly as gunicorn built them), the body read from
wsgi.input, whether it was read completely, and which Flask endpoint took the
request. Each record is one JSON file in $READERS_RECORD_DIR (written before
the response is returned, so a client that has its answer can read it).

Routing is as permissive as common frameworks: /ingest with
strict_slashes=False for POST/PUT/PATCH, and a catch-all that maps aliases
(case, percent-encoding, ;params, .json, dot segments, repeated slashes) to
the ingest endpoint. `endpoint` is "ingest" for the route itself,
"ingest-alias" for an alias, "other" for the rest.
"""

import base64
import json
import os
import posixpath
import re
import threading
import urllib.parse

from flask import Flask, request

RECORD_DIR = os.environ.get("READERS_RECORD_DIR", "/tmp/readers-records")
app = Flask(__name__)
app.url_map.strict_slashes = False
_lock = threading.Lock()
_seq = [0]


def _alias_of_ingest(path):
    """True when a permissive framework would route path to /ingest."""
    p = urllib.parse.unquote(path or "")
    p = p.split(";", 1)[0]
    p = re.sub(r"/+", "/", p)
    p = posixpath.normpath(p) if p else p
    p = p.lower().rstrip("/")
    for ext in (".json", ".ndjson", ".jsonl", ".html", ".xml"):
        if p.endswith(ext):
            p = p[: -len(ext)]
    return p == "/ingest"


def _record(endpoint):
    env = request.environ
    stream = env["wsgi.input"]
    complete = True
    error = None
    chunks = []
    try:
        while True:
            d = stream.read(65536)
            if not d:
                break
            chunks.append(d)
    except Exception as e:  # a short or broken body
        complete = False
        error = "%s: %s" % (type(e).__name__, e)
    body = b"".join(chunks)
    cl = env.get("CONTENT_LENGTH")
    if cl not in (None, ""):
        try:
            if int(cl) != len(body):
                complete = False
                error = error or "short body %d of %s" % (len(body), cl)
        except ValueError:
            complete = False
            error = "bad CONTENT_LENGTH %r" % cl
    headers = {k: v for k, v in env.items()
               if k.startswith("HTTP_") or k in ("CONTENT_TYPE",
                                                 "CONTENT_LENGTH")}
    rec = {
        "pid": os.getpid(),
        "method": env.get("REQUEST_METHOD"),
        "raw_uri": env.get("RAW_URI"),
        "path_info": env.get("PATH_INFO"),
        "query": env.get("QUERY_STRING"),
        "headers": headers,
        "body_b64": base64.b64encode(body).decode("ascii"),
        "complete": complete,
        "error": error,
        "endpoint": endpoint,
        "flask_endpoint": request.endpoint,
    }
    with _lock:
        _seq[0] += 1
        n = _seq[0]
    name = os.path.join(RECORD_DIR, "%d-%08d.json" % (os.getpid(), n))
    with open(name + ".tmp", "w") as f:
        json.dump(rec, f)
    os.rename(name + ".tmp", name)
    return "ok\n", 200, {"Content-Type": "text/plain"}


@app.route("/ingest", methods=["POST", "PUT", "PATCH"])
def ingest():
    return _record("ingest")


@app.route("/", defaults={"p": ""},
           methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
@app.route("/<path:p>",
           methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def catch_all(p):
    env = request.environ
    paths = [env.get("PATH_INFO", ""),
             urllib.parse.urlsplit(env.get("RAW_URI", "")).path]
    if env.get("REQUEST_METHOD", "").upper() in ("POST", "PUT", "PATCH") and \
            any(_alias_of_ingest(x) for x in paths):
        return _record("ingest-alias")
    return _record("other")


@app.errorhandler(405)
def not_allowed(e):
    return _record("other")
