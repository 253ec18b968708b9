// "Log in with WeChat" through OpenID Connect, driven by a stock relying-party
// library we did not write (openid-client, on oauth4webapi and jose): discovery,
// the authorization request with PKCE S256, state and nonce, the hub's own
// authorize page in headless Chromium showing the code, the simulated phone
// confirming, the browser landing on the site's loopback redirect URI with
// code, state and iss (RFC 9207), then the library's code exchange, ID token
// validation (signature checked against the JWKS) and userinfo call.
"use strict";

const { test, describe, before, after } = require("node:test");
const assert = require("node:assert/strict");
const http = require("node:http");
const h = require("./helpers.js");

const missing = h.browserMissing();
const CLIENT_SECRET = "demo-client-secret"; // config.toml's demo client

describe("OpenID Connect with openid-client in Chromium", { skip: missing || false }, () => {
  let browser;
  before(async () => {
    browser = await h.launchBrowser();
  });
  after(async () => {
    if (browser) await browser.close();
  });

  /** The site's redirect URI: a loopback server that answers a plain page. */
  async function callbackServer() {
    const server = http.createServer((req, res) => {
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store" });
      res.end("<!doctype html><title>Site</title><p>Back at the site.</p>");
    });
    await new Promise((r) => server.listen(0, "127.0.0.1", r));
    return {
      redirectUri: `http://127.0.0.1:${server.address().port}/callback`,
      close: () => new Promise((r) => server.close(r)),
    };
  }

  /** A hub whose demo client may use OpenID Connect with `redirectUri`, and the library's configuration for it. */
  async function setup(client, redirectUri) {
    const hub = await h.startHub({ env: { SCANLOGIN__CLIENTS__0__REDIRECT_URIS: JSON.stringify([redirectUri]) } });
    try {
      const config = await client.discovery(new URL(hub.url), "demo", undefined, client.ClientSecretBasic(CLIENT_SECRET), {
        // The test hub is plain http on loopback.
        execute: [client.allowInsecureRequests],
      });
      // Check the ID token's signature against the JWKS too.
      client.enableNonRepudiationChecks(config);
      return { hub, config };
    } catch (e) {
      await hub.stop();
      throw e;
    }
  }

  /** Opens the authorization URL; waits until the page shows the code; returns the page and the scene id. */
  async function openAuthorize(url, locale) {
    const context = await browser.newContext({ locale, viewport: { width: 480, height: 640 }, deviceScaleFactor: 1 });
    const page = await context.newPage();
    page.setDefaultTimeout(15000);
    const problems = [];
    page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
    // A Content-Security-Policy violation shows up as a console error.
    page.on("console", (m) => {
      if (m.type() === "error") problems.push(m.text());
    });
    await page.goto(url.href);
    await page.waitForFunction(() => {
      const img = document.querySelector(".scanlogin-qr");
      return img && img.complete && img.naturalWidth > 0;
    });
    const src = await page.locator(".scanlogin-qr").getAttribute("src");
    const m = /\/api\/v1\/scenes\/([0-9a-f]{32})\/qrcode$/.exec(src);
    assert.ok(m, `qr src ${src}`);
    return { context, page, sceneId: m[1], problems };
  }

  test("a stock relying party logs in end to end with PKCE, state, nonce and iss", { timeout: 90000 }, async () => {
    const client = await import("openid-client");
    const rp = await callbackServer();
    const { hub, config } = await setup(client, rp.redirectUri);
    try {
      const meta = config.serverMetadata();
      assert.equal(meta.issuer, hub.url);
      assert.equal(meta.authorization_response_iss_parameter_supported, true);
      const verifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const nonce = client.randomNonce();
      const url = client.buildAuthorizationUrl(config, {
        redirect_uri: rp.redirectUri,
        scope: "openid profile",
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: "S256",
        state,
        nonce,
      });
      const { context, page, sceneId, problems } = await openAuthorize(url, "en-US");
      assert.match(await page.locator("h1").textContent(), /Demo site/);
      assert.equal(await page.getAttribute("html", "lang"), "en");
      await h.shot(page, "oidc-authorize-en");

      // The phone: the scene belongs to the demo client, so the phone names it.
      const scanned = await h.phone.scan(hub.url, sceneId, "alice");
      assert.equal(scanned.client.id, "demo");
      assert.equal(scanned.client.name, "Demo site");
      await h.phone.confirm(hub.url, sceneId, scanned.mp_token, {
        nickname: "Alice",
        avatar_url: `${hub.url}/sim/avatars/1.svg`,
      });

      await page.waitForURL((u) => u.href.startsWith(rp.redirectUri), { timeout: 15000 });
      const landed = new URL(page.url());
      assert.equal(landed.searchParams.get("state"), state);
      assert.equal(landed.searchParams.get("iss"), hub.url);
      assert.ok(landed.searchParams.get("code"), "a code");
      assert.deepEqual(problems, [], "no page error or CSP violation");
      await context.close();

      // The library validates state and iss, exchanges the code with the
      // verifier, and validates the ID token (signature, iss, aud, nonce, exp).
      const tokens = await client.authorizationCodeGrant(config, landed, {
        pkceCodeVerifier: verifier,
        expectedState: state,
        expectedNonce: nonce,
        idTokenExpected: true,
      });
      assert.equal(tokens.token_type.toLowerCase(), "bearer");
      const claims = tokens.claims();
      assert.equal(claims.iss, hub.url);
      assert.equal(claims.aud, "demo");
      assert.equal(claims.nonce, nonce);
      assert.equal(claims.name, "Alice");
      assert.ok(claims.sub);
      const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
      assert.equal(info.sub, claims.sub);
      assert.equal(info.name, "Alice");
      assert.equal(info.picture, `${hub.url}/sim/avatars/1.svg`);

      // The code works once: the library's second exchange is refused.
      await assert.rejects(
        client.authorizationCodeGrant(config, landed, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce }),
        (e) => e.error === "invalid_grant" || e.cause?.error === "invalid_grant",
      );
    } finally {
      await hub.stop();
      await rp.close();
    }
  });

  test("cancelling on the phone sends the browser back with access_denied, state and iss", { timeout: 90000 }, async () => {
    const client = await import("openid-client");
    const rp = await callbackServer();
    const { hub, config } = await setup(client, rp.redirectUri);
    try {
      const verifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const url = client.buildAuthorizationUrl(config, {
        redirect_uri: rp.redirectUri,
        scope: "openid",
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: "S256",
        state,
      });
      const { context, page, sceneId, problems } = await openAuthorize(url, "zh-CN");
      assert.equal(await page.getAttribute("html", "lang"), "zh-CN");
      await h.shot(page, "oidc-authorize-zh");
      const scanned = await h.phone.scan(hub.url, sceneId, "bob");
      await h.phone.cancel(hub.url, sceneId, scanned.mp_token);
      await page.waitForURL((u) => u.href.startsWith(rp.redirectUri), { timeout: 15000 });
      const landed = new URL(page.url());
      assert.equal(landed.searchParams.get("error"), "access_denied");
      assert.equal(landed.searchParams.get("state"), state);
      assert.equal(landed.searchParams.get("iss"), hub.url);
      assert.equal(landed.searchParams.get("code"), null);
      assert.deepEqual(problems, [], "no page error or CSP violation");
      await context.close();
      // The library turns the redirect into the authorization server's error.
      await assert.rejects(
        client.authorizationCodeGrant(config, landed, { pkceCodeVerifier: verifier, expectedState: state }),
        (e) => e.error === "access_denied" || e.cause?.error === "access_denied" || /access_denied/.test(String(e)),
      );
    } finally {
      await hub.stop();
      await rp.close();
    }
  });
});
