/* The scanlogin confirm page's logic, as plain functions of a `wx` object.
 *
 * The mini-program page (index.js) `require`s it; `node --test` drives it with
 * a fake `wx`; the hub's simulated phone (/sim/phone) loads the very same file
 * as a script (global `ScanLoginMP`) with a `wx` made of fetch calls. So
 * nothing here may touch `Page`, `getApp` or the DOM.
 *
 * ctx = { wx, hub: "https://hub.example.com", appId?: "wx...", timeout?: ms } */
(function (root, factory) {
  var api = factory();
  if (typeof module === "object" && module.exports) module.exports = api;
  else root.ScanLoginMP = api;
})(this, function () {
  "use strict";

  var MESSAGES = {
    "zh-CN": {
      bad_scene: "无法识别这个二维码，请重新扫码。",
      scene_not_found: "这个二维码无效，请在电脑上刷新后重新扫码。",
      scene_expired: "二维码已过期，请在电脑上刷新二维码后重新扫码。",
      scene_taken: "这个二维码已被其他微信用户扫描。",
      scene_final: "这个登录请求已经处理过了。",
      invalid_token: "登录凭证已失效，请重新扫码。",
      wechat_error: "微信登录失败，请稍后重试。",
      login_failed: "微信登录失败，请稍后重试。",
      invalid_request: "提交的信息有误：",
      rate_limited: "操作太频繁，请稍后再试。",
      unavailable: "服务暂时不可用，请稍后重试。",
      network: "网络连接失败，请检查网络后重试。",
      user_not_found: "本服务没有保存你的任何资料。",
      failed: "登录失败，请重试。"
    },
    en: {
      bad_scene: "This code is not a login code. Scan again.",
      scene_not_found: "This code is not valid. Refresh it on the computer and scan again.",
      scene_expired: "This code has expired. Refresh it on the computer and scan again.",
      scene_taken: "Another WeChat user already scanned this code.",
      scene_final: "This login request was already answered.",
      invalid_token: "This confirmation is no longer valid. Scan again.",
      wechat_error: "WeChat login failed. Try again in a moment.",
      login_failed: "WeChat login failed. Try again in a moment.",
      invalid_request: "Something you entered was not accepted: ",
      rate_limited: "Too many tries. Wait a moment and try again.",
      unavailable: "The service is unavailable right now. Try again later.",
      network: "Could not reach the server. Check the network and try again.",
      user_not_found: "The hub holds nothing about you.",
      failed: "Login failed. Try again."
    }
  };

  /** The account view's words, in zh-CN and en (accountText). */
  var ACCOUNT_TEXT = {
    "zh-CN": {
      title: "我的账号",
      show: "查看我的账号",
      userId: "用户编号",
      nickname: "昵称",
      identities: "微信身份",
      phone: "手机号",
      phoneKept: "已保存",
      phoneNotKept: "未保存",
      created: "首次使用",
      clients: "登录过的网站",
      first: "首次登录",
      last: "最近登录",
      phoneShared: "已分享手机号",
      logins: "最近的登录",
      none: "无",
      remove: "删除我的账号",
      confirmTitle: "删除账号？",
      confirmBody: "将删除本服务保存的你的全部资料（昵称、头像、手机号、登录记录），并通知你登录过的网站。此操作不能撤销。",
      confirmOk: "删除",
      cancel: "取消",
      deleted: "你的账号已删除。以后再次扫码登录时，会作为新用户登录。",
      close: "关闭"
    },
    en: {
      title: "My account",
      show: "Show my account",
      userId: "User id",
      nickname: "Nickname",
      identities: "WeChat identities",
      phone: "Phone number",
      phoneKept: "kept",
      phoneNotKept: "not kept",
      created: "First seen",
      clients: "Sites you logged in to",
      first: "first",
      last: "last",
      phoneShared: "phone number shared",
      logins: "Recent logins",
      none: "none",
      remove: "Delete my account",
      confirmTitle: "Delete your account?",
      confirmBody: "Everything this service keeps about you (nickname, avatar, phone number, logins) will be deleted, and the sites you logged in to will be told. This cannot be undone.",
      confirmOk: "Delete",
      cancel: "Cancel",
      deleted: "Your account is deleted. If you scan to log in again, you will be a new user.",
      close: "Close"
    }
  };

  /** An error with a stable `code` (the hub's problem code, or network/login_failed/bad_scene). */
  function ScanError(code, status, detail) {
    var err = new Error(detail || code);
    err.name = "ScanError";
    err.code = code;
    err.status = status || 0;
    err.detail = detail || "";
    return err;
  }

  /** The scene id from the page's `query` (`decodeURIComponent(query.scene)`), or null. */
  function sceneFromQuery(query) {
    var raw = query && query.scene;
    if (typeof raw !== "string") return null;
    var scene;
    try {
      scene = decodeURIComponent(raw);
    } catch (e) {
      return null;
    }
    scene = scene.trim().toLowerCase();
    return /^[0-9a-f]{32}$/.test(scene) ? scene : null;
  }

  /** This mini-program's app id, when `wx` can tell; the hub defaults to its first app otherwise. */
  function appIdOf(ctx) {
    if (ctx.appId) return ctx.appId;
    try {
      return ctx.wx.getAccountInfoSync().miniProgram.appId || undefined;
    } catch (e) {
      return undefined;
    }
  }

  /** POSTs JSON to the hub with wx.request; resolves the body of a 2xx, rejects a ScanError. */
  function post(ctx, path, data) {
    return new Promise(function (resolve, reject) {
      ctx.wx.request({
        url: String(ctx.hub).replace(/\/+$/, "") + path,
        method: "POST",
        data: data,
        header: { "content-type": "application/json" },
        timeout: ctx.timeout || 10000,
        success: function (res) {
          var body = res.data;
          if (typeof body === "string") {
            try {
              body = JSON.parse(body);
            } catch (e) {
              body = {};
            }
          }
          if (res.statusCode >= 200 && res.statusCode < 300) return resolve(body);
          var problem = body && typeof body === "object" ? body : {};
          reject(ScanError(problem.code || "failed", res.statusCode, problem.detail || problem.title));
        },
        fail: function (err) {
          reject(ScanError("network", 0, err && err.errMsg));
        }
      });
    });
  }

  /** wx.login as a promise of a one-time code. */
  function login(wx) {
    return new Promise(function (resolve, reject) {
      wx.login({
        timeout: 10000,
        success: function (res) {
          if (res && res.code) resolve(res.code);
          else reject(ScanError("login_failed", 0, res && res.errMsg));
        },
        fail: function (err) {
          reject(ScanError("login_failed", 0, err && err.errMsg));
        }
      });
    });
  }

  /** Legacy wx.getUserInfo({withCredentials}) as a promise of the encrypted profile. */
  function userInfo(wx) {
    return new Promise(function (resolve, reject) {
      wx.getUserInfo({
        withCredentials: true,
        lang: "zh_CN",
        success: resolve,
        fail: function (err) {
          reject(ScanError("login_failed", 0, err && err.errMsg));
        }
      });
    });
  }

  /** A short "Chrome · Windows" for a User-Agent string. */
  function describeBrowser(ua) {
    ua = String(ua || "");
    var browser = /Edg(e|A|iOS)?\//.test(ua) ? "Edge"
      : /OPR\//.test(ua) ? "Opera"
      : /MicroMessenger\//.test(ua) ? "WeChat"
      : /Firefox\/|FxiOS\//.test(ua) ? "Firefox"
      : /Chrome\/|Chromium\/|CriOS\//.test(ua) ? "Chrome"
      : /Safari\//.test(ua) ? "Safari"
      : /curl\//.test(ua) ? "curl" : "";
    var os = /Windows/.test(ua) ? "Windows"
      : /iPhone|iPad|iPod/.test(ua) ? "iOS"
      : /Mac OS X|Macintosh/.test(ua) ? "macOS"
      : /Android/.test(ua) ? "Android"
      : /CrOS/.test(ua) ? "ChromeOS"
      : /Linux/.test(ua) ? "Linux" : "";
    if (!browser && !os) return ua.slice(0, 48) || "?";
    return [browser, os].filter(Boolean).join(" · ");
  }

  /**
   * The browser's approximate place as one line ("CN 广东 深圳"), from the
   * scan answer's `browser.location` (hubs with a GeoIP database); "" when
   * unknown.
   */
  function describePlace(location) {
    if (!location || typeof location !== "object") return "";
    return [location.country, location.region, location.city]
      .filter(function (part) { return typeof part === "string" && part; })
      .join(" ");
  }

  /** True for an avatar the hub and the browser can load: http(s), not a local temp file. */
  function isRemoteUrl(url) {
    return /^https?:\/\/[^/]/i.test(url || "") && !/^https?:\/\/(tmp|usr|store)\//i.test(url);
  }

  /**
   * Scans: wx.login, then POST /api/v1/mp/scan. Resolves
   * { mpToken, expiresAt, site: {id, name, origin}, browser: {kind, ip, userAgent, label,
   * place, far} }.
   * `browser.kind` is "server" when the code was made without a web page
   * (no Origin): what a QRLJacking script does, so the page warns.
   * `browser.place` is where the browser is ("" when the hub does not know)
   * and `browser.far` is true when that is another country or region than
   * the phone's: a code relayed by a phishing page, so the page warns.
   */
  function scan(ctx, sceneId) {
    if (!sceneId) return Promise.reject(ScanError("bad_scene"));
    return login(ctx.wx)
      .then(function (code) {
        var body = { scene_id: sceneId, code: code };
        var app = appIdOf(ctx);
        if (app) body.app_id = app;
        return post(ctx, "/api/v1/mp/scan", body);
      })
      .then(function (a) {
        var client = a.client || {};
        var browser = a.browser || {};
        return {
          mpToken: a.mp_token,
          expiresAt: a.expires_at,
          site: {
            id: client.id,
            name: client.name || client.id,
            origin: client.origin || "",
            // The site asks for the phone number: offer the getPhoneNumber button.
            wantsPhone: client.wants_phone === true
          },
          browser: {
            kind: browser.kind === "server" ? "server" : "browser",
            ip: browser.ip || "",
            userAgent: browser.user_agent || "",
            label: describeBrowser(browser.user_agent),
            place: describePlace(browser.location),
            far: browser.far_from_phone === true
          }
        };
      });
  }

  /**
   * Confirms: POST /api/v1/mp/confirm with the person's nickname and avatar
   * (o.nickname, o.avatarUrl) as `profile`, or with `legacy: true` the
   * encrypted profile of wx.getUserInfo. `o.phoneCode` (from the
   * getPhoneNumber button, see phoneCodeFrom) shares the phone number.
   * Resolves {state, user_id}.
   */
  function confirm(ctx, o) {
    var body = { scene_id: o.sceneId, mp_token: o.mpToken };
    if (o.phoneCode) body.phone_code = String(o.phoneCode);
    var app = appIdOf(ctx);
    if (app) body.app_id = app;
    var extra = Promise.resolve();
    if (o.legacy) {
      extra = userInfo(ctx.wx).then(function (info) {
        body.encrypted_data = info.encryptedData;
        body.iv = info.iv;
        if (info.rawData && info.signature) {
          body.raw_data = info.rawData;
          body.signature = info.signature;
        }
      });
    } else {
      var profile = {};
      var nickname = String(o.nickname || "").trim();
      if (nickname) profile.nickname = nickname;
      if (isRemoteUrl(o.avatarUrl)) profile.avatar_url = o.avatarUrl;
      body.profile = profile;
    }
    return extra.then(function () {
      return post(ctx, "/api/v1/mp/confirm", body);
    });
  }

  /** The Content-Type for a chooseAvatar file, from its name (WeChat gives .jpg, .png or .webp). */
  function imageType(path) {
    var ext = (/\.([a-z0-9]+)$/i.exec(String(path || "")) || [])[1];
    ext = ext ? ext.toLowerCase() : "";
    return ext === "png" ? "image/png" : ext === "webp" ? "image/webp" : "image/jpeg";
  }

  /**
   * Uploads the chooseAvatar file (a local temporary path) to the hub:
   * POST /api/v1/mp/avatar with the raw bytes and the scan's mp token.
   * wx.uploadFile sends multipart/form-data, so the file is read with
   * FileSystemManager.readFile as an ArrayBuffer and sent with wx.request.
   * Resolves the hub's https avatar URL, to send as profile.avatar_url.
   */
  function uploadAvatar(ctx, o) {
    return new Promise(function (resolve, reject) {
      ctx.wx.getFileSystemManager().readFile({
        filePath: o.path,
        success: function (res) { resolve(res.data); },
        fail: function (err) { reject(ScanError("failed", 0, err && err.errMsg)); }
      });
    }).then(function (bytes) {
      return new Promise(function (resolve, reject) {
        ctx.wx.request({
          url: String(ctx.hub).replace(/\/+$/, "") + "/api/v1/mp/avatar",
          method: "POST",
          data: bytes,
          header: { "content-type": imageType(o.path), Authorization: "Bearer " + o.mpToken },
          timeout: ctx.timeout || 20000,
          success: function (res) {
            var body = res.data;
            if (typeof body === "string") {
              try {
                body = JSON.parse(body);
              } catch (e) {
                body = {};
              }
            }
            body = body && typeof body === "object" ? body : {};
            if (res.statusCode === 201 && isRemoteUrl(body.avatar_url)) return resolve(body.avatar_url);
            reject(ScanError(body.code || "failed", res.statusCode, body.detail || body.title));
          },
          fail: function (err) { reject(ScanError("network", 0, err && err.errMsg)); }
        });
      });
    });
  }

  /** The code of a `getphonenumber` button event, or null when the person refused. */
  function phoneCodeFrom(event) {
    var d = (event && event.detail) || {};
    return typeof d.code === "string" && d.code && !/fail|deny/i.test(d.errMsg || "") ? d.code : null;
  }

  /** Refuses: POST /api/v1/mp/cancel. Resolves {state: "cancelled"}. */
  function cancel(ctx, o) {
    var body = { scene_id: o.sceneId, mp_token: o.mpToken };
    var app = appIdOf(ctx);
    if (app) body.app_id = app;
    return post(ctx, "/api/v1/mp/cancel", body);
  }

  /** "en" when WeChat's language is English, else "zh-CN". */
  function langOf(wx) {
    var language = "";
    try {
      language = (wx.getAppBaseInfo ? wx.getAppBaseInfo() : wx.getSystemInfoSync()).language || "";
    } catch (e) {
      language = "";
    }
    return /^en/i.test(language) ? "en" : "zh-CN";
  }

  /** The account view's words in "zh-CN" (default) or "en". */
  function accountText(lang) {
    return ACCOUNT_TEXT[lang === "en" ? "en" : "zh-CN"];
  }

  /** "2026-12-07 19:40" (the phone's local time) for an RFC 3339 time; "" when it is not one. */
  function formatTime(rfc3339) {
    var t = new Date(rfc3339);
    if (!rfc3339 || isNaN(t.getTime())) return "";
    var two = function (n) { return (n < 10 ? "0" : "") + n; };
    return t.getFullYear() + "-" + two(t.getMonth() + 1) + "-" + two(t.getDate()) + " " +
      two(t.getHours()) + ":" + two(t.getMinutes());
  }

  /**
   * What the page shows of an account answer (POST /api/v1/mp/account):
   * { userId, nickname, avatarUrl, identities: ["wx… · o…"], phoneKept,
   * created, clients: [{ id, name, first, last, phoneShared }], logins:
   * [{ site, when, ip, browser, place }] }, times as formatTime gives them.
   */
  function describeAccount(a) {
    a = a || {};
    var user = a.user || {};
    var names = {};
    var clients = (a.clients || []).map(function (c) {
      names[c.client_id] = c.name || c.client_id;
      return {
        id: c.client_id,
        name: c.name || c.client_id,
        first: formatTime(c.first_login_at),
        last: formatTime(c.last_login_at),
        phoneShared: c.phone_shared === true
      };
    });
    return {
      userId: user.id || "",
      nickname: user.nickname || "",
      avatarUrl: isRemoteUrl(user.avatar_url) ? user.avatar_url : "",
      identities: (user.identities || []).map(function (i) { return i.app_id + " · " + i.openid; }),
      phoneKept: user.phone_number_kept === true,
      created: formatTime(user.created_at),
      clients: clients,
      logins: (a.logins || []).map(function (l) {
        return {
          site: names[l.client_id] || l.client_id,
          when: formatTime(l.at),
          ip: l.ip || "",
          browser: describeBrowser(l.user_agent),
          place: describePlace(l.location)
        };
      })
    };
  }

  /** Sends a fresh wx.login code to `path` of the hub. */
  function withCode(ctx, path) {
    return login(ctx.wx).then(function (code) {
      var body = { code: code };
      var app = appIdOf(ctx);
      if (app) body.app_id = app;
      return post(ctx, path, body);
    });
  }

  /**
   * What the hub keeps about this person: wx.login, then POST
   * /api/v1/mp/account. Resolves describeAccount of the answer; rejects
   * a ScanError ("user_not_found" when the hub keeps nothing).
   */
  function account(ctx) {
    return withCode(ctx, "/api/v1/mp/account").then(describeAccount);
  }

  /**
   * Deletes everything the hub keeps about this person (ask them first):
   * wx.login, then POST /api/v1/mp/account/delete. Resolves {deleted, user_id}.
   */
  function deleteAccount(ctx) {
    return withCode(ctx, "/api/v1/mp/account/delete");
  }

  /** A sentence for the person about `err`, in "zh-CN" (default) or "en". */
  function message(err, lang) {
    var m = MESSAGES[lang === "en" ? "en" : "zh-CN"];
    var code = err && err.code;
    if (code === "invalid_request") return m.invalid_request + (err.detail || "");
    return m[code] || m.failed;
  }

  return {
    ScanError: ScanError,
    sceneFromQuery: sceneFromQuery,
    describeBrowser: describeBrowser,
    describePlace: describePlace,
    isRemoteUrl: isRemoteUrl,
    login: login,
    scan: scan,
    confirm: confirm,
    phoneCodeFrom: phoneCodeFrom,
    imageType: imageType,
    uploadAvatar: uploadAvatar,
    cancel: cancel,
    message: message,
    langOf: langOf,
    accountText: accountText,
    formatTime: formatTime,
    describeAccount: describeAccount,
    account: account,
    deleteAccount: deleteAccount
  };
});
