#!/usr/bin/env python3
"""bench-web-load.py — an open-loop HTTP GET load generator for scripts/bench (BENCH_ONLY=web).

    bench-web-load.py HOST:PORT PATH RATE SECONDS [CONNECTIONS]

Requests are due at fixed times (RATE per second, evenly spaced) and handed to CONNECTIONS
worker threads, each with its own keep-alive connection (reconnecting when the server closes
it). Latency is measured from the time a request was *due*, not from when it was sent, so a
stalled server shows up in the tail instead of silently slowing the load (coordinated omission).
Prints one JSON object: count, errors, and latency percentiles in milliseconds.
"""
import json
import queue
import socket
import sys
import threading
import time


def read_response(sock, buf):
    """Reads one Content-Length-framed response; returns (status, keep_alive, rest)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "-1"))
    if length < 0:  # no length: read to the end
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return status, False, b""
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-body")
        rest += chunk
    keep = headers.get("connection", "").lower() != "close" and lines[0].startswith("HTTP/1.1")
    return status, keep, rest[length:]


def main():
    hostport, path, rate, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    conns = int(sys.argv[5]) if len(sys.argv) > 5 else 8
    host, port = hostport.rsplit(":", 1)
    req = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    due = queue.Queue()
    lat, errors = [], [0]
    lock = threading.Lock()

    def worker():
        sock, buf = None, b""
        while True:
            t = due.get()
            if t is None:
                return
            delay = t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                if sock is None:
                    sock = socket.create_connection((host, int(port)), timeout=10)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    buf = b""
                sock.sendall(req)
                status, keep, buf = read_response(sock, buf)
                done = time.monotonic()
                with lock:
                    if status == 200:
                        lat.append((done - t) * 1000.0)
                    else:
                        errors[0] += 1
                if not keep:
                    sock.close()
                    sock = None
            except (OSError, ConnectionError, ValueError, IndexError):
                with lock:
                    errors[0] += 1
                if sock is not None:
                    sock.close()
                sock = None

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(conns)]
    for th in threads:
        th.start()
    start = time.monotonic() + 0.2
    n = int(rate * seconds)
    for i in range(n):
        t = start + i / rate
        # Hand out due times a little ahead, never far: the queue is the schedule.
        while t - time.monotonic() > 0.05:
            time.sleep(0.01)
        due.put(t)
    for _ in threads:
        due.put(None)
    for th in threads:
        th.join()
    lat.sort()

    def pct(p):
        if not lat:
            return None
        return round(lat[min(len(lat) - 1, int(p / 100.0 * len(lat)))], 3)

    print(json.dumps({
        "count": len(lat), "errors": errors[0], "rate": rate, "seconds": seconds,
        "connections": conns, "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99),
        "max_ms": round(lat[-1], 3) if lat else None,
    }))


if __name__ == "__main__":
    main()
