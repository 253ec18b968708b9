// Shared by the suites: start the real hub binary on a free port with its own
// temp SQLite database, a tiny site on another origin, the phone's side of the
// API from node, and headless Chromium. Every wait here is bounded.
"use strict";

const { spawn } = require("node:child_process");
const fs = require("node:fs");
const http = require("node:http");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");

const WEB = path.resolve(__dirname, "..");
const REPO = path.resolve(WEB, "..");
const HUB_BIN = path.resolve(WEB, process.env.SCANLOGIN_BIN || "../target/debug/scanlogin");
const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const ARTIFACTS = path.join(REPO, "tests", "artifacts");
const CLIENT_SECRET = "demo-client-secret"; // config.toml's demo client
const SECRET_KEY = "browser-suite-secret-key-0123456789abcdef";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Hubs still running when this process ends (a failed test) are killed with it.
const running = new Set();
process.on("exit", () => {
  for (const proc of running) proc.kill("SIGKILL");
});

/** A TCP port free on 127.0.0.1 right now. */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Polls `check` every 100 ms until it returns a truthy value or `ms` pass. */
async function until(what, check, ms = 10000) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      if (e && e.fatal) throw e; // waiting longer cannot help
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${last.message}` : ""}`);
    await sleep(100);
  }
}

/** The caller's environment without any SCANLOGIN__ setting (hubs get only the test's). */
function cleanEnv() {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith("SCANLOGIN__") && k !== "RUST_LOG") env[k] = v;
  }
  return env;
}

/**
 * Starts the hub binary. `opts`: port (default free), dir (temp dir holding
 * the database; default new), ttl (scene TTL in s), origins (allowed origins
 * of client demo; ownOrigin adds the hub's own), env (more SCANLOGIN__
 * variables). Returns { url, port, dir, env, proc, stop(), log() }.
 *
 * The hub's URL must be known before it starts (it is its public_url), so
 * this process binds the port first (127.0.0.1:0, or opts.port), keeps the
 * listener and hands it to the hub by systemd socket activation (fd 3,
 * LISTEN_FDS, LISTEN_PID; docs/deploy.md): no other process can take the
 * port in between, so there is nothing to retry. The hub is ready once its
 * own log says it listens there and /healthz answers.
 */
async function startHub(opts = {}) {
  if (!fs.existsSync(HUB_BIN)) throw new Error(`hub binary not found at ${HUB_BIN}: run cargo build or set SCANLOGIN_BIN`);
  const listener = await listen(opts.port || 0);
  try {
    return await startHubOn(listener, opts);
  } finally {
    if (listener.listening) listener.close();
  }
}

/** A TCP server listening on 127.0.0.1:`port` (0: any free port). */
function listen(port) {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen({ port, host: "127.0.0.1", exclusive: true }, () => resolve(srv));
  });
}

/**
 * Runs the hub binary with `listener` at fd 3 as systemd socket activation
 * does: spawn's stdio passes it (by its fd: node has no public way to pass a
 * listening server) as the child's stdin, and a `sh` moves it to fd 3, sets
 * LISTEN_PID to its own pid ($$) and execs the hub, which keeps that pid.
 */
function spawnActivated(listener, args, options) {
  const fd = listener._handle && listener._handle.fd;
  if (!(fd >= 0)) throw new Error("the listener has no file descriptor to hand over");
  const script = 'exec 3<&0 </dev/null; LISTEN_FDS=1 LISTEN_PID=$$ exec "$0" "$@"';
  return spawn("/bin/sh", ["-c", script, HUB_BIN, ...args], {
    ...options,
    stdio: [fd, ...options.stdio.slice(1)],
  });
}

