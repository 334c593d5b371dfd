#!/usr/bin/env python3
"""report.py RAW_DIR REPORT.md OUT_DIR: the Markdown report and the plot.

Reads the TSV files run.sh wrote into RAW_DIR, takes the median over the
runs of each (proxy, workload, connections), computes the ratios
consentgate/nginx and consentgate/HAProxy, writes REPORT.md and, when
gnuplot is installed, OUT_DIR/throughput.png (requests/s normalised to
nginx = 1.0). Stdlib only.
"""
import os
import shutil
import statistics
import subprocess
import sys

PROXIES = ["nginx", "haproxy", "consentgate"]
WL_DESC = {
    "get": "small GET, pass route `GET /status`",
    "ndjson-64k": "64 KiB NDJSON `POST /ingest` (5% not consented)",
    "ndjson-1m": "1 MiB NDJSON `POST /ingest` (5% not consented)",
    "profile": "one JSON record, subject in `X-Subject-Id`, `POST /profile`",
    "gzip-64k": "64 KiB NDJSON, `Content-Encoding: gzip`",
    "tls-get": "TLS both legs, small GET `GET /status`",
    "tls-ndjson-64k": "TLS both legs, 64 KiB NDJSON `POST /ingest`",
}


def read_tsv(d, name):
    path = os.path.join(d, name)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [l.rstrip("\n").split("\t") for l in f if l.strip()]


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, nd=0):
    if x is None:
        return "–"
    if nd == 0:
        return "{:,.0f}".format(x)
    return "{:,.{}f}".format(x, nd)


def ratio(a, b, nd=2):
    if a is None or b is None or b == 0:
        return "–"
    return "{:.{}f}".format(a / b, nd)


