#!/usr/bin/env python3
"""idle.py HOST PORT N READY_FILE HOLD_S: hold N idle keep-alive connections.

Opens N connections in batches, sends one `GET /status` on each and waits
for its response, so every connection is a used keep-alive connection, then
writes "<open> <answered>" to READY_FILE and holds them for at most HOLD_S
seconds (or until SIGTERM). Every wait is bounded.
"""
import os
import selectors
import signal
import socket
import sys
import time

REQ = b"GET /status HTTP/1.1\r\nHost: bench\r\n\r\n"


def main():
    host, port, n, ready, hold = (sys.argv[1], int(sys.argv[2]),
                                  int(sys.argv[3]), sys.argv[4],
                                  float(sys.argv[5]))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sel = selectors.DefaultSelector()
    socks, answered = [], 0
    deadline = time.monotonic() + 60
    batch = 256
    for start in range(0, n, batch):
        if time.monotonic() > deadline:
            break
        pending = {}
        for _ in range(min(batch, n - start)):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect_ex((host, port))
            except OSError:
                s.close()
                continue
            sel.register(s, selectors.EVENT_WRITE)
            pending[s] = "connect"
        # Each batch gets at most 10 s to connect, send and be answered.
        bdeadline = time.monotonic() + 10
        while pending and time.monotonic() < bdeadline:
            for key, ev in sel.select(timeout=0.5):
                s = key.fileobj
                if pending.get(s) == "connect":
                    if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        sel.unregister(s)
                        s.close()
                        del pending[s]
                        continue
                    try:
                        s.send(REQ)
                    except OSError:
                        sel.unregister(s)
                        s.close()
                        del pending[s]
                        continue
                    pending[s] = "sent"
                    sel.modify(s, selectors.EVENT_READ)
                else:
                    try:
                        data = s.recv(65536)
                    except OSError:
                        data = b""
                    sel.unregister(s)
                    del pending[s]
                    if data.startswith(b"HTTP/1.1 2"):
                        answered += 1
                    if data:
                        socks.append(s)
                    else:
                        s.close()
        for s in pending:
            sel.unregister(s)
            s.close()
    with open(ready + ".tmp", "w") as f:
        f.write("%d %d\n" % (len(socks), answered))
    os.rename(ready + ".tmp", ready)
    end = time.monotonic() + hold
    while time.monotonic() < end:
        time.sleep(0.2)


if __name__ == "__main__":
    main()
