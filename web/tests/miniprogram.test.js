// The reference mini-program page (web/miniprogram/pages/scanlogin) against a
// real hub: logic.js and index.js run with a fake `wx` whose `request` is
// fetch, whose `login` gets codes from the simulator (/sim/api/login) and
// whose `getUserInfo` gets the legacy encrypted profile (/sim/api/userinfo).
"use strict";

const { test, describe, before, after } = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");
const h = require("./helpers.js");

const PAGE_DIR = path.join(h.WEB, "miniprogram", "pages", "scanlogin");
const logic = require(path.join(PAGE_DIR, "logic.js"));
const APP_ID = "wxdemo0000000000"; // config.toml's app

/** A fake `wx` for pretend WeChat user `user`, talking to `hub`. */
function fakeWx(hub, user, { appId = APP_ID, profile = {}, files = {}, forwardedFor = null, language = null, modal = [] } = {}) {
  const calls = [];
  // `modal`: what the person answers each wx.showModal, in turn (true: the confirm button).
  const answers = [...modal];
  const post = async (p, body) => {
    const r = await h.postJson(`${hub}${p}`, body);
    if (r.status !== 200) throw new Error(JSON.stringify(r.data));
    return r.data;
  };
  return {
    calls,
    getAccountInfoSync: () => ({ miniProgram: { appId, envVersion: "release" } }),
    ...(language ? { getAppBaseInfo: () => ({ language }) } : {}),
    showModal(o) {
      calls.push(`showModal ${o.title} / ${o.confirmText} / ${o.cancelText}`);
      const confirm = answers.length ? answers.shift() : false;
      setTimeout(() => o.success({ confirm, cancel: !confirm }), 0);
    },
    login(o) {
      calls.push("login");
      post("/sim/api/login", { user }).then(
        (b) => o.success({ code: b.code, errMsg: "login:ok" }),
        (e) => o.fail({ errMsg: `login:fail ${e.message}` }),
      );
    },
    getUserInfo(o) {
      calls.push("getUserInfo");
      post("/sim/api/userinfo", { user, nickname: profile.nickname, avatar_url: profile.avatar_url }).then(
        (b) => o.success({ encryptedData: b.encrypted_data, iv: b.iv, rawData: b.raw_data, signature: b.signature }),
        (e) => o.fail({ errMsg: `getUserInfo:fail ${e.message}` }),
      );
    },
    getFileSystemManager: () => ({
      readFile(o) {
        calls.push(`readFile ${o.filePath}`);
        const bytes = files[o.filePath];
        if (!bytes) return o.fail({ errMsg: "readFile:fail no such file" });
        // As WeChat does without `encoding`: an ArrayBuffer.
        o.success({ data: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) });
      },
    }),
    request(o) {
      calls.push(`request ${o.method} ${new URL(o.url).pathname}`);
      const binary = o.data instanceof ArrayBuffer;
      if (!binary) assert.equal(o.header["content-type"], "application/json");
      fetch(o.url, {
        method: o.method,
        // `forwardedFor`: where the phone is, as a trusted proxy says it.
        headers: forwardedFor ? { ...o.header, "X-Forwarded-For": forwardedFor } : o.header,
        body: binary ? Buffer.from(o.data) : JSON.stringify(o.data),
        signal: AbortSignal.timeout(o.timeout || 10000),
      }).then(
        async (res) => {
          const text = await res.text();
          let data = text;
          try {
            data = JSON.parse(text);
          } catch {
            /* wx.request leaves non-JSON as a string */
          }
          o.success({ statusCode: res.status, data, header: {} });
        },
        (e) => o.fail({ errMsg: `request:fail ${e.message}` }),
      );
    },
    exitMiniProgram() {
      calls.push("exitMiniProgram");
    },
  };
}

