/*! scanlogin widget: shows a WeChat mini-program code and reports the login.
 * Usage (see scanlogin.d.ts):
 *   var handle = ScanLogin.mount("#login", { hub: "https://hub.example.com",
 *     clientId: "shop", lang: "zh-CN", onState: fn(state, {sceneId}),
 *     onLogin: fn({ticket, user}) });   handle.refresh(); handle.destroy();
 * No dependencies. The browser_token is sent only in the socket's first frame
 * or an Authorization header: never in a URL, never logged. */
(function (window, document) {
  "use strict";

  var TEXT = {
    "zh-CN": {
      loading: "正在加载二维码…",
      waiting: "请使用微信扫一扫登录",
      scanned: "扫码成功，请在手机上确认登录",
      confirmed: "登录成功",
      confirmedAs: "登录成功：",
      cancelled: "你已在手机上取消登录",
      expired: "二维码已过期，点击刷新",
      error: "二维码加载失败，点击重试",
      refresh: "刷新二维码",
      renew: "获取新二维码",
      retry: "重试",
      offline: "连接中断，正在重连…",
      alt: "微信小程序码，请用微信扫一扫登录",
      avatar: "的头像"
    },
    en: {
      loading: "Loading the login code…",
      waiting: "Scan with WeChat to log in",
      scanned: "Scanned — confirm on your phone",
      confirmed: "Logged in",
      confirmedAs: "Logged in as ",
      cancelled: "Login cancelled on the phone",
      expired: "Code expired — click to refresh",
      error: "Could not load the code — click to try again",
      refresh: "Refresh code",
      renew: "Get a new code",
      retry: "Try again",
      offline: "Connection lost, reconnecting…",
      alt: "WeChat mini-program code: scan it with WeChat to log in",
      avatar: "'s avatar"
    }
  };
  var RANK = { waiting: 0, scanned: 1, confirmed: 2, cancelled: 2, expired: 2 };
  var BUTTON = { expired: "refresh", cancelled: "renew", error: "retry" };
  // A page with a strict Content-Security-Policy loads the widget with a
  // nonce; the widget's own <style> carries the same one.
  var NONCE = (document.currentScript && document.currentScript.nonce) || "";

  var CSS =
    ".scanlogin{box-sizing:border-box;width:240px;padding:16px;text-align:center;color:#1f2328;background:#fff;" +
    "border:1px solid #d8dee4;border-radius:12px;font:14px/1.5 system-ui,-apple-system,'PingFang SC','Microsoft YaHei',sans-serif}" +
    ".scanlogin *{box-sizing:border-box}.scanlogin [hidden]{display:none!important}" +
    ".scanlogin .scanlogin-code{position:relative;width:200px;height:200px;margin:0 auto}" +
    ".scanlogin .scanlogin-qr{display:block;width:100%;height:100%}" +
    ".scanlogin[data-busy] .scanlogin-qr,.scanlogin[data-state=error] .scanlogin-qr{visibility:hidden}" +
    ".scanlogin .scanlogin-spin{display:none;position:absolute;top:50%;left:50%;width:36px;height:36px;margin:-18px;" +
    "border:3px solid #d8dee4;border-top-color:#07c160;border-radius:50%;animation:scanlogin-spin .8s linear infinite}" +
    ".scanlogin[data-busy] .scanlogin-spin{display:block}" +
    "@keyframes scanlogin-spin{to{transform:rotate(360deg)}}" +
    ".scanlogin .scanlogin-veil,.scanlogin .scanlogin-button{position:absolute;top:0;left:0;width:100%;height:100%;display:flex;" +
    "flex-direction:column;align-items:center;justify-content:center;gap:6px;background:rgba(255,255,255,.94)}" +
    ".scanlogin .scanlogin-veil{display:none;color:#07c160;font-size:56px;line-height:1}" +
    ".scanlogin[data-state=scanned] .scanlogin-veil{display:flex}" +
    ".scanlogin .scanlogin-button{margin:0;padding:0;border:0;border-radius:4px;cursor:pointer;color:#1f2328;font:inherit;font-weight:600}" +
    ".scanlogin .scanlogin-button:hover{background:rgba(246,248,250,.96)}" +
    ".scanlogin .scanlogin-button:focus-visible{outline:3px solid #0969da;outline-offset:2px}" +
    ".scanlogin .scanlogin-button span{font-size:36px;line-height:1;color:#07c160}" +
    ".scanlogin .scanlogin-status{margin:12px 0 0;min-height:1.5em;color:#1f2328;font-size:14px;font-weight:500}" +
    ".scanlogin .scanlogin-note{margin:4px 0 0;color:#656d76;font-size:12px}" +
    ".scanlogin .scanlogin-face{display:block;width:80px;height:80px;margin:8px auto 0;border-radius:50%;object-fit:cover;" +
    "background:#07c160;color:#fff;font-size:36px;line-height:80px}";

  var script = document.currentScript;
  var defaultHub = script && script.src ? new URL(script.src, location.href).origin : location.origin;

  function el(tag, cls, parent) {
    var node = document.createElement(tag);
    if (cls) node.className = "scanlogin-" + cls;
    if (parent) parent.appendChild(node);
    return node;
  }

  function injectStyle() {
    if (document.getElementById("scanlogin-style")) return;
    var style = el("style");
    style.id = "scanlogin-style";
    if (NONCE) style.nonce = NONCE;
    style.textContent = CSS;
    (document.head || document.documentElement).appendChild(style);
  }

  /** Calls a site callback; its exception is reported but never breaks the widget. */
  function call(fn) {
    if (typeof fn !== "function") return;
    try {
      fn.apply(null, Array.prototype.slice.call(arguments, 1));
    } catch (e) {
      setTimeout(function () { throw e; });
    }
  }

  function mount(target, options) {
    var host = typeof target === "string" ? document.querySelector(target) : target;
    if (!host || !host.appendChild) throw new Error("ScanLogin.mount: no element " + target);
    var opts = options || {};
    if (!opts.clientId) throw new Error("ScanLogin.mount: clientId is required");
    var hub = String(opts.hub || defaultHub).replace(/\/+$/, "");
    var lang = /^en/i.test(opts.lang || "") ? "en" : "zh-CN";
    var t = TEXT[lang];

    injectStyle();
    var root = el("div");
    root.className = "scanlogin";
    root.lang = lang;
    var code = el("div", "code", root);
    var qr = el("img", "qr", code);
    qr.alt = t.alt;
    qr.width = qr.height = 200;
    el("div", "spin", code).setAttribute("aria-hidden", "true");
    var veil = el("div", "veil", code);
    veil.textContent = "✓";
    veil.setAttribute("aria-hidden", "true");
    var button = el("button", "button", code);
    button.type = "button";
    var face = el("img", "face", root);
    face.referrerPolicy = "no-referrer";
    var initial = el("div", "face", root);
    initial.setAttribute("aria-hidden", "true");
    var status = el("p", "status", root);
    status.setAttribute("role", "status");
    status.setAttribute("aria-live", "polite");
    var note = el("p", "note", root);
    host.appendChild(root);

    var gen = 0; // bumped by every new scene and by destroy: older callbacks then do nothing
    var scene = null; // {id, token, ws, events, state}
    var socket = null;
    var poller = null;
    var retryTimer = null;
    var expiryTimer = null;
    var failures = 0;
    var socketWorked = false;
    var socketFailures = 0;
    var usePoll = typeof window.WebSocket !== "function";
    var loggedIn = false;
    var destroyed = false;

    function show(state, user) {
      root.setAttribute("data-state", state);
      var name = user && user.nickname;
      status.textContent = state === "confirmed" && name ? t.confirmedAs + name : t[state];
      var label = BUTTON[state];
      button.hidden = !label;
      button.innerHTML = "";
      if (label) {
        el("span", "", button).textContent = "↻";
        button.appendChild(document.createTextNode(t[label]));
      }
      code.hidden = state === "confirmed";
      var avatar = user && user.avatar_url;
      var goodAvatar = state === "confirmed" && /^https?:\/\//i.test(avatar || "");
      face.hidden = !goodAvatar;
      initial.hidden = state !== "confirmed" || goodAvatar;
      if (goodAvatar) {
        face.alt = name ? name + t.avatar : "";
        face.src = avatar;
      }
      initial.textContent = name ? Array.from(name)[0] : "✓";
      note.hidden = true;
    }

    function setState(state, user) {
      if (state === "error") root.removeAttribute("data-busy");
      show(state, user);
      call(opts.onState, state, { sceneId: scene && scene.id });
    }

    face.onerror = function () {
      face.hidden = true;
      initial.hidden = false;
    };
    qr.onload = function () {
      root.removeAttribute("data-busy");
    };
    qr.onerror = function () {
      if (scene && qr.getAttribute("src")) fail();
    };
    button.onclick = function () {
      refresh();
    };

    /** Stops the socket, the poll and the timers of the current scene. */
    function stop() {
      if (socket) {
        socket.onclose = socket.onmessage = socket.onopen = null;
        try { socket.close(1000); } catch (e) { /* already closed */ }
        socket = null;
      }
      if (poller) poller.abort();
      poller = null;
      clearTimeout(retryTimer);
      clearTimeout(expiryTimer);
      retryTimer = expiryTimer = null;
    }

    function fail() {
      stop();
      gen++;
      setState("error");
    }

    function start() {
      stop();
      var my = ++gen;
      scene = null;
      failures = 0;
      root.setAttribute("data-busy", ""); // spinner until the code image has loaded
      qr.removeAttribute("src");
      setState("loading");
      fetch(hub + "/api/v1/scenes", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(opts.authorizeHandle
          ? { client_id: opts.clientId, authorize_handle: opts.authorizeHandle }
          : { client_id: opts.clientId }),
        credentials: "omit",
        cache: "no-store"
      })
        .then(function (res) {
          if (res.ok) return res.json();
          // Tell the site's developer why (e.g. origin_not_allowed); the answer holds no secret.
          return res.json().catch(function () { return {}; }).then(function (problem) {
            var why = problem.detail || problem.code || "HTTP " + res.status;
            if (window.console) console.warn("scanlogin: no login code: " + why);
            throw new Error(why);
          });
        })
        .then(function (b) {
          if (my !== gen) return;
          scene = { id: b.scene_id, token: b.browser_token, ws: b.ws_url, events: b.events_url, state: "waiting" };
          // The hub pushes "expired"; this timer covers a hub that cannot be reached then.
          expiryTimer = setTimeout(event, (b.expires_in + 3) * 1000, { scene_id: b.scene_id, state: "expired" }, my);
          qr.src = b.qrcode_url;
          setState("waiting");
          connect(my);
        })
        .catch(function () {
          if (my === gen) fail();
        });
    }

    /** Applies a state event of the current scene; older or repeated states are ignored. */
    function event(ev, my) {
      if (my !== gen || !scene || !ev || ev.scene_id !== scene.id) return;
      if (typeof RANK[ev.state] !== "number" || RANK[ev.state] <= RANK[scene.state]) return;
      scene.state = ev.state;
      if (RANK[ev.state] === 2) stop();
      if (ev.state !== "confirmed") return setState(ev.state);
      var user = ev.user || {};
      setState("confirmed", user);
      if (!loggedIn) {
        loggedIn = true;
        call(opts.onLogin, { ticket: ev.ticket, user: { nickname: user.nickname || null, avatar_url: user.avatar_url || null } });
      }
    }

    function parse(text) {
      try {
        return JSON.parse(text);
      } catch (e) {
        return null;
      }
    }

    function live(my) {
      return my === gen && scene && RANK[scene.state] < 2;
    }

    /** Listens to the scene: WebSocket first, long-poll when sockets are missing or blocked. */
    function connect(my) {
      retryTimer = null;
      if (!live(my)) return;
      if (usePoll) return poll(my);
      var sock;
      try {
        sock = new window.WebSocket(scene.ws);
      } catch (e) {
        usePoll = true;
        return poll(my);
      }
      socket = sock;
      var opened = false;
      var openTimer = setTimeout(function () {
        if (!opened) sock.close();
      }, 8000);
      sock.onopen = function () {
        opened = socketWorked = true;
        socketFailures = 0;
        clearTimeout(openTimer);
        sock.send(JSON.stringify({ type: "auth", browser_token: scene.token }));
      };
      sock.onmessage = function (m) {
        failures = 0;
        note.hidden = true;
        event(parse(m.data), my);
      };
      sock.onclose = function (e) {
        clearTimeout(openTimer);
        if (socket === sock) socket = null;
        if (!live(my)) return;
        if (e.code === 4410) return event({ scene_id: scene.id, state: "expired" }, my);
        if (e.code === 4401 || e.code === 4404) return fail();
        // Never opened: blocked, or the hub is down. Long-poll after 2 such
        // failures (4 when sockets worked before): it also works when the hub is back.
        if (!opened && ++socketFailures >= (socketWorked ? 4 : 2)) usePoll = true;
        retry(my);
      };
    }

    function poll(my) {
      var ctl = new AbortController();
      var timeout = setTimeout(function () { ctl.abort(); }, 40000);
      var after = scene.state;
      poller = ctl;
      fetch(scene.events + "?after=" + after + "&wait=25", {
        headers: { Authorization: "Bearer " + scene.token },
        credentials: "omit",
        cache: "no-store",
        signal: ctl.signal
      })
        .then(function (res) {
          if (res.status === 401 || res.status === 404) return { fatal: true };
          if (res.status === 410) return { scene_id: scene.id, state: "expired" };
          if (!res.ok) throw new Error("scanlogin: events answered " + res.status);
          return res.json();
        })
        .then(
          function (ev) {
            clearTimeout(timeout);
            if (poller === ctl) poller = null;
            if (my !== gen) return;
            if (!ev || ev.fatal) return fail();
            failures = 0;
            note.hidden = true;
            event(ev, my);
            // An unchanged state means the hub waited; a short pause guards against a hub that does not.
            if (live(my)) retryTimer = setTimeout(connect, ev.state === after ? 1000 : 0, my);
          },
          function () {
            clearTimeout(timeout);
            if (poller === ctl) poller = null;
            if (my === gen) retry(my);
          }
        );
    }

    /** Reconnects to the same scene after 0.5 s, 1 s, 2 s, ... up to 15 s, with jitter. */
    function retry(my) {
      var delay = Math.min(15000, 500 * Math.pow(2, failures++)) * (0.75 + Math.random() / 2);
      if (failures > 1) note.hidden = false;
      note.textContent = t.offline;
      retryTimer = setTimeout(connect, delay, my);
    }

    function onVisible() {
      if (document.visibilityState !== "visible" || destroyed) return;
      if (scene && scene.state === "expired" && !loggedIn) return refresh();
      if (retryTimer) {
        clearTimeout(retryTimer);
        connect(gen);
      }
    }
    document.addEventListener("visibilitychange", onVisible);
    window.addEventListener("online", onVisible);

    /** Shows a new code (does nothing once logged in or destroyed). */
    function refresh() {
      if (!loggedIn && !destroyed) start();
    }

    function destroy() {
      if (destroyed) return;
      destroyed = true;
      stop();
      gen++;
      document.removeEventListener("visibilitychange", onVisible);
      window.removeEventListener("online", onVisible);
      if (root.parentNode) root.parentNode.removeChild(root);
    }

    start();
    return { refresh: refresh, destroy: destroy };
  }

  window.ScanLogin = { mount: mount };
})(window, document);
