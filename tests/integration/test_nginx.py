"""test_nginx.py: byte-exact GET and POST through consentgate to an upstream
we did not write: Debian's nginx, started here on loopback with a generated
configuration (a `return 200` location, a static 1 MiB file, and an upload
location that keeps each request body in a file so it can be compared).
"""

import os
import random
import time

import harness
from harness import main, request, test, wait_until

MIB = 1 << 20


class Nginx(harness.Nginx):
    """A `return 200` location, a static 1 MiB file, and upload locations
    that keep each request body in a file."""

    def __init__(self, workdir):
        d = os.path.join(workdir, "nginx")
        for sub in ("www/static", "body"):
            os.makedirs(os.path.join(d, sub))
        self.static = random.Random(7).randbytes(MIB)
        with open(os.path.join(d, "www/static/file.bin"), "wb") as f:
            f.write(self.static)
        super().__init__(workdir, self._http)

    @staticmethod
    def _http(d, port):
        return f"""
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  client_max_body_size 64m;
  keepalive_requests 1000;
  server {{
    listen 127.0.0.1:{port};
    location = /r200 {{ return 200 "ok\\n"; }}
    location /static/ {{ root {d}/www; }}
    location = /ingest {{
      client_body_in_file_only on;
      proxy_pass http://127.0.0.1:{port}/r200;
    }}
    location /upload {{
      client_body_in_file_only on;
      proxy_pass http://127.0.0.1:{port}/r200;
    }}
  }}
"""

    def bodies(self):
        """Request bodies nginx kept, oldest first."""
        bd = os.path.join(self.dir, "body")
        out = []
        for name in sorted(os.listdir(bd)):
            with open(os.path.join(bd, name), "rb") as f:
                out.append(f.read())
        return out


def start(env):
    ng = Nginx(env.workdir)
    env.procs.append(ng)
    return ng, env.proxy(ng.url)


@test
def nginx_get_static_1mib(env):
    ng, px = start(env)
    c = env.client(px)
    c.send(request("GET", "/static/file.bin"))
    r = c.read_response()
    assert r.status == 200, r
    assert r.body == ng.static, "1 MiB static file differs (len %d)" % len(r.body)


@test
def nginx_return_200_keepalive(env):
    ng, px = start(env)
    c = env.client(px)
    for i in range(5):
        c.send(request("GET", "/r200?i=%d" % i))
        r = c.read_response()
        assert r.status == 200 and r.body == b"ok\n", (i, r)


@test
def nginx_post_1mib_content_length(env):
    ng, px = start(env)
    body = random.Random(11).randbytes(MIB)
    c = env.client(px)
    c.send(request("POST", "/upload", [("Content-Type", "application/octet-stream")],
                   body))
    r = c.read_response()
    assert r.status == 200 and r.body == b"ok\n", r
    assert wait_until(lambda: len(ng.bodies()) == 1, 2), "nginx kept no body"
    assert ng.bodies()[0] == body, "nginx received a different body"


@test
def nginx_post_1mib_chunked(env):
    ng, px = start(env)
    body = random.Random(12).randbytes(MIB)
    rng = random.Random(13)
    c = env.client(px)
    c.send(request("POST", "/upload", [("Content-Type", "application/octet-stream")],
                   body, chunked=[rng.randint(1, 50000) for _ in range(100)]))
    r = c.read_response()
    assert r.status == 200 and r.body == b"ok\n", r
    assert wait_until(lambda: len(ng.bodies()) == 1, 2), "nginx kept no body"
    assert ng.bodies()[0] == body, "nginx received a different body"


@test
def nginx_post_then_get_same_connection(env):
    ng, px = start(env)
    c = env.client(px)
    bodies = [os.urandom(1000 * (i + 1)) for i in range(3)]
    for b in bodies:
        c.send(request("POST", "/upload", body=b))
        r = c.read_response()
        assert r.status == 200, r
        c.send(request("GET", "/static/file.bin"))
        r = c.read_response()
        assert r.status == 200 and r.body == ng.static
    assert wait_until(lambda: len(ng.bodies()) == 3, 2)
    assert sorted(ng.bodies(), key=len) == bodies


@test
def nginx_dot_segments_do_not_bypass_inspection(env):
    """nginx resolves /static/../ingest to /ingest: through consentgate, a
    pass route's prefix must not carry a denied person's record there."""
    ng, px = start(env)  # DEFAULT_CONSENT: u1 is allowed, nobody else
    rec = b'{"author_id":"unknown-person-7","text":"must not reach /ingest"}\n'
    for target in ("/static/../ingest", "/static/%2e%2e/ingest",
                   "/r200/../ingest"):
        c = env.client(px)
        c.send(request("POST", target, [("Content-Type", "application/x-ndjson")],
                       rec))
        r = c.read_response()
        c.close()
        time.sleep(0.05)
        leaked = [b for b in ng.bodies() if b"unknown-person-7" in b]
        assert not leaked, ("%s: status %d, nginx's /ingest received the "
                            "record of a person without consent" % (target, r.status))


if __name__ == "__main__":
    main()
