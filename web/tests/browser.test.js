// The widget, the demo page and the simulated phone in real headless Chromium,
// against the real hub binary. Each test starts its own hub (free port, temp
// SQLite) and a site on another origin that embeds the widget with one
// <script> tag. Screenshots go to tests/artifacts/ at the repo root.
"use strict";

const { test, describe, before, after } = require("node:test");
const assert = require("node:assert/strict");
const h = require("./helpers.js");

const missing = h.browserMissing();
const T = { timeout: 60000 };

describe("widget in Chromium", { skip: missing || false }, () => {
  let browser;
  before(async () => {
    browser = await h.launchBrowser();
  });
  after(async () => {
    if (browser) await browser.close();
  });

  /** A page on the site, with the browser_token and every request URL recorded. */
  async function openSite(w, { lang, init } = {}) {
    const context = await browser.newContext({ viewport: { width: 420, height: 400 }, deviceScaleFactor: 1 });
    const page = await context.newPage();
    page.setDefaultTimeout(15000);
    const seen = { urls: [], tokens: [], sockets: [], scenePosts: 0, console: [], eventsAuth: [] };
    page.on("request", (r) => {
      seen.urls.push(r.url());
      if (r.method() === "POST" && r.url().endsWith("/api/v1/scenes")) seen.scenePosts++;
      if (r.url().includes("/events?")) seen.eventsAuth.push(r.headers().authorization || "");
    });
    page.on("response", async (r) => {
      if (r.request().method() === "POST" && r.url().endsWith("/api/v1/scenes")) {
        try {
          seen.tokens.push((await r.json()).browser_token);
        } catch {
          /* page closed */
        }
      }
    });
    page.on("websocket", (ws) => seen.sockets.push(ws.url()));
    page.on("console", (m) => seen.console.push(m.text()));
    page.on("pageerror", (e) => seen.console.push(`pageerror: ${e.message}`));
    if (init) await page.addInitScript(init);
    await page.goto(`${w.site.origin}/${lang ? `?lang=${lang}` : ""}`);
    return { page, context, seen };
  }

  const status = (page) => page.locator(".scanlogin-status");
  const widget = (page) => page.locator(".scanlogin");

  /** Waits until the code is on screen; returns the scene id. */
  async function codeShown(page) {
    await page.waitForFunction(() => {
      const img = document.querySelector(".scanlogin-qr");
      const root = document.querySelector(".scanlogin");
      return img && img.complete && img.naturalWidth > 0 && !root.hasAttribute("data-busy");
    });
    const src = await page.locator(".scanlogin-qr").getAttribute("src");
    const m = /\/scenes\/([0-9a-f]{32})\/qrcode$/.exec(src);
    assert.ok(m, `qr src ${src}`);
    return m[1];
  }

  async function stateIs(page, state, ms = 15000) {
    await page.waitForFunction((s) => document.querySelector(".scanlogin").getAttribute("data-state") === s, state, {
      timeout: ms,
    });
  }

  function assertNoTokenLeak(seen) {
    assert.ok(seen.tokens.length > 0, "saw the browser_token");
    for (const token of seen.tokens) {
      for (const u of seen.urls) assert.ok(!u.includes(token), `browser_token in a URL: ${u}`);
      for (const u of seen.sockets) assert.ok(!u.includes(token), `browser_token in a socket URL: ${u}`);
      for (const c of seen.console) assert.ok(!c.includes(token), `browser_token in the console: ${c}`);
    }
  }

  test("WebSocket: scanned, then the person; onLogin once; the ticket redeems", T, async () => {
    const w = await h.world();
    const { page, context, seen } = await openSite(w, { lang: "en" });
    try {
      await assert.doesNotReject(status(page).waitFor());
      const scene = await codeShown(page);
      assert.equal(await status(page).textContent(), "Scan with WeChat to log in");
      assert.equal(await status(page).getAttribute("aria-live"), "polite");
      assert.match(await page.locator(".scanlogin-qr").getAttribute("alt"), /WeChat/);
      await stateIs(page, "waiting");
      await h.shot(widget(page), "widget-en-1-waiting");

      const scan = await h.phone.scan(w.hub.url, scene, "alice");
      assert.equal(scan.client.name, "Demo site");
      await stateIs(page, "scanned");
      assert.equal(await status(page).textContent(), "Scanned — confirm on your phone");
      await h.shot(widget(page), "widget-en-2-scanned");

      await h.phone.confirm(w.hub.url, scene, scan.mp_token, {
        nickname: "Alice",
        avatar_url: `${w.hub.url}/sim/avatars/1.svg`,
      });
      await stateIs(page, "confirmed");
      assert.equal(await status(page).textContent(), "Logged in as Alice");
      const face = page.locator("img.scanlogin-face");
      await page.waitForFunction(() => document.querySelector("img.scanlogin-face").naturalWidth > 0);
      assert.equal(await face.getAttribute("alt"), "Alice's avatar");
      assert.ok(await face.isVisible());
      assert.ok(!(await page.locator(".scanlogin-qr").isVisible()), "code hidden after login");
      await h.shot(widget(page), "widget-en-3-confirmed");

      await h.sleep(1000);
      const logins = await page.evaluate(() => window.logins);
      assert.equal(logins.length, 1, "onLogin exactly once");
      assert.deepEqual(logins[0].user, { nickname: "Alice", avatar_url: `${w.hub.url}/sim/avatars/1.svg` });
      const states = (await page.evaluate(() => window.states)).map((s) => s[0]);
      assert.deepEqual(states, ["loading", "waiting", "scanned", "confirmed"]);
      assert.ok(seen.sockets.some((u) => u.endsWith(`/api/v1/scenes/${scene}/ws`)), "used the WebSocket");
      assert.equal(seen.eventsAuth.length, 0, "no long-poll needed");

      // refresh() after login does nothing: no second scene, no second onLogin.
      await page.evaluate(() => window.handle.refresh());
      await h.sleep(300);
      assert.equal(seen.scenePosts, 1);

      const r = await h.redeem(w.hub.url, logins[0].ticket);
      assert.equal(r.status, 200, JSON.stringify(r.data));
      assert.equal(r.data.user.nickname, "Alice");
      assert.equal(r.data.scene_id, scene);
      assertNoTokenLeak(seen);
      assert.deepEqual(seen.console.filter((c) => c.startsWith("pageerror")), []);
    } finally {
      await context.close();
      await w.close();
    }
  });

  test("long-poll when window.WebSocket is missing (zh-CN texts)", T, async () => {
    const w = await h.world();
    const { page, context, seen } = await openSite(w, {
      init: () => {
        delete window.WebSocket;
        window.WebSocket = undefined;
      },
    });
    try {
      const scene = await codeShown(page);
      assert.equal(await status(page).textContent(), "请使用微信扫一扫登录");
      await h.shot(widget(page), "widget-zh-1-waiting");
      const scan = await h.phone.scan(w.hub.url, scene, "bob");
      await stateIs(page, "scanned");
      assert.equal(await status(page).textContent(), "扫码成功，请在手机上确认登录");
      await h.shot(widget(page), "widget-zh-2-scanned");
      await h.phone.confirm(w.hub.url, scene, scan.mp_token, { nickname: "小明" });
      await stateIs(page, "confirmed");
      assert.equal(await status(page).textContent(), "登录成功：小明");
      await h.shot(widget(page), "widget-zh-3-confirmed-no-avatar");
      await h.sleep(1000);
      const logins = await page.evaluate(() => window.logins);
      assert.equal(logins.length, 1);
      assert.equal(seen.sockets.length, 0, "no WebSocket was opened");
      assert.ok(seen.eventsAuth.length >= 2, "long-polled the events URL");
      assert.ok(seen.eventsAuth.every((a) => a.startsWith("Bearer ")), "token in the Authorization header");
      const r = await h.redeem(w.hub.url, logins[0].ticket);
      assert.equal(r.status, 200);
      assert.equal(r.data.user.nickname, "小明");
      assertNoTokenLeak(seen);
    } finally {
      await context.close();
      await w.close();
    }
  });

  test("long-poll when WebSockets are blocked (connections fail)", T, async () => {
    const w = await h.world();
    const { page, context, seen } = await openSite(w, {
      lang: "en",
      init: () => {
        // A WebSocket that never connects, as behind a proxy that drops upgrades.
        window.WebSocket = function BlockedSocket() {
          setTimeout(() => {
            if (this.onerror) this.onerror(new Event("error"));
            if (this.onclose) this.onclose({ code: 1006, reason: "" });
          }, 20);
        };
        window.WebSocket.prototype.send = function () {};
        window.WebSocket.prototype.close = function () {};
      },
    });
    try {
      const scene = await codeShown(page);
      const scan = await h.phone.scan(w.hub.url, scene, "carol");
      await stateIs(page, "scanned");
      await h.phone.confirm(w.hub.url, scene, scan.mp_token, { nickname: "Carol" });
      await stateIs(page, "confirmed");
      await h.sleep(500);
      assert.equal((await page.evaluate(() => window.logins)).length, 1);
      assert.ok(seen.eventsAuth.length >= 1, "fell back to long-poll");
    } finally {
      await context.close();
      await w.close();
    }
  });

  test("spinner while loading; a failed request shows an error with a keyboard retry", T, async () => {
    const w = await h.world();
    const context = await browser.newContext({ viewport: { width: 420, height: 400 }, deviceScaleFactor: 1 });
    const page = await context.newPage();
    page.setDefaultTimeout(15000);
    let release;
    const held = new Promise((r) => {
      release = r;
    });
    // The first POST /api/v1/scenes hangs until the spinner is seen, then fails.
    let failed = false;
    await page.route("**/api/v1/scenes", async (route) => {
      if (failed || route.request().method() !== "POST") return route.continue();
      failed = true;
      await Promise.race([held, h.sleep(10000)]);
      return route.abort("connectionrefused");
    });
    try {
      await page.goto(`${w.site.origin}/?lang=en`);
      await page.locator(".scanlogin-spin").waitFor({ state: "visible" });
      assert.equal(await status(page).textContent(), "Loading the login code…");
      await h.shot(widget(page), "widget-en-0-loading");
      release();
      await stateIs(page, "error");
      assert.equal(await status(page).textContent(), "Could not load the code — click to try again");
      assert.ok(!(await page.locator(".scanlogin-spin").isVisible()));
      await h.shot(widget(page), "widget-en-0-error");
      await page.keyboard.press("Tab");
      await page.keyboard.press("Space");
      await codeShown(page);
      await stateIs(page, "waiting");
      const states = (await page.evaluate(() => window.states)).map((x) => x[0]);
      assert.deepEqual(states, ["loading", "error", "loading", "waiting"]);
    } finally {
      await context.close();
      await w.close();
    }
  });

  test("cancel on the phone; a click gets a new code", T, async () => {
    const w = await h.world();
    const { page, context, seen } = await openSite(w, { lang: "en" });
    try {
      const scene = await codeShown(page);
      const scan = await h.phone.scan(w.hub.url, scene, "alice");
      await stateIs(page, "scanned");
      await h.phone.cancel(w.hub.url, scene, scan.mp_token);
      await stateIs(page, "cancelled");
      assert.equal(await status(page).textContent(), "Login cancelled on the phone");
      const button = page.getByRole("button", { name: "Get a new code" });
      assert.ok(await button.isVisible());
      await h.shot(widget(page), "widget-en-4-cancelled");
      await button.click();
      const next = await codeShown(page);
      assert.notEqual(next, scene, "a new scene");
      await stateIs(page, "waiting");
      assert.equal(seen.scenePosts, 2);
      assert.equal((await page.evaluate(() => window.logins)).length, 0);
    } finally {
      await context.close();
      await w.close();
    }
  });

  test("expiry: click (keyboard) to refresh; refreshes by itself when the page becomes visible", T, async () => {
    const w = await h.world({ ttl: 3 });
    const { page, context, seen } = await openSite(w, { lang: "en" });
    try {
      const first = await codeShown(page);
      await stateIs(page, "expired", 10000);
      assert.equal(await status(page).textContent(), "Code expired — click to refresh");
      await h.shot(widget(page), "widget-en-5-expired");
      // Keyboard: Tab reaches the refresh button, Enter presses it.
      await page.keyboard.press("Tab");
      const focused = await page.evaluate(() => document.activeElement.textContent);
      assert.match(focused, /Refresh code/);
      await h.shot(widget(page), "widget-en-6-expired-focused");
      await page.keyboard.press("Enter");
      const second = await codeShown(page);
      assert.notEqual(second, first);
      await stateIs(page, "waiting");
      await h.shot(widget(page), "widget-en-7-refreshed");

      // Hidden tab: the code expires unseen; when the tab shows again, a new one appears.
      await page.evaluate(() => {
        Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "hidden" });
        document.dispatchEvent(new Event("visibilitychange"));
      });
      await stateIs(page, "expired", 10000);
      assert.equal(seen.scenePosts, 2, "no refresh while hidden");
      await page.evaluate(() => {
        Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "visible" });
        document.dispatchEvent(new Event("visibilitychange"));
      });
      const third = await codeShown(page);
      assert.notEqual(third, second);
      assert.equal(seen.scenePosts, 3);
      assert.equal((await page.evaluate(() => window.logins)).length, 0);
    } finally {
      await context.close();
      await w.close();
    }
  });

  test("hub restarted mid-flow: the widget reconnects to the same scene and completes", T, async () => {
    const w = await h.world();
    const { page, context, seen } = await openSite(w, { lang: "en" });
    let hub = w.hub;
    try {
      const scene = await codeShown(page);
      const scan = await h.phone.scan(hub.url, scene, "alice");
      await stateIs(page, "scanned");
      const socketsBefore = seen.sockets.length;

      const exit = await hub.stop();
      assert.equal(exit.code, 0, `hub exit ${JSON.stringify(exit)}`);
      // The widget keeps the scene and says it is reconnecting.
      await page.locator(".scanlogin-note").waitFor({ state: "visible", timeout: 15000 });
      assert.equal(await page.locator(".scanlogin-note").textContent(), "Connection lost, reconnecting…");
      await stateIs(page, "scanned");
      await h.shot(widget(page), "widget-en-8-reconnecting");

      hub = await h.startHub({ port: w.hub.port, dir: w.hub.dir, origins: [w.site.origin] });
      w.hub = hub;
      await h.phone.confirm(hub.url, scene, scan.mp_token, { nickname: "Alice" });
      await stateIs(page, "confirmed", 25000);
      assert.ok(!(await page.locator(".scanlogin-note").isVisible()));
      await h.shot(widget(page), "widget-en-9-confirmed-after-restart");
      await h.sleep(1000);
      const logins = await page.evaluate(() => window.logins);
      assert.equal(logins.length, 1, "onLogin once");
      assert.equal(seen.scenePosts, 1, "no new scene");
      assert.ok(seen.sockets.length > socketsBefore, "a new socket");
      assert.ok(seen.sockets.every((u) => u.includes(scene)), "same scene");
      const r = await h.redeem(hub.url, logins[0].ticket);
      assert.equal(r.status, 200, JSON.stringify(r.data));
    } finally {
      await context.close();
      await w.close();
    }
  });

  test("demo page + simulated phone (inline panel, driven by clicks)", T, async () => {
    const w = await h.world();
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 });
    const page = await context.newPage();
    page.setDefaultTimeout(15000);
    try {
      await page.goto(`${w.hub.url}/?lang=en`);
      const scene = await codeShown(page);
      const link = page.getByRole("link", { name: /open the simulated phone/i });
      await link.waitFor({ state: "visible" });
      assert.equal(await link.getAttribute("href"), `/sim/phone?scene=${scene}`);
      assert.equal(await link.getAttribute("target"), "_blank");
      await h.shot(page, "demo-1-waiting");

      await page.getByRole("button", { name: "Show the phone on this page" }).click();
      const phone = page.frameLocator('iframe[title="Simulated phone"]');
      await phone.getByRole("button", { name: "Bob" }).click();
      assert.equal(await phone.locator("#user").inputValue(), "bob");
      await h.shot(page, "demo-2-inline-phone");
      await phone.getByRole("button", { name: "Scan the code" }).click();
      await phone.locator("#step-ask").waitFor({ state: "visible" });
      await stateIs(page, "scanned");
      assert.equal(await phone.locator("#site-name").textContent(), "Demo site");
      assert.match(await phone.locator("#browser").textContent(), /Chrome · Linux/);
      assert.equal(await phone.locator("#ip").textContent(), "127.0.0.1");
      await phone.locator("#nickname").fill("Bobby");
      await phone.locator("label.pick").nth(2).click();
      await h.shot(page, "demo-3-scanned-phone-asks");
      await phone.getByRole("button", { name: "Confirm login" }).click();
      await phone.getByRole("heading", { name: "Login confirmed" }).waitFor();
      await stateIs(page, "confirmed");
      await page.locator("#backend-json").filter({ hasText: '"nickname": "Bobby"' }).waitFor();
      const answer = JSON.parse(await page.locator("#backend-json").textContent());
      assert.equal(answer.client_id, "demo");
      assert.equal(answer.scene_id, scene);
      assert.equal(answer.user.avatar_url, `${w.hub.url}/sim/avatars/3.svg`);
      assert.equal(answer.user.identities.length, 1);
      assert.match(await page.locator("#who").textContent(), /Hi, Bobby/);
      await page.waitForFunction(() => document.querySelector("img.scanlogin-face").naturalWidth > 0);
      await page.evaluate(() => window.scrollTo(0, 0));
      await h.shot(page, "demo-4-logged-in");
    } finally {
      await context.close();
      await w.close();
    }
  });

  test("simulated phone: the account view, then deleting the account after the dialog", T, async () => {
    const w = await h.world();
    const { page, context } = await openSite(w, { lang: "en" });
    const mobile = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 1, isMobile: true, hasTouch: true });
    const phone = await mobile.newPage();
    phone.setDefaultTimeout(15000);
    try {
      const scene = await codeShown(page);
      await phone.goto(`${w.hub.url}/sim/phone?scene=${scene}`);
      await phone.locator("#user").fill("fiona");
      await phone.getByRole("button", { name: "Scan the code" }).click();
      await phone.locator("#nickname").fill("Fiona");
      await phone.getByRole("button", { name: "Confirm login" }).click();
      await phone.getByRole("heading", { name: "Login confirmed" }).waitFor();
      await stateIs(page, "confirmed");
      const ticket = (await page.evaluate(() => window.logins))[0].ticket;

      await phone.getByRole("button", { name: "My account" }).click();
      await phone.locator("#step-account").waitFor({ state: "visible" });
      await h.shot(phone, "phone-account-1-view");
      assert.match(await phone.locator("#account-user").textContent(), /Fiona/);
      assert.equal(await phone.locator("#account-clients li").count(), 1);
      assert.match(await phone.locator("#account-clients li").first().textContent(), /^Demo site/);
      assert.equal(await phone.locator("#account-logins li").count(), 1);
      assert.match(await phone.locator("#account-logins li").first().textContent(), /Demo site/);
      await phone.locator("#account-lang").selectOption("zh-CN");
      assert.equal(await phone.locator("#delete-account").textContent(), "删除我的账号");
      assert.equal(await phone.locator("#account-title").textContent(), "我的账号");
      await phone.locator("#account-lang").selectOption("en");
      assert.equal(await phone.locator("#delete-account").textContent(), "Delete my account");

      // Dismissed: nothing is deleted.
      phone.once("dialog", (d) => d.dismiss());
      await phone.getByRole("button", { name: "Delete my account" }).click();
      await phone.locator("#step-account").waitFor({ state: "visible" });
      // Accepted: the account is gone, and the site's ticket with it.
      let asked = "";
      phone.once("dialog", (d) => {
        asked = d.message();
        d.accept();
      });
      await phone.getByRole("button", { name: "Delete my account" }).click();
      await phone.getByRole("heading", { name: /Your account is deleted/ }).waitFor();
      await h.shot(phone, "phone-account-2-deleted");
      assert.match(asked, /Delete your account\?/);
      assert.equal((await h.redeem(w.hub.url, ticket)).status, 400);

      // Without a code: pick the person, open the account: nothing kept.
      await phone.goto(`${w.hub.url}/sim/phone`);
      assert.equal(await phone.getByRole("button", { name: "Scan the code" }).count(), 0);
      await phone.locator("#user").fill("fiona");
      await phone.getByRole("button", { name: "My account" }).click();
      await phone.getByRole("alert").filter({ hasText: "The hub holds nothing about you." }).waitFor();
    } finally {
      await mobile.close();
      await context.close();
      await w.close();
    }
  });

  test("simulated phone in its own tab: legacy encrypted profile, then cancel of another code", T, async () => {
    const w = await h.world();
    const { page, context } = await openSite(w, { lang: "en" });
    const mobile = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 1, isMobile: true, hasTouch: true });
    const phone = await mobile.newPage();
    phone.setDefaultTimeout(15000);
    try {
      const scene = await codeShown(page);
      // What the code encodes: the simulator draws this page's URL into the image.
      await phone.goto(`${w.hub.url}/sim/phone?scene=${scene}`);
      await h.shot(phone, "phone-1-who");
      await phone.locator("#user").fill("dora");
      await phone.getByRole("button", { name: "Scan the code" }).click();
      await phone.locator("#step-ask").waitFor({ state: "visible" });
      await stateIs(page, "scanned");
      await phone.locator("#nickname").fill("Dora (legacy)");
      await phone.locator("#legacy").check();
      await h.shot(phone, "phone-2-ask-legacy");
      await phone.getByRole("button", { name: "Confirm login" }).click();
      await phone.getByRole("heading", { name: "Login confirmed" }).waitFor();
      await h.shot(phone, "phone-3-confirmed");
      await stateIs(page, "confirmed");
      assert.equal(await status(page).textContent(), "Logged in as Dora (legacy)");
      const logins = await page.evaluate(() => window.logins);
      assert.equal(logins.length, 1);
      const r = await h.redeem(w.hub.url, logins[0].ticket);
      assert.equal(r.data.user.nickname, "Dora (legacy)");
      assert.equal(r.data.user.avatar_url, `${w.hub.url}/sim/avatars/4.svg`);

      // The same code again, now answered: the phone says so, to its owner and to anyone else.
      await phone.goto(`${w.hub.url}/sim/phone?scene=${scene}`);
      await phone.locator("#user").fill("dora");
      await phone.getByRole("button", { name: "Scan the code" }).click();
      await phone.getByRole("alert").filter({ hasText: "This login request was already answered." }).waitFor();
      await h.shot(phone, "phone-4-already-answered");
      await phone.locator("#user").fill("eve");
      await phone.getByRole("button", { name: "Scan the code" }).click();
      await phone.getByRole("alert").filter({ hasText: "Another WeChat user already scanned this code." }).waitFor();

      // A new code (page reloaded), refused on the phone with Cancel.
      await page.reload();
      const second = await codeShown(page);
      await phone.goto(`${w.hub.url}/sim/phone?scene=${second}`);
      await phone.getByRole("button", { name: "Scan the code" }).click();
      await phone.getByRole("button", { name: "Cancel" }).click();
      await phone.getByRole("heading", { name: "Login cancelled" }).waitFor();
      await stateIs(page, "cancelled");
      await h.shot(phone, "phone-5-cancelled");
      assert.equal((await page.evaluate(() => window.logins)).length, 0);
    } finally {
      await mobile.close();
      await context.close();
      await w.close();
    }
  });
});
