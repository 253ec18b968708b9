#!/usr/bin/env python3
"""The two sides .ci/package needs around an installed hub (stdlib only).

fake-wechat PORT APP_ID APP_SECRET
    A fake WeChat on 127.0.0.1:PORT speaking WeChat's real paths:
    POST /cgi-bin/stable_token, GET /sns/jscode2session,
    POST /wxa/getwxacodeunlimit. It refuses any other app id or secret, so a
    login through it proves the hub read the secret the operator set. A code
    "code-for-NAME" belongs to the person with openid "o-NAME"; each code
    works once, as at WeChat.

login HUB CLIENT_ID CLIENT_SECRET ORIGIN PERSON N
    One login (the person's N-th; each uses a fresh code) through the hub's public API, as a browser, a phone and the
    site's backend make it: create a scene, fetch its code image, scan and
    confirm with a wx.login code, read the ticket from the browser's
    long-poll, redeem it with the client credentials. Prints the redeemed
    user as JSON.
"""

import base64
import json
import struct
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TIMEOUT = 10


def png_1x1():
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x00")
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
            + chunk(b"IEND", b""))


def fake_wechat(port, app_id, app_secret):
    token = "ACCESS_TOKEN_" + base64.urlsafe_b64encode(app_id.encode()).decode()
    used = set()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):
            sys.stderr.write("fake-wechat: " + fmt % args + "\n")

        def answer(self, body, content_type="application/json"):
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def error(self, code, msg):
            self.answer({"errcode": code, "errmsg": msg})

        def body(self):
            length = min(int(self.headers.get("Content-Length") or 0), 65536)
            try:
                return json.loads(self.rfile.read(length) or b"null")
            except ValueError:
                return None

        def do_POST(self):
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            body = self.body()
            if url.path == "/cgi-bin/stable_token":
                if not isinstance(body, dict) or body.get("grant_type") != "client_credential":
                    return self.error(40002, "invalid grant_type")
                if body.get("appid") != app_id:
                    return self.error(40013, "invalid appid")
                if body.get("secret") != app_secret:
                    return self.error(40125, "invalid appsecret")
                return self.answer({"access_token": token, "expires_in": 7200})
            if url.path == "/wxa/getwxacodeunlimit":
                if query.get("access_token") != [token]:
                    return self.error(40001, "invalid credential, access_token is invalid")
                if not isinstance(body, dict) or not body.get("scene"):
                    return self.error(40169, "invalid length for scene")
                return self.answer(png_1x1(), "image/png")
            self.error(-1, "not found")

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
            if url.path != "/sns/jscode2session":
                return self.error(-1, "not found")
            if query.get("appid") != app_id or query.get("secret") != app_secret:
                return self.error(40125, "invalid appsecret")
            code = query.get("js_code", "")
            with lock:
                fresh = code.startswith("code-for-") and code not in used
                used.add(code)
            if not fresh:
                return self.error(40029, "invalid code")
            person = code[len("code-for-"):].split(".")[0]
            key = base64.b64encode(person.encode().ljust(16, b"k")[:16]).decode()
            self.answer({"openid": "o-" + person, "session_key": key})

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.serve_forever()


def call(method, url, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT + 35) as res:
            return res.status, res.headers.get("Content-Type", ""), res.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


def expect(status, want, what, raw):
    if status != want:
        sys.exit(f"{what}: HTTP {status}, expected {want}: {raw[:500]!r}")


def login(hub, client_id, client_secret, origin, person, attempt):
    status, _, raw = call("POST", f"{hub}/api/v1/scenes", {"client_id": client_id},
                          {"Origin": origin})
    expect(status, 201, "create scene", raw)
    scene = json.loads(raw)
    sid = scene["scene_id"]
    status, ctype, raw = call("GET", f"{hub}/api/v1/scenes/{sid}/qrcode")
    expect(status, 200, "code image", raw)
    if ctype != "image/png" or not raw.startswith(b"\x89PNG"):
        sys.exit(f"code image: {ctype}, {raw[:16]!r}")
    code = f"code-for-{person}.{attempt}"
    status, _, raw = call("POST", f"{hub}/api/v1/mp/scan", {"scene_id": sid, "code": code})
    expect(status, 200, "scan", raw)
    scanned = json.loads(raw)
    if scanned["state"] != "scanned" or scanned["client"]["id"] != client_id:
        sys.exit(f"scan: {scanned}")
    status, _, raw = call("POST", f"{hub}/api/v1/mp/confirm",
                          {"scene_id": sid, "mp_token": scanned["mp_token"],
                           "profile": {"nickname": person}})
    expect(status, 200, "confirm", raw)
    auth = {"Authorization": "Bearer " + scene["browser_token"]}
    after = "waiting"
    for _ in range(5):
        status, _, raw = call("GET", f"{hub}/api/v1/scenes/{sid}/events?after={after}&wait=10",
                              headers=auth)
        expect(status, 200, "events", raw)
        event = json.loads(raw)
        after = event["state"]
        if after == "confirmed":
            break
    else:
        sys.exit(f"the browser never saw confirmed: {event}")
    basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
    status, _, raw = call("POST", f"{hub}/api/v1/tickets/redeem", {"ticket": event["ticket"]},
                          {"Authorization": "Basic " + basic})
    expect(status, 200, "redeem", raw)
    redeemed = json.loads(raw)
    if redeemed["user"]["identities"][0]["openid"] != "o-" + person:
        sys.exit(f"redeem: {redeemed}")
    print(json.dumps(redeemed["user"]))


def main():
    if sys.argv[1:2] == ["fake-wechat"] and len(sys.argv) == 5:
        fake_wechat(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    elif sys.argv[1:2] == ["login"] and len(sys.argv) == 8:
        login(*sys.argv[2:7], sys.argv[7])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
