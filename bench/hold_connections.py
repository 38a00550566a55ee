#!/usr/bin/env python3
"""Holds connections open against a server on loopback, the way idle and slow clients do, for a bounded time.

  hold_connections.py PORT --idle N --slow M --seconds S [--sources K]

- idle: each connection sends one GET /healthz, reads the answer, then stays open sending nothing
  (an idle keep-alive client); when the server closes it, it is opened again.
- slow ("slowloris"): each connection sends a request line, then one header byte a second, never
  finishing; when the server closes it, the time it was held is recorded and it is opened again.
Connections come from K source addresses 127.0.0.2 .. 127.0.0.(K+1), so a per-address cap on the server
meets them as it would meet K clients. Only 127.0.0.0/8 is ever contacted. At the end it prints one line:
RESULT <idle open> <slow open> <slow closed by server> <median s a slow one was held> <max s> <refused>
"""
import argparse
import selectors
import socket
import statistics
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--idle", type=int, default=1000)
    ap.add_argument("--slow", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--sources", type=int, default=20)
    ap.add_argument("--ready-file", default="")
    a = ap.parse_args()
    sel = selectors.DefaultSelector()
    held = []  # seconds each slow connection lasted before the server closed it
    refused = 0
    opened = 0
    state = {}  # socket -> dict(kind, opened, stage)

    def source():
        nonlocal opened
        opened += 1
        return "127.0.0.%d" % (2 + opened % a.sources)

    def open_one(kind):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((source(), 0))
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", a.port))
        except BlockingIOError:
            pass
        st = {"kind": kind, "opened": time.monotonic(), "sent": False, "buf": b""}
        state[s] = st
        sel.register(s, selectors.EVENT_WRITE | selectors.EVENT_READ, st)

    def close(s):
        sel.unregister(s)
        del state[s]
        s.close()

    for _ in range(a.idle):
        open_one("idle")
    for _ in range(a.slow):
        open_one("slow")
    end = time.monotonic() + a.seconds
    next_byte = time.monotonic() + 1
    ready_written = False
    while time.monotonic() < end:
        for key, events in sel.select(timeout=0.2):
            s, st = key.fileobj, key.data
            if events & selectors.EVENT_WRITE and not st["sent"]:
                try:
                    if st["kind"] == "idle":
                        s.send(b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n")
                    else:
                        s.send(b"GET /healthz HTTP/1.1\r\nX-a: ")
                except OSError:
                    close(s)
                    open_one(st["kind"])
                    continue
                st["sent"] = True
                sel.modify(s, selectors.EVENT_READ, st)
                continue
            if events & selectors.EVENT_READ:
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if data:
                    st["buf"] += data
                    if b" 429 " in st["buf"][:16]:
                        refused += 1
                    continue
                if st["kind"] == "slow":
                    held.append(time.monotonic() - st["opened"])
                close(s)
                open_one(st["kind"])
        now = time.monotonic()
        if now >= next_byte:
            next_byte = now + 1
            for s, st in list(state.items()):
                if st["kind"] == "slow" and st["sent"]:
                    try:
                        s.send(b"b")
                    except OSError:
                        pass
        if a.ready_file and not ready_written and now > end - a.seconds + 2:
            open(a.ready_file, "w").close()
            ready_written = True
    idle_open = sum(1 for st in state.values() if st["kind"] == "idle")
    slow_open = sum(1 for st in state.values() if st["kind"] == "slow")
    med = statistics.median(held) if held else 0
    mx = max(held) if held else 0
    print(f"RESULT {idle_open} {slow_open} {len(held)} {med:.1f} {mx:.1f} {refused}")
    for s in list(state):
        close(s)


if __name__ == "__main__":
    sys.exit(main())