async function startHubOn(listener, opts) {
  const { port } = listener.address();
  const dir = opts.dir || fs.mkdtempSync(path.join(os.tmpdir(), "scanlogin-web-"));
  const url = `http://127.0.0.1:${port}`;
  const origins = [...(opts.origins || []), ...(opts.ownOrigin ? [url] : [])];
  const env = {
    ...cleanEnv(),
    // Ignored while the hub takes the socket it is handed; a hub that bound
    // it itself would fail ("address in use").
    SCANLOGIN__SERVER__BIND: `127.0.0.1:${port}`,
    SCANLOGIN__SERVER__PUBLIC_URL: url,
    SCANLOGIN__SERVER__SECRET_KEY: SECRET_KEY,
    SCANLOGIN__SERVER__SHUTDOWN_TIMEOUT_SECS: "3",
    SCANLOGIN__DATABASE__URL: `sqlite://${path.join(dir, "hub.db")}`,
    SCANLOGIN__SCENE__TTL_SECS: String(opts.ttl || 300),
    SCANLOGIN__RATE_LIMIT__SCENES_PER_MINUTE: "600",
    SCANLOGIN__RATE_LIMIT__BURST: "100",
    // Warnings, and the one line saying where the hub listens.
    SCANLOGIN__LOG__LEVEL: "warn,scanlogin::startup=info",
    ...(origins.length ? { SCANLOGIN__CLIENTS__0__ALLOWED_ORIGINS: JSON.stringify(origins) } : {}),
    ...(opts.env || {}),
  };
  const logFile = path.join(dir, "hub.log");
  const out = fs.openSync(logFile, "a");
  const from = fs.fstatSync(out).size; // this start's part of the log
  const proc = spawnActivated(listener, ["serve", "--config", path.join(REPO, "config.toml")], {
    cwd: dir,
    env,
    stdio: ["ignore", out, out],
  });
  // The hub holds its own copy now; closed in the same tick, so this process
  // never accepts one of the hub's connections.
  listener.close();
  fs.closeSync(out);
  running.add(proc);
  let exited = null;
  proc.on("exit", (code, signal) => {
    exited = { code, signal };
    running.delete(proc);
  });
  const log = () => fs.readFileSync(logFile, "utf8");
  const listening = new RegExp(`scanlogin listening.*127\\.0\\.0\\.1:${port}\\b`);
  await until(
    `hub on ${url}`,
    async () => {
      if (exited) {
        const err = new Error(`hub exited (${JSON.stringify(exited)}):\n${log()}`);
        err.fatal = true;
        throw err;
      }
      if (!listening.test(log().slice(from))) return false;
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
      return res.ok;
    },
    20000,
  ).catch((e) => {
    proc.kill("SIGKILL");
    throw e;
  });
  /** SIGTERM, then wait (at most 10 s) for the process to end; SIGKILL after. */
  async function stop() {
    if (exited) return exited;
    const done = new Promise((r) => proc.once("exit", (code, signal) => r({ code, signal })));
    proc.kill("SIGTERM");
    const t = setTimeout(() => proc.kill("SIGKILL"), 10000);
    const result = await done;
    clearTimeout(t);
    return result;
  }
  return { url, port, dir, proc, stop, log, exited: () => exited };
}

/**
 * A site on its own origin: GET / is a page that embeds the hub's widget as
 * client demo. Query: lang. The page records window.states ([state, sceneId])
 * and window.logins (each onLogin argument), and keeps window.handle.
 */
async function startSite(hub) {
  // The hub's URL, or a function giving it (known once the hub started).
  const hubUrlNow = typeof hub === "function" ? hub : () => hub;
  const page = (lang, hubUrl = hubUrlNow()) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Test site</title>
<style>body{font-family:system-ui,sans-serif;margin:24px;background:#f6f8fa}h1{font-size:18px}</style></head>
<body><h1>Test site (another origin)</h1><div id="login"></div>
<script src="${hubUrl}/scanlogin.js"></script>
<script>
  window.states = []; window.logins = [];
  window.handle = ScanLogin.mount("#login", {
    hub: ${JSON.stringify(hubUrl)}, clientId: "demo"${lang ? `, lang: ${JSON.stringify(lang)}` : ""},
    onState: function (s, info) { window.states.push([s, info.sceneId]); },
    onLogin: function (l) { window.logins.push(l); }
  });
</script></body></html>`;
  const server = http.createServer((req, res) => {
    const u = new URL(req.url, "http://x");
    if (u.pathname !== "/") {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store" });
    res.end(page(u.searchParams.get("lang")));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const origin = `http://127.0.0.1:${server.address().port}`;
  return {
    origin,
    close: () => new Promise((r) => server.close(r)),
  };
}

async function postJson(url, body, headers = {}) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10000),
  });
  const text = await res.text();
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    data = text;
  }
  return { status: res.status, data };
}

