// Type declarations for the scanlogin widget (`GET /scanlogin.js`), which
// defines the global `ScanLogin`. See SPEC.md, section "Widget".
//
//   <script src="https://hub.example.com/scanlogin.js"></script>
//   const handle = ScanLogin.mount("#login", {
//     hub: "https://hub.example.com", clientId: "shop", lang: "en",
//     onState: (state, { sceneId }) => {},
//     onLogin: ({ ticket, user }) => fetch("/login", { method: "POST", body: ticket }),
//   });

declare namespace ScanLogin {
  /**
   * What the widget shows. `waiting`, `scanned`, `confirmed`, `cancelled` and
   * `expired` are the hub's scene states; `loading` is while a code is being
   * made, `error` when the hub could not be reached or refused (click to retry).
   */
  type State = "loading" | "waiting" | "scanned" | "confirmed" | "cancelled" | "expired" | "error";

  /** The person as the mini-program reported them. */
  interface User {
    nickname: string | null;
    /** An http(s) URL, or null. */
    avatar_url: string | null;
  }

  /** Passed to `onLogin`: post `ticket` to your backend, which redeems it. */
  interface Login {
    /** One-time ticket, valid for 60 s, redeemed with `POST /api/v1/tickets/redeem`. */
    ticket: string;
    user: User;
  }

  /** Extra facts given to `onState` with each state. */
  interface StateInfo {
    /** The scene (the code on screen), or null while loading or after an error. */
    sceneId: string | null;
  }

  interface Options {
    /** The hub's base URL. Default: the origin `scanlogin.js` was loaded from. */
    hub?: string;
    /** Your `client_id`; the page's origin must be one of its `allowed_origins`. */
    clientId: string;
    /** Language of the texts: "zh-CN" (default) or "en" (any "en-*" too). */
    lang?: "zh-CN" | "en" | (string & {});
    /** Called on every change of what the widget shows. */
    onState?: (state: State, info: StateInfo) => void;
    /** Called exactly once, when the person confirmed on the phone. */
    onLogin?: (login: Login) => void;
    /**
     * Used by the hub's own OpenID Connect authorize page only: its pending
     * authorization's handle, so each scene it shows is bound to it.
     */
    authorizeHandle?: string;
  }

  interface Handle {
    /** Shows a new code (a new scene). Does nothing once logged in. */
    refresh(): void;
    /** Closes connections, stops timers and removes the widget from the page. */
    destroy(): void;
  }

  /**
   * Shows a login code in `target` (an element or a CSS selector) and starts
   * listening for the scene's state: WebSocket first, long-poll otherwise.
   */
  function mount(target: Element | string, options: Options): Handle;
}

interface Window {
  ScanLogin: typeof ScanLogin;
}
