"""tlsfiles.py: certificates for the TLS tests, made by the openssl command
line exactly as the README shows a new user (EC P-256 keys, a private CA,
certificates with subjectAltName), plus the ones only a test needs: a
second CA nobody trusts, and an expired client certificate (`openssl ca`
with explicit dates, since `openssl x509` cannot backdate).
"""

import os
import subprocess


def _run(args, cwd):
    r = subprocess.run(args, cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    if r.returncode != 0:
        raise AssertionError("%s failed: %s" % (" ".join(args),
                                                r.stdout.decode()[-400:]))


def _key(d, name):
    _run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
          "ec_paramgen_curve:P-256", "-out", name + ".key"], d)


def make_ca(d, name, cn):
    _key(d, name)
    _run(["openssl", "req", "-x509", "-new", "-key", name + ".key",
          "-out", name + ".pem", "-days", "30", "-subj", "/CN=" + cn], d)
    return os.path.join(d, name + ".pem")


def make_cert(d, ca, name, cn, san, client=False):
    """A certificate for name signed by ca; san like 'DNS:localhost'."""
    _key(d, name)
    _run(["openssl", "req", "-new", "-key", name + ".key", "-out",
          name + ".csr", "-subj", "/CN=" + cn], d)
    ext = os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        if san:
            f.write("subjectAltName=%s\n" % san)
        f.write("extendedKeyUsage=%s\n" % ("clientAuth" if client
                                           else "serverAuth"))
    _run(["openssl", "x509", "-req", "-in", name + ".csr", "-CA",
          ca + ".pem", "-CAkey", ca + ".key", "-CAcreateserial", "-out",
          name + ".pem", "-days", "30", "-extfile", ext], d)
    return os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")


def make_expired_cert(d, ca, name, cn):
    """A client certificate valid only in 2020."""
    _key(d, name)
    _run(["openssl", "req", "-new", "-key", name + ".key", "-out",
          name + ".csr", "-subj", "/CN=" + cn], d)
    db = os.path.join(d, "cadb-" + name)
    os.makedirs(db)
    open(os.path.join(db, "index.txt"), "w").close()
    with open(os.path.join(db, "serial"), "w") as f:
        f.write("1000\n")
    conf = os.path.join(db, "ca.cnf")
    with open(conf, "w") as f:
        f.write("""[ca]
default_ca = c
[c]
dir = %s
database = $dir/index.txt
serial = $dir/serial
new_certs_dir = $dir
default_md = sha256
policy = p
copy_extensions = none
x509_extensions = ext
[p]
commonName = supplied
[ext]
extendedKeyUsage = clientAuth
""" % db)
    _run(["openssl", "ca", "-batch", "-config", conf, "-cert", ca + ".pem",
          "-keyfile", ca + ".key", "-in", name + ".csr", "-out",
          name + ".pem", "-startdate", "20200101000000Z", "-enddate",
          "20200102000000Z", "-notext"], d)
    return os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")


class Certs:
    """Everything the suite uses, made once in d."""

    def __init__(self, d):
        self.dir = d
        self.ca = make_ca(d, "ca", "consentgate test CA")
        self.other_ca = make_ca(d, "other-ca", "untrusted CA")
        self.server = make_cert(d, "ca", "server", "localhost",
                                "DNS:localhost,IP:127.0.0.1")
        # the same names from another CA: the reload test swaps it in
        self.server2 = make_cert(d, "ca", "server2", "localhost2",
                                 "DNS:localhost,IP:127.0.0.1")
        self.wrong_host = make_cert(d, "ca", "wronghost", "elsewhere",
                                    "DNS:elsewhere.example")
        self.poster = make_cert(d, "ca", "poster", "poster",
                                "URI:spiffe://example.org/poster,"
                                "DNS:poster.internal", client=True)
        self.stranger = make_cert(d, "ca", "stranger", "stranger",
                                  "DNS:stranger.internal", client=True)
        self.untrusted = make_cert(d, "other-ca", "untrusted", "poster",
                                   "URI:spiffe://example.org/poster",
                                   client=True)
        self.expired = make_expired_cert(d, "ca", "expired", "poster")
        # consentgate's own client certificate towards the upstream
        self.proxy_client = make_cert(d, "ca", "proxy", "consentgate",
                                      "URI:spiffe://example.org/consentgate",
                                      client=True)