/** A small valid PNG (`w` x `h`, RGB), built by hand with zlib. */
function tinyPng(w, h) {
  const zlib = require("node:zlib");
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(crc(body));
    return Buffer.concat([len, body, sum]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const rows = [];
  for (let y = 0; y < h; y++) {
    const row = Buffer.alloc(1 + w * 3);
    for (let x = 0; x < w; x++) row.set([x * 8, y * 8, 200], 1 + x * 3);
    rows.push(row);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", zlib.deflateSync(Buffer.concat(rows))),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

/** What the browser that made `scene` sees (long-poll, as the widget's fallback). */
async function browserSees(hub, scene, after) {
  const res = await fetch(`${scene.events_url}?after=${after}&wait=5`, {
    headers: { Authorization: `Bearer ${scene.browser_token}` },
    signal: AbortSignal.timeout(10000),
  });
  assert.equal(res.status, 200);
  return res.json();
}

async function newScene(hub, { origin = "http://127.0.0.1:8080", forwardedFor = null } = {}) {
  const headers = { "User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36" };
  if (origin) headers.Origin = origin;
  if (forwardedFor) headers["X-Forwarded-For"] = forwardedFor;
  const r = await h.postJson(`${hub.url}/api/v1/scenes`, { client_id: "demo" }, headers);
  assert.equal(r.status, 201, JSON.stringify(r.data));
  return r.data;
}

/** Loads index.js with a fake `Page`; returns the page instance (setData merges into data). */
function loadPage(wx, hubUrl) {
  const file = require.resolve(path.join(PAGE_DIR, "index.js"));
  delete require.cache[file];
  let def;
  global.Page = (d) => {
    def = d;
  };
  global.wx = wx;
  global.getApp = () => ({ globalData: { scanloginHub: hubUrl } });
  try {
    require(file);
  } finally {
    delete global.Page;
  }
  const page = Object.create(def);
  page.data = JSON.parse(JSON.stringify(def.data));
  page.setData = (patch) => Object.assign(page.data, patch);
  return page;
}

describe("pure helpers", () => {
  test("sceneFromQuery decodes query.scene and accepts only 32 hex characters", () => {
    const id = "0123456789abcdef0123456789abcdef";
    assert.equal(logic.sceneFromQuery({ scene: id }), id);
    assert.equal(logic.sceneFromQuery({ scene: encodeURIComponent(id.toUpperCase()) }), id);
    assert.equal(logic.sceneFromQuery({ scene: "%E4%BD%A0" }), null);
    assert.equal(logic.sceneFromQuery({ scene: "%" }), null);
    assert.equal(logic.sceneFromQuery({ scene: id + "0" }), null);
    assert.equal(logic.sceneFromQuery({}), null);
    assert.equal(logic.sceneFromQuery(undefined), null);
  });

  test("describeBrowser names browser and system", () => {
    const ua = (s) => logic.describeBrowser(s);
    assert.equal(ua("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"), "Chrome · Windows");
    assert.equal(ua("Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 Chrome/131.0 Safari/537.36 Edg/131.0"), "Edge · Windows");
    assert.equal(ua("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 Version/17.0 Safari/605.1.15"), "Safari · macOS");
    assert.equal(ua("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"), "Firefox · Linux");
    assert.equal(ua("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Version/17.0 Mobile Safari/604.1"), "Safari · iOS");
    assert.equal(ua("Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/131.0 Mobile Safari/537.36"), "Chrome · Android");
    assert.equal(ua(""), "?");
  });

  test("describePlace joins what the hub knows of the browser's place", () => {
    assert.equal(logic.describePlace({ country: "CN", region: "广东", city: "深圳" }), "CN 广东 深圳");
    assert.equal(logic.describePlace({ country: "CN", region: "广东" }), "CN 广东");
    assert.equal(logic.describePlace({ country: 7, city: "<b>" }), "<b>");
    assert.equal(logic.describePlace(undefined), "");
    assert.equal(logic.describePlace("CN"), "");
  });

  test("isRemoteUrl keeps http(s) avatars and drops local temp files", () => {
    assert.ok(logic.isRemoteUrl("https://cdn.example.com/a.png"));
    assert.ok(!logic.isRemoteUrl("http://tmp/abc.jpg"));
    assert.ok(!logic.isRemoteUrl("wxfile://tmp_abc.jpg"));
    assert.ok(!logic.isRemoteUrl("javascript:alert(1)"));
    assert.ok(!logic.isRemoteUrl(""));
  });

  test("message has a sentence for each failure, in zh-CN and en", () => {
    for (const code of ["scene_expired", "scene_taken", "scene_final", "scene_not_found", "network", "wechat_error", "bad_scene"]) {
      const zh = logic.message({ code });
      const en = logic.message({ code }, "en");
      assert.notEqual(zh, logic.message({ code: "something_else" }), code);
      assert.match(en, /[.]$/, code);
    }
    assert.match(logic.message({ code: "scene_expired" }), /过期/);
    assert.match(logic.message({ code: "scene_taken" }, "en"), /Another WeChat user/);
    assert.equal(logic.message(undefined, "en"), "Login failed. Try again.");
  });

  test("the account view's words and messages exist in zh-CN and en", () => {
    const zh = logic.accountText("zh-CN");
    const en = logic.accountText("en");
    assert.deepEqual(Object.keys(en).sort(), Object.keys(zh).sort());
    for (const [k, v] of Object.entries(en)) {
      assert.ok(v && v !== zh[k], k);
    }
    assert.equal(zh.remove, "删除我的账号");
    assert.equal(en.remove, "Delete my account");
    assert.equal(logic.accountText(undefined), zh);
    assert.match(logic.message({ code: "user_not_found" }), /没有保存/);
    assert.equal(logic.message({ code: "user_not_found" }, "en"), "The hub holds nothing about you.");
    assert.equal(logic.langOf({ getAppBaseInfo: () => ({ language: "en" }) }), "en");
    assert.equal(logic.langOf({ getAppBaseInfo: () => ({ language: "zh_CN" }) }), "zh-CN");
    assert.equal(logic.langOf({ getSystemInfoSync: () => ({ language: "en_US" }) }), "en");
    assert.equal(logic.langOf({}), "zh-CN");
  });

  test("describeAccount: names, times, browsers and places of the account answer", () => {
    const at = "2026-12-07T11:41:00.000Z";
    const v = logic.describeAccount({
      user: { id: "u1", unionid: null, nickname: "Ann", avatar_url: "http://tmp/x.png", identities: [{ app_id: "wxa", openid: "o1" }], phone_number_kept: true, created_at: at },
      clients: [{ client_id: "shop", name: "Shop", first_login_at: at, last_login_at: at, phone_shared: true }],
      logins: [
        { client_id: "shop", at, ip: "1.2.3.4", user_agent: "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) Version/17.0 Safari/605.1", location: { country: "CN", region: "广东", city: "深圳" } },
        { client_id: "gone", at: "not a time", ip: "5.6.7.8", user_agent: "" },
      ],
    });
    assert.equal(v.userId, "u1");
    assert.equal(v.avatarUrl, "", "a local file is not shown");
    assert.deepEqual(v.identities, ["wxa · o1"]);
    assert.equal(v.phoneKept, true);
    assert.equal(v.created, logic.formatTime(at));
    assert.match(v.created, /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}$/);
    assert.deepEqual(v.clients, [{ id: "shop", name: "Shop", first: v.created, last: v.created, phoneShared: true }]);
    assert.deepEqual(v.logins[0], { site: "Shop", when: v.created, ip: "1.2.3.4", browser: "Safari · macOS", place: "CN 广东 深圳" });
    assert.deepEqual(v.logins[1], { site: "gone", when: "", ip: "5.6.7.8", browser: "?", place: "" });
    assert.deepEqual(logic.describeAccount(undefined).clients, []);
  });

  test("phoneCodeFrom takes the getphonenumber code, not a refusal", () => {
    assert.equal(logic.phoneCodeFrom({ detail: { code: "abc", errMsg: "getPhoneNumber:ok" } }), "abc");
    assert.equal(logic.phoneCodeFrom({ detail: { errMsg: "getPhoneNumber:fail user deny" } }), null);
    assert.equal(logic.phoneCodeFrom({ detail: { code: "abc", errMsg: "getPhoneNumber:fail user deny" } }), null);
    assert.equal(logic.phoneCodeFrom(undefined), null);
  });
});

describe("logic.js against a real hub", { skip: h.hubMissing() }, () => {
  let hub;
  before(async () => {
    hub = await h.startHub();
  });
  after(async () => {
    if (hub) await hub.stop();
  });

  test("scan shows site, browser and IP; confirm with a profile logs the browser in", async () => {
    const scene = await newScene(hub);
    const wx = fakeWx(hub.url, "alice");
    const ctx = { wx, hub: hub.url };
    const scan = await logic.scan(ctx, logic.sceneFromQuery({ scene: encodeURIComponent(scene.scene_id) }));
    assert.deepEqual(scan.site, { id: "demo", name: "Demo site", origin: "http://127.0.0.1:8080", wantsPhone: false });
    assert.equal(scan.browser.ip, "127.0.0.1");
    assert.equal(scan.browser.kind, "browser");
    assert.equal(scan.browser.label, "Chrome · Windows");
    assert.ok(scan.mpToken);
    assert.equal((await browserSees(hub, scene, "waiting")).state, "scanned");

    const avatar = `${hub.url}/sim/avatars/2.svg`;
    const done = await logic.confirm(ctx, { sceneId: scene.scene_id, mpToken: scan.mpToken, nickname: "  Alice  ", avatarUrl: avatar });
    assert.equal(done.state, "confirmed");
    const ev = await browserSees(hub, scene, "scanned");
    assert.equal(ev.state, "confirmed");
    assert.deepEqual(ev.user, { nickname: "Alice", avatar_url: avatar });
    const r = await h.redeem(hub.url, ev.ticket);
    assert.equal(r.status, 200);
    assert.equal(r.data.user.identities[0].app_id, APP_ID);
    assert.deepEqual(wx.calls, ["login", "request POST /api/v1/mp/scan", "request POST /api/v1/mp/confirm"]);
  });

  test("a local temp avatar is not sent; the nickname is", async () => {
    const scene = await newScene(hub);
    const ctx = { wx: fakeWx(hub.url, "bob"), hub: hub.url };
    const scan = await logic.scan(ctx, scene.scene_id);
    await logic.confirm(ctx, { sceneId: scene.scene_id, mpToken: scan.mpToken, nickname: "Bob", avatarUrl: "http://tmp/x.jpg" });
    const ev = await browserSees(hub, scene, "scanned");
    assert.deepEqual(ev.user, { nickname: "Bob", avatar_url: null });
  });

  test("legacy path: encrypted profile from wx.getUserInfo", async () => {
    const scene = await newScene(hub);
    const wx = fakeWx(hub.url, "carol", { profile: { nickname: "Carol 旧版", avatar_url: `${hub.url}/sim/avatars/3.svg` } });
    const ctx = { wx, hub: hub.url };
    const scan = await logic.scan(ctx, scene.scene_id);
    await logic.confirm(ctx, { sceneId: scene.scene_id, mpToken: scan.mpToken, legacy: true });
    assert.deepEqual(wx.calls, ["login", "request POST /api/v1/mp/scan", "getUserInfo", "request POST /api/v1/mp/confirm"]);
    const ev = await browserSees(hub, scene, "scanned");
    assert.equal(ev.user.nickname, "Carol 旧版");
    assert.equal(ev.user.avatar_url, `${hub.url}/sim/avatars/3.svg`);
  });

  test("a code made without a web page is shown as such, so the person can refuse", async () => {
    const scene = await newScene(hub, { origin: null });
    const scan = await logic.scan({ wx: fakeWx(hub.url, "alice"), hub: hub.url }, scene.scene_id);
    assert.equal(scan.site.origin, "");
    assert.equal(scan.browser.kind, "server");
  });

  test("cancel: the browser is told; a later confirm is refused as already answered", async () => {
    const scene = await newScene(hub);
    const ctx = { wx: fakeWx(hub.url, "dan"), hub: hub.url };
    const scan = await logic.scan(ctx, scene.scene_id);
    assert.deepEqual(await logic.cancel(ctx, { sceneId: scene.scene_id, mpToken: scan.mpToken }), { state: "cancelled" });
    assert.equal((await browserSees(hub, scene, "scanned")).state, "cancelled");
    const err = await logic.confirm(ctx, { sceneId: scene.scene_id, mpToken: scan.mpToken, nickname: "Dan" }).catch((e) => e);
    assert.equal(err.code, "scene_final");
    assert.equal(err.status, 409);
    assert.equal(logic.message(err, "en"), "This login request was already answered.");
  });

  test("another WeChat user's scan is refused as taken", async () => {
    const scene = await newScene(hub);
    await logic.scan({ wx: fakeWx(hub.url, "erin"), hub: hub.url }, scene.scene_id);
    const err = await logic.scan({ wx: fakeWx(hub.url, "mallory"), hub: hub.url }, scene.scene_id).catch((e) => e);
    assert.equal(err.code, "scene_taken");
    assert.match(logic.message(err), /其他微信用户/);
  });

  test("unknown scene, bad scene, unreachable hub, failing wx.login", async () => {
    const ctx = { wx: fakeWx(hub.url, "frank"), hub: hub.url };
    let err = await logic.scan(ctx, "0123456789abcdef0123456789abcdef").catch((e) => e);
    assert.equal(err.code, "scene_not_found");
    err = await logic.scan(ctx, null).catch((e) => e);
    assert.equal(err.code, "bad_scene");
    const port = await h.freePort();
    err = await logic.scan({ wx: fakeWx(`http://127.0.0.1:${port}`, "frank"), hub: `http://127.0.0.1:${port}` }, "0123456789abcdef0123456789abcdef").catch((e) => e);
    assert.equal(err.code, "login_failed");
    const offline = { wx: { ...fakeWx(hub.url, "frank") }, hub: `http://127.0.0.1:${port}` };
    err = await logic.scan(offline, "0123456789abcdef0123456789abcdef").catch((e) => e);
    assert.equal(err.code, "network");
    assert.match(logic.message(err), /网络/);
  });

  test("index.js page: onLoad scans, fill-in, Confirm; errors become messages", async () => {
    const scene = await newScene(hub);
    const wx = fakeWx(hub.url, "grace");
    const page = loadPage(wx, hub.url);
    await page.onLoad({ scene: encodeURIComponent(scene.scene_id) });
    assert.equal(page.data.step, "ask");
    assert.equal(page.data.site.name, "Demo site");
    assert.equal(page.data.browser.label, "Chrome · Windows");
    page.onChooseAvatar({ detail: { avatarUrl: "http://tmp/avatar.jpg" } });
    page.onNickname({ detail: { value: "Grace" } });
    await page.onConfirm();
    assert.equal(page.data.step, "confirmed");
    const ev = await browserSees(hub, scene, "scanned");
    assert.deepEqual(ev.user, { nickname: "Grace", avatar_url: null });

    // The same code scanned again by someone else: taken, not retryable.
    const other = loadPage(fakeWx(hub.url, "heidi"), hub.url);
    await other.onLoad({ scene: scene.scene_id });
    assert.equal(other.data.step, "error");
    assert.equal(other.data.error, logic.message({ code: "scene_taken" }));
    assert.equal(other.data.retryable, false);

    // A code that is not ours.
    const bad = loadPage(fakeWx(hub.url, "ivan"), hub.url);
    await bad.onLoad({ scene: "not-a-scene" });
    assert.equal(bad.data.error, logic.message({ code: "bad_scene" }));
  });

  test("index.js page: the chooseAvatar file is uploaded and its URL sent in the profile", async () => {
    const scene = await newScene(hub);
    const tmp = "http://tmp/chosen.png";
    const wx = fakeWx(hub.url, "olivia", { files: { [tmp]: tinyPng(20, 10) } });
    const page = loadPage(wx, hub.url);
    await page.onLoad({ scene: scene.scene_id });
    page.onChooseAvatar({ detail: { avatarUrl: tmp } });
    page.onNickname({ detail: { value: "Olivia" } });
    await page.onConfirm();
    assert.equal(page.data.step, "confirmed");
    assert.ok(wx.calls.includes("request POST /api/v1/mp/avatar"), wx.calls.join(", "));
    const ev = await browserSees(hub, scene, "scanned");
    assert.match(ev.user.avatar_url, new RegExp(`^${hub.url}/api/v1/avatars/[0-9a-f]{32}$`));
    const img = await fetch(ev.user.avatar_url);
    assert.equal(img.status, 200);
    assert.equal(img.headers.get("content-type"), "image/png");
    assert.equal(img.headers.get("cache-control"), "public, max-age=31536000, immutable");

    // A file that is not an image: the hub refuses it, the login goes on without.
    const scene2 = await newScene(hub);
    const wx2 = fakeWx(hub.url, "olivia", { files: { [tmp]: Buffer.from("not a picture") } });
    const page2 = loadPage(wx2, hub.url);
    await page2.onLoad({ scene: scene2.scene_id });
    page2.onChooseAvatar({ detail: { avatarUrl: tmp } });
    await page2.onConfirm();
    assert.equal(page2.data.step, "confirmed");
    assert.equal((await browserSees(hub, scene2, "scanned")).user.avatar_url, null);
    const err = await logic.uploadAvatar({ wx: wx2, hub: hub.url }, { path: tmp, mpToken: "x" }).catch((e) => e);
    assert.equal(err.code, "invalid_token");
    assert.equal(err.status, 401);
  });

  test("account: what the hub keeps, then deleting it after the person agrees", async () => {
    const scene = await newScene(hub);
    const ctx = { wx: fakeWx(hub.url, "kate"), hub: hub.url };
    const scan = await logic.scan(ctx, scene.scene_id);
    await logic.confirm(ctx, { sceneId: scene.scene_id, mpToken: scan.mpToken, nickname: "Kate" });
    const ticket = (await browserSees(hub, scene, "scanned")).ticket;

    const wx = fakeWx(hub.url, "kate", { modal: [false, true] });
    const page = loadPage(wx, hub.url);
    await page.onLoad({ view: "account" });
    assert.equal(page.data.step, "account", page.data.error);
    const a = page.data.account;
    assert.equal(a.nickname, "Kate");
    assert.equal(a.identities.length, 1);
    assert.ok(a.identities[0].startsWith(`${APP_ID} · `), a.identities[0]);
    assert.equal(a.phoneKept, false);
    assert.deepEqual(a.clients.map((c) => [c.id, c.name, c.phoneShared]), [["demo", "Demo site", false]]);
    assert.equal(a.logins.length, 1);
    assert.deepEqual([a.logins[0].site, a.logins[0].browser, a.logins[0].ip], ["Demo site", "Chrome · Windows", "127.0.0.1"]);
    assert.equal(page.data.t.remove, "删除我的账号");

    // The person says no: nothing is deleted.
    await page.onDeleteAccount();
    assert.equal(page.data.step, "account");
    assert.equal((await logic.account({ wx: fakeWx(hub.url, "kate"), hub: hub.url })).userId, a.userId);
    // The person agrees: the account is gone, and so is the ticket.
    await page.onDeleteAccount();
    assert.equal(page.data.step, "deleted", page.data.error);
    assert.deepEqual(wx.calls.filter((c) => c.startsWith("showModal")), [
      "showModal 删除账号？ / 删除 / 取消",
      "showModal 删除账号？ / 删除 / 取消",
    ]);
    assert.deepEqual(wx.calls.filter((c) => c.startsWith("request")), [
      "request POST /api/v1/mp/account",
      "request POST /api/v1/mp/account/delete",
    ]);
    assert.equal((await h.redeem(hub.url, ticket)).status, 400);

    // Shown again, in English: the hub keeps nothing.
    const again = loadPage(fakeWx(hub.url, "kate", { language: "en" }), hub.url);
    await again.onLoad({ view: "account" });
    assert.equal(again.data.step, "error");
    assert.equal(again.data.error, "The hub holds nothing about you.");
    assert.equal(again.data.retryable, false);
    assert.equal(again.data.t.remove, "Delete my account");
    // The same person logging in again is a new user.
    const next = await newScene(hub);
    const scan2 = await logic.scan(ctx, next.scene_id);
    const done = await logic.confirm(ctx, { sceneId: next.scene_id, mpToken: scan2.mpToken, nickname: "Kate" });
    assert.notEqual(done.user_id, a.userId);
  });

  test("index.js page: Cancel", async () => {
    const scene = await newScene(hub);
    const page = loadPage(fakeWx(hub.url, "judy"), hub.url);
    await page.onLoad({ scene: scene.scene_id });
    await page.onCancel();
    assert.equal(page.data.step, "cancelled");
    assert.equal((await browserSees(hub, scene, "scanned")).state, "cancelled");
  });
});

// 4 s: time for create and scan on a loaded machine; the tests then wait
// for the expiry itself, not for a fixed time.
describe("expiry against a hub with a 4 s TTL", { skip: h.hubMissing() }, () => {
  let hub;
  before(async () => {
    hub = await h.startHub({ ttl: 4 });
  });
  after(async () => {
    if (hub) await hub.stop();
  });

  test("scanning an expired code says so", async () => {
    const scene = await newScene(hub);
    await h.expired(scene);
    const page = loadPage(fakeWx(hub.url, "kim"), hub.url);
    await page.onLoad({ scene: scene.scene_id });
    assert.equal(page.data.step, "error");
    assert.equal(page.data.error, logic.message({ code: "scene_expired" }));
    assert.equal(page.data.retryable, false);
  });

  test("confirming after the code expired says so", async () => {
    const scene = await newScene(hub);
    const ctx = { wx: fakeWx(hub.url, "lee"), hub: hub.url };
    const scan = await logic.scan(ctx, scene.scene_id);
    await h.expired(scene);
    const err = await logic.confirm(ctx, { sceneId: scene.scene_id, mpToken: scan.mpToken, nickname: "Lee" }).catch((e) => e);
    assert.equal(err.code, "scene_expired");
    assert.equal(err.status, 410);
  });
});

describe("phone numbers against a hub whose demo client has phone = true", { skip: h.hubMissing() }, () => {
  let hub;
  before(async () => {
    hub = await h.startHub({ env: { SCANLOGIN__CLIENTS__0__PHONE: "true" } });
  });
  after(async () => {
    if (hub) await hub.stop();
  });

  test("the page offers the button; the shared number reaches the site", async () => {
    const scene = await newScene(hub);
    const wx = fakeWx(hub.url, "mallory");
    const page = loadPage(wx, hub.url);
    await page.onLoad({ scene: scene.scene_id });
    assert.equal(page.data.step, "ask");
    assert.equal(page.data.site.wantsPhone, true);
    // The simulator plays the getPhoneNumber button.
    const r = await h.postJson(`${hub.url}/sim/api/phone`, { user: "mallory" });
    assert.equal(r.status, 200, JSON.stringify(r.data));
    page.onPhoneNumber({ detail: { code: r.data.code, errMsg: "getPhoneNumber:ok" } });
    assert.equal(page.data.phoneShared, true);
    await page.onConfirm();
    assert.equal(page.data.step, "confirmed");
    const ev = await browserSees(hub, scene, "scanned");
    assert.equal(ev.phone_number, undefined);
    const red = await h.redeem(hub.url, ev.ticket);
    assert.equal(red.status, 200);
    assert.match(red.data.user.phone_number, /^13[0-9]{9}$/);
  });

  test("a phone code WeChat refuses: wechat_error, the scene stays scanned", async () => {
    const scene = await newScene(hub);
    const ctx = { wx: fakeWx(hub.url, "niaj"), hub: hub.url };
    const scan = await logic.scan(ctx, scene.scene_id);
    const err = await logic.confirm(ctx, { sceneId: scene.scene_id, mpToken: scan.mpToken, phoneCode: "not-a-code" }).catch((e) => e);
    assert.equal(err.code, "wechat_error");
    assert.equal(err.status, 502);
    const now = await fetch(`${scene.events_url}?wait=0`, { headers: { Authorization: `Bearer ${scene.browser_token}` } });
    assert.equal((await now.json()).state, "scanned");
  });
});

describe("where the browser is, against a hub with a GeoIP database", { skip: require("node:fs").existsSync(h.HUB_BIN) ? false : "no hub binary" }, () => {
  // tests/fixtures/geoip-test.mmdb (made by make_geoip.py): 192.0.2.0/24 is
  // Shenzhen (Guangdong), 198.51.100.0/25 Beijing, 203.0.113.0/24 Guangdong.
  const SHENZHEN = "192.0.2.9";
  const BEIJING = "198.51.100.5";
  const GUANGDONG = "203.0.113.4";
  let hub;
  before(async () => {
    hub = await h.startHub({
      env: {
        SCANLOGIN__GEOIP__DATABASE: path.join(h.REPO, "tests", "fixtures", "geoip-test.mmdb"),
        SCANLOGIN__SERVER__TRUSTED_PROXIES: JSON.stringify(["127.0.0.1"]),
      },
    });
  });
  after(async () => {
    if (hub) await hub.stop();
  });

  test("a browser in another region: the page shows the place and a red warning", async () => {
    const scene = await newScene(hub, { forwardedFor: BEIJING });
    const page = loadPage(fakeWx(hub.url, "olivia", { forwardedFor: SHENZHEN }), hub.url);
    await page.onLoad({ scene: scene.scene_id });
    assert.equal(page.data.step, "ask");
    assert.equal(page.data.browser.ip, BEIJING);
    assert.equal(page.data.browser.place, "CN 北京 北京");
    assert.equal(page.data.browser.far, true);
    const wxml = require("node:fs").readFileSync(path.join(PAGE_DIR, "index.wxml"), "utf8");
    assert.match(wxml, /wx:if="\{\{browser\.far\}\}" class="danger"/);
    assert.match(wxml, /wx:if="\{\{browser\.place\}\}"/);
  });

  test("a browser in the phone's region: the place, no warning", async () => {
    const scene = await newScene(hub, { forwardedFor: GUANGDONG });
    const scan = await logic.scan({ wx: fakeWx(hub.url, "peggy", { forwardedFor: SHENZHEN }), hub: hub.url }, scene.scene_id);
    assert.equal(scan.browser.place, "CN 广东");
    assert.equal(scan.browser.far, false);
  });

  test("an address the database does not know: no place, no warning", async () => {
    const scene = await newScene(hub, { forwardedFor: "10.9.8.7" });
    const scan = await logic.scan({ wx: fakeWx(hub.url, "quinn", { forwardedFor: SHENZHEN }), hub: hub.url }, scene.scene_id);
    assert.equal(scan.browser.place, "");
    assert.equal(scan.browser.far, false);
  });
});
