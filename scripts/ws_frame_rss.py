#!/usr/bin/env python3
"""RSS of a scanlogin hub under the 1 GiB-frame attack.

usage: scripts/ws_frame_rss.py BINARY CONFIG [CONNECTIONS] [MB_EACH]
Starts BINARY serve on a free loopback port (own temp data folder), creates
one scene, then CONNECTIONS sockets each send a text frame header declaring
1 GiB and stream up to MB_EACH MB of junk before auth. Prints VmRSS before,
VmHWM (peak) and VmRSS after, and how each connection ended. Bounded: every
socket op has a timeout, the hub is killed at the end.
"""
import json, os, socket, struct, subprocess, sys, tempfile, threading, time, urllib.request

binary, config = sys.argv[1], sys.argv[2]
conns = int(sys.argv[3]) if len(sys.argv) > 3 else 10
mb_each = int(sys.argv[4]) if len(sys.argv) > 4 else 64

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])  # kB

port = free_port(); base = f"http://127.0.0.1:{port}"
tmp = tempfile.mkdtemp()
env = dict(os.environ,
           SCANLOGIN__SERVER__BIND=f"127.0.0.1:{port}",
           SCANLOGIN__SERVER__PUBLIC_URL=base,
           SCANLOGIN__DATABASE__URL=f"sqlite://{tmp}/hub.db",
           SCANLOGIN__SERVER__SECRET_KEY_FILE=f"{tmp}/secret.key",
           SCANLOGIN__SERVER__WORKERS="2")
env.pop("RUST_LOG", None)
hub = subprocess.Popen([binary, "serve", "--config", config], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    for _ in range(200):
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1); break
        except Exception:
            time.sleep(0.1)
    req = urllib.request.Request(base + "/api/v1/scenes", method="POST",
                                 data=json.dumps({"client_id": "demo"}).encode(),
                                 headers={"Content-Type": "application/json", "Origin": base})
    scene = json.load(urllib.request.urlopen(req, timeout=5))["scene_id"]
    time.sleep(0.5)
    before = status(hub.pid, "VmRSS")

    results = [None] * conns
    def attack(i):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall((f"GET /api/v1/scenes/{scene}/ws HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   f"Connection: Upgrade\r\nUpgrade: websocket\r\nOrigin: {base}\r\n"
                   "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").encode())
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += s.recv(1)
        assert head.startswith(b"HTTP/1.1 101"), head
        started = time.monotonic()
        s.sendall(bytes([0x81, 0xFF]) + struct.pack(">Q", 1 << 30) + b"\x01\x02\x03\x04")
        junk, sent = b"\x5a" * 65536, 0
        try:
            while sent < mb_each << 20:
                s.sendall(junk); sent += len(junk)
        except OSError as e:
            pass
        # What the hub said, within 15 s (the old hub's auth timeout is 10 s).
        s.settimeout(15)
        got = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk: break
                got += chunk
        except OSError:
            pass
        code = struct.unpack(">H", got[2:4])[0] if len(got) >= 4 and got[0] & 0x0F == 8 else None
        results[i] = (sent >> 10, code, round(time.monotonic() - started, 1))
        s.close()

    threads = [threading.Thread(target=attack, args=(i,)) for i in range(conns)]
    for t in threads: t.start()
    peak_seen = before
    while any(t.is_alive() for t in threads):
        peak_seen = max(peak_seen, status(hub.pid, "VmRSS")); time.sleep(0.05)
    time.sleep(0.5)
    print(f"binary={binary} connections={conns} junk_each={mb_each} MB")
    print(f"VmRSS before attack: {before} kB")
    print(f"VmHWM (peak RSS) during attack: {status(hub.pid, 'VmHWM')} kB (sampled VmRSS max {peak_seen} kB)")
    print(f"VmRSS after attack: {status(hub.pid, 'VmRSS')} kB")
    for i, r in enumerate(results):
        print(f"  conn {i}: junk accepted {r[0]} KiB, close code {r[1]}, ended after {r[2]} s")
finally:
    hub.kill(); hub.wait()