/** The phone's side, as the mini-program would call it. */
const phone = {
  async code(hub, user) {
    const r = await postJson(`${hub}/sim/api/login`, { user });
    if (r.status !== 200) throw new Error(`sim login: ${r.status} ${JSON.stringify(r.data)}`);
    return r.data.code;
  },
  async scan(hub, sceneId, user = "alice") {
    const r = await postJson(`${hub}/api/v1/mp/scan`, { scene_id: sceneId, code: await phone.code(hub, user) });
    if (r.status !== 200) throw new Error(`scan: ${r.status} ${JSON.stringify(r.data)}`);
    return r.data;
  },
  async confirm(hub, sceneId, mpToken, profile) {
    const r = await postJson(`${hub}/api/v1/mp/confirm`, { scene_id: sceneId, mp_token: mpToken, profile });
    if (r.status !== 200) throw new Error(`confirm: ${r.status} ${JSON.stringify(r.data)}`);
    return r.data;
  },
  async cancel(hub, sceneId, mpToken) {
    const r = await postJson(`${hub}/api/v1/mp/cancel`, { scene_id: sceneId, mp_token: mpToken });
    if (r.status !== 200) throw new Error(`cancel: ${r.status} ${JSON.stringify(r.data)}`);
    return r.data;
  },
};

/** Waits (bounded) until the hub tells the scene's browser it expired. */
async function expired(scene) {
  await until(
    `scene ${scene.scene_id} expired`,
    async () => {
      const res = await fetch(scene.events_url, {
        headers: { Authorization: `Bearer ${scene.browser_token}` },
        signal: AbortSignal.timeout(5000),
      });
      return res.status === 200 && (await res.json()).state === "expired";
    },
    20000,
  );
}

/** Redeems a ticket as the demo site's backend does: Basic demo:secret. */
function redeem(hub, ticket) {
  const auth = Buffer.from(`demo:${CLIENT_SECRET}`).toString("base64");
  return postJson(`${hub}/api/v1/tickets/redeem`, { ticket }, { Authorization: `Basic ${auth}` });
}

/**
 * A hub and a site on another origin that the hub allows (the hub's own
 * origin is allowed too, for its demo page). `hubOpts` as for startHub.
 */
async function world(hubOpts = {}) {
  let hub;
  const site = await startSite(() => hub.url);
  try {
    hub = await startHub({ ...hubOpts, origins: [site.origin], ownOrigin: true });
  } catch (e) {
    await site.close();
    throw e;
  }
  return {
    hub,
    site,
    /** Stops the hub (the current one: a test may have restarted it) and the site. */
    async close() {
      await this.hub.stop();
      await site.close();
    },
  };
}

/**
 * `reason` (why a suite cannot run here) for a `describe`'s `skip`, or false.
 * With SCANLOGIN_REQUIRE_BROWSER set (CI), a reason is an error instead: the
 * suite fails loudly rather than being skipped.
 */
function skipUnlessRequired(reason) {
  if (!reason) return false;
  const flag = process.env.SCANLOGIN_REQUIRE_BROWSER;
  if (flag && flag !== "0") {
    throw new Error(`required by SCANLOGIN_REQUIRE_BROWSER but cannot run: ${reason}`);
  }
  return reason;
}

/** Why the browser suite cannot run here, or false (see skipUnlessRequired). */
function browserMissing() {
  if (!fs.existsSync(CHROMIUM)) return skipUnlessRequired(`no Chromium at ${CHROMIUM}`);
  try {
    require.resolve("playwright-core");
  } catch {
    return skipUnlessRequired("playwright-core is not installed (npm ci in web/)");
  }
  return hubMissing();
}

/** Why no hub can be started here, or false (see skipUnlessRequired). */
function hubMissing() {
  return skipUnlessRequired(fs.existsSync(HUB_BIN) ? false : `no hub binary at ${HUB_BIN}`);
}

async function launchBrowser() {
  const { chromium } = require("playwright-core");
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30000,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** Saves a screenshot to tests/artifacts/NAME.png at the repo root. */
async function shot(pageOrLocator, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await pageOrLocator.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), timeout: 10000 });
}

module.exports = {
  WEB,
  REPO,
  HUB_BIN,
  CHROMIUM,
  ARTIFACTS,
  sleep,
  until,
  freePort,
  startHub,
  startSite,
  world,
  postJson,
  phone,
  redeem,
  expired,
  browserMissing,
  hubMissing,
  skipUnlessRequired,
  launchBrowser,
  shot,
};