def main():
    raw, report, out = sys.argv[1], sys.argv[2], sys.argv[3]
    machine = {r[0]: r[1] for r in read_tsv(raw, "machine.tsv") if len(r) > 1}
    state = {r[0]: r[1] for r in read_tsv(raw, "state.tsv") if len(r) > 1}
    meta = {r[0]: r for r in read_tsv(raw, "meta.tsv")[1:]}
    body_of = {"get": 0, "ndjson-64k": "ndjson-64k", "ndjson-1m": "ndjson-1m",
               "profile": "profile", "gzip-64k": "gzip-64k",
               "tls-ndjson-64k": "ndjson-64k"}

    # (workload, conns) -> proxy -> list of per-run dicts
    runs = {}
    order = []
    for r in read_tsv(raw, "runs.tsv"):
        if len(r) < 12:
            continue
        p, w, c = r[0], r[1], int(r[2])
        wrk_s, cpu_s, reqs = float(r[4]), float(r[5]), int(r[6])
        key = (w, c)
        if key not in runs:
            runs[key] = {}
            order.append(key)
        m = meta.get(body_of.get(w, ""), None)
        body = int(m[1]) if m else 0
        recs = int(m[2]) if m else 0
        rps = reqs / wrk_s if wrk_s > 0 else 0
        runs[key].setdefault(p, []).append({
            "rps": rps,
            "mbps": rps * body / 1e6,
            "recps": rps * recs if recs else None,
            "p50": float(r[10]), "p99": float(r[11]),
            "cpu_us": cpu_s * 1e6 / reqs if reqs else None,
            "busy": 100.0 * cpu_s / wrk_s if wrk_s > 0 else None,
            "err": int(r[8]), "non2xx": int(r[9]), "reqs": reqs,
            "other": (100.0 * float(r[12]) / wrk_s
                      if len(r) > 12 and wrk_s > 0 else None),
        })

    summary = {}
    for key in order:
        for p, lst in runs[key].items():
            s = {k: med([x[k] for x in lst])
                 for k in ("rps", "mbps", "recps", "p50", "p99", "cpu_us", "busy",
                           "other")}
            s["err"] = sum(x["err"] for x in lst)
            s["non2xx"] = sum(x["non2xx"] for x in lst)
            s["reqs"] = sum(x["reqs"] for x in lst)
            s["n"] = len(lst)
            summary[(key, p)] = s

    L = []
    L.append("# consentgate benchmark: %s" % machine.get("date", "?"))
    L.append("")
    L.append("| | |")
    L.append("|---|---|")
    for k in ("date", "command", "nproc", "cpu", "kernel", "nginx", "haproxy",
              "wrk", "consentgate", "commit", "consent", "syscall_tool",
              "elapsed_s", "loadavg_start", "loadavg_end"):
        L.append("| %s | %s |" % (k, machine.get(k, "?").replace("|", "/")))
    L.append("")
    L.append("Proxy under test pinned to CPU 0 (`taskset -c 0`), wrk and the "
             "nginx upstream (`return 200`) to CPU 1. consentgate runs "
             "`--workers 1`, nginx `worker_processes 1`, HAProxy `nbthread 1`. "
             "Figures are medians over the runs; ratios are consentgate / peer.")
    L.append("")
    L.append("## Proxies")
    L.append("")
    tls_run = any(k.endswith("-tls") for k in state)
    if tls_run:
        L.append("| proxy | state | TLS instance (tls-* workloads) |")
        L.append("|---|---|---|")
        for p in PROXIES:
            L.append("| %s | %s | %s |" % (p, state.get(p, "not run"),
                                          state.get(p + "-tls", "not run")))
    else:
        L.append("| proxy | state |")
        L.append("|---|---|")
        for p in PROXIES:
            L.append("| %s | %s |" % (p, state.get(p, "not run")))
    L.append("")

    sanity = read_tsv(raw, "sanity.tsv")
    if sanity:
        L.append("## One request per workload (curl)")
        L.append("")
        L.append("Status code and `Consent-Result` of a single request, before the "
                 "load: shows each proxy really served the workload.")
        L.append("")
        L.append("| workload | expected (kept/dropped) | " +
                 " | ".join(PROXIES) + " |")
        L.append("|---|---|" + "---|" * len(PROXIES))
        ws = []
        for r in sanity:
            if r[1] not in ws:
                ws.append(r[1])
        for w in ws:
            m = meta.get(body_of.get(w, ""), None)
            exp = "%s/%s" % (m[3], m[4]) if m else "pass"
            cells = []
            for p in PROXIES:
                hit = [r for r in sanity if r[0] == p and r[1] == w]
                if not hit:
                    cells.append("–")
                else:
                    r = hit[0]
                    cell = r[2] + ("" if r[3] == "-" else " `%s`" % r[3])
                    if p == "consentgate" and m:
                        want = "kept=%s, dropped=%s" % (m[3], m[4])
                        ok = r[3].replace(" ", "") == want.replace(" ", "")
                        cell += " ✓" if ok and r[2].startswith("2") else \
                            " ✗ (want `%s`)" % want
                    cells.append(cell)
            L.append("| %s | %s | %s |" % (w, exp, " | ".join(cells)))
        L.append("")
        tls = [r for r in sanity if r[1].startswith("tls-") and len(r) >= 6]
        if tls:
            L.append("TLS negotiated on each leg of that request: wrk/curl → "
                     "proxy (curl's verbose output; wrk uses the same OpenSSL "
                     "defaults) and proxy → upstream (the upstream's "
                     "`$ssl_protocol $ssl_cipher`, echoed in `X-Upstream-TLS`; "
                     "`?` = not seen).")
            L.append("")
            L.append("| workload | proxy | client → proxy | proxy → upstream |")
            L.append("|---|---|---|---|")
            for r in tls:
                L.append("| %s | %s | %s | %s |" % (r[1], r[0], r[4], r[5]))
            L.append("")

    tls_keys = [k for k in order if k[0].startswith("tls-")]
    if tls_keys:
        L.append("## TLS summary")
        L.append("")
        L.append("Each proxy terminates TLS from wrk and re-encrypts to the "
                 "upstream nginx's TLS port (chain and host name verified, "
                 "keep-alive on both legs). Goal: consentgate at least "
                 "nginx's requests/s on `tls-get`. Medians; details per "
                 "connection count below.")
        L.append("")
        L.append("| workload | conns | nginx req/s | HAProxy req/s | "
                 "consentgate req/s | MB/s nginx / HAProxy / consentgate | "
                 "cg/nginx req/s | cg/HAProxy req/s | cg/nginx CPU µs/req | "
                 "vs goal |")
        L.append("|---|---:|---:|---:|---:|---|---:|---:|---:|---|")
        for key in tls_keys:
            w, c = key
            s_ = {p: summary.get((key, p)) for p in PROXIES}
            g = lambda p, k: s_[p][k] if s_[p] else None
            verdict = ""
            cg, ng = g("consentgate", "rps"), g("nginx", "rps")
            if w == "tls-get" and cg and ng:
                verdict = ("met (+%.0f%%)" % (100 * (cg / ng - 1)) if cg >= ng
                           else "missed by %.0f%%" % (100 * (1 - cg / ng)))
            errs = sum((s_[p]["err"] + s_[p]["non2xx"]) for p in PROXIES
                       if s_[p])
            if errs:
                verdict += " ⚠ %d errors" % errs
            L.append("| %s | %d | %s | %s | %s | %s / %s / %s | %s | %s | %s | %s |" % (
                w, c, fmt(ng), fmt(g("haproxy", "rps")), fmt(cg),
                fmt(g("nginx", "mbps"), 1), fmt(g("haproxy", "mbps"), 1),
                fmt(g("consentgate", "mbps"), 1), ratio(cg, ng),
                ratio(cg, g("haproxy", "rps")),
                ratio(g("consentgate", "cpu_us"), g("nginx", "cpu_us")),
                verdict))
        L.append("")
        stalls = read_tsv(raw, "stalls.tsv")
        if stalls:
            L.append("wrk stalled (completed no request, no error) and the run "
                     "was repeated %d time%s: %s." % (
                         len(stalls), "" if len(stalls) == 1 else "s",
                         "; ".join(r[0] for r in stalls)))
            L.append("")

    L.append("## Throughput and latency")
    L.append("")
    L.append("MB/s counts request body bytes sent by the client; records/s = "
             "requests/s × records per body. *busy* is the proxy's CPU time "
             "over the run's wall time: near 100% means the proxy core was the "
             "bottleneck, well below means the load generator or upstream "
             "(sharing CPU 1) was. *other* is CPU time other processes took "
             "on CPU 0 during the run (user+system, excluding interrupts): "
             "above a few % the machine was not quiet and the figures are "
             "noisy. *req per CPU-s* = 10⁶ / CPU µs per request: the capacity of "
             "one core, the fairer comparison when the machine was busy. *errors* are socket errors + non-2xx "
             "responses summed over all runs: a run with errors is not a fair "
             "throughput figure.")
    L.append("")
    for key in order:
        w, c = key
        L.append("### %s — %d connection%s" % (WL_DESC.get(w, w), c,
                                                "" if c == 1 else "s"))
        L.append("")
        L.append("| proxy | req/s | MB/s | records/s | p50 µs | p99 µs | "
                 "CPU µs/req | req per CPU-s | busy % | other % | errors | runs |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for p in PROXIES:
            s = summary.get((key, p))
            if not s:
                L.append("| %s | %s |" % (p, state.get(p, "not run")) +
                         " |" * 10)
                continue
            errs = s["err"] + s["non2xx"]
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s%s | %d |" % (
                p, fmt(s["rps"]), fmt(s["mbps"], 1), fmt(s["recps"]),
                fmt(s["p50"]), fmt(s["p99"]), fmt(s["cpu_us"], 1),
                fmt(1e6 / s["cpu_us"] if s["cpu_us"] else None),
                fmt(s["busy"]), fmt(s["other"]),
                fmt(errs) if s["reqs"] else "no response",
                " ⚠" if errs or not s["reqs"] else "", s["n"]))
        cg = summary.get((key, "consentgate"))
        for peer in ("nginx", "haproxy"):
            ps = summary.get((key, peer))
            if cg and ps:
                L.append("| *consentgate/%s* | %s | %s | %s | %s | %s | %s |" % (
                    peer, ratio(cg["rps"], ps["rps"]), ratio(cg["mbps"], ps["mbps"]),
                    ratio(cg["recps"], ps["recps"]), ratio(cg["p50"], ps["p50"]),
                    ratio(cg["p99"], ps["p99"]), ratio(cg["cpu_us"], ps["cpu_us"])) +
                    " %s | | | | |" % ratio(ps["cpu_us"], cg["cpu_us"]))
        L.append("")

    sc = read_tsv(raw, "syscalls.tsv")
    if sc:
        tool = sc[0][4] if len(sc[0]) > 4 else "?"
        L.append("## System calls per request")
        L.append("")
        L.append("Counted with %s over a separate 2 s run at 64 connections "
                 "(all threads of the proxy process; nginx: its worker)." % (
                     "`perf stat -e raw_syscalls:sys_enter`" if tool == "perf"
                     else "`strace -c -f`"))
        L.append("")
        L.append("| workload | " + " | ".join(PROXIES) +
                 " | cg/nginx | cg/haproxy |")
        L.append("|---|" + "---:|" * (len(PROXIES) + 2))
        per = {}
        ws = []
        for r in sc:
            calls, reqs = int(r[2] or 0), int(r[3] or 0)
            per[(r[0], r[1])] = calls / reqs if reqs else None
            if r[1] not in ws:
                ws.append(r[1])
        for w in ws:
            v = [per.get((p, w)) for p in PROXIES]
            L.append("| %s | %s | %s | %s |" % (
                w, " | ".join(fmt(x, 1) for x in v), ratio(v[2], v[0]),
                ratio(v[2], v[1])))
        L.append("")

    mem = {r[0]: int(r[1] or 0) for r in read_tsv(raw, "mem.tsv") if len(r) > 1}
    idle = {r[0]: r for r in read_tsv(raw, "idle.tsv")}
    if mem or idle:
        L.append("## Memory")
        L.append("")
        L.append("Peak RSS is VmHWM after the idle-connection test and all load runs. Idle connections (tested first, on a fresh process): "
                 "each opened, one `GET /status` answered, then held; RSS per "
                 "connection = (VmRSS while held − VmRSS before) / connections "
                 "held open.")
        L.append("")
        L.append("| proxy | peak RSS MiB | idle conns asked | held | answered 2xx "
                 "| RSS before MiB | RSS held MiB | bytes per idle conn |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|")

        per_conn = {}
        for p in PROXIES:
            hwm = mem.get(p)
            r = idle.get(p)
            if r:
                held, before, during = int(r[2]), int(r[4] or 0), int(r[5] or 0)
                per_conn[p] = (during - before) * 1024 / held if held else None
                L.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                    p, fmt(hwm / 1024 if hwm else None, 1), r[1], r[2], r[3],
                    fmt(before / 1024, 1), fmt(during / 1024, 1),
                    fmt(per_conn[p])))
            elif hwm:
                L.append("| %s | %s | | | | | | |" % (p, fmt(hwm / 1024, 1)))
        for p in PROXIES:
            # the TLS instances: peak only (the idle test is plain HTTP)
            if mem.get(p + "-tls"):
                L.append("| %s (TLS instance) | %s | | | | | | |" % (
                    p, fmt(mem[p + "-tls"] / 1024, 1)))
        if "consentgate" in per_conn:
            L.append("")
            L.append("Bytes per idle connection, consentgate/nginx %s, "
                     "consentgate/HAProxy %s; peak RSS consentgate/nginx %s, "
                     "consentgate/HAProxy %s." % (
                         ratio(per_conn.get("consentgate"), per_conn.get("nginx")),
                         ratio(per_conn.get("consentgate"), per_conn.get("haproxy")),
                         ratio(mem.get("consentgate"), mem.get("nginx")),
                         ratio(mem.get("consentgate"), mem.get("haproxy"))))
        L.append("")

    micro = read_tsv(raw, "micro.tsv")
    if micro:
        L.append("## Micro-benchmarks")
        L.append("")
        scan = [r for r in micro if r[0] == "scan" and len(r) >= 4]
        cons = [r for r in micro if r[0] == "consent" and len(r) >= 4]
        missing = [r[1] for r in micro if r[0] == "missing"]
        if scan:
            L.append("| scanner | MB/s | records/s |")
            L.append("|---|---:|---:|")
            for r in scan:
                L.append("| %s | %s | %s |" % (r[1], r[2], r[3]))
            L.append("")
        if cons:
            L.append("| consent table people | metric | value |")
            L.append("|---:|---|---:|")
            for r in cons:
                L.append("| %s | %s | %s |" % (r[1], r[2], r[3]))
            L.append("")
        if missing:
            L.append("Not built: %s." % ", ".join(missing))
            L.append("")

    # Plot: requests/s normalised to nginx per workload and connections.
    dat = os.path.join(out, "throughput.dat")
    rows = []
    for key in order:
        base = summary.get((key, "nginx"))
        if not base or not base["rps"]:
            continue
        vals = []
        for p in PROXIES:
            s = summary.get((key, p))
            vals.append("%.3f" % (s["rps"] / base["rps"]) if s else "NaN")
        for p in PROXIES:
            s = summary.get((key, p))
            ok = s and s["cpu_us"] and base["cpu_us"]
            vals.append("%.3f" % (base["cpu_us"] / s["cpu_us"]) if ok else "NaN")
        rows.append("%s/c%d\t%s" % (key[0], key[1], "\t".join(vals)))
    png = os.path.join(out, "throughput.png")
    if rows:
        with open(dat, "w") as f:
            f.write("workload\t" + "\t".join(PROXIES) + "\t" +
                    "\t".join(PROXIES) + "\n")
            f.write("\n".join(rows) + "\n")
        gp = os.path.join(os.path.dirname(os.path.abspath(__file__)), "plot.gp")
        if shutil.which("gnuplot"):
            res = subprocess.run(
                ["gnuplot", "-e", "datafile='%s'; outfile='%s'" % (dat, png), gp],
                capture_output=True, text=True)
            if res.returncode == 0:
                L.append("## Plot")
                L.append("")
                L.append("![requests/s and requests per CPU-second, normalised "
                         "to nginx](throughput.png)")
                L.append("")
            else:
                L.append("gnuplot failed: %s" % res.stderr.strip()[:200])
        else:
            L.append("gnuplot not installed: no plot.")
    with open(report, "w") as f:
        f.write("\n".join(L) + "\n")


if __name__ == "__main__":
    main()
