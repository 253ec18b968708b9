// Verifies captured webhook deliveries with the reference Standard Webhooks
// library (npm `standardwebhooks`), not with scanlogin's own code. Driven by
// the Rust suite (tests/api/webhooks/): reads
// {"secret": "whsec_...", "deliveries": [{"headers": {...}, "body": "..."}]}
// from the file named by its argument and prints, per delivery, either
// {"ok": true, "payload": <the verified JSON>} or {"ok": false, "error": "..."}.
"use strict";

const fs = require("node:fs");
const { Webhook } = require("standardwebhooks");

const input = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const wh = new Webhook(input.secret);
const results = input.deliveries.map(({ headers, body }) => {
  try {
    return { ok: true, payload: wh.verify(body, headers) };
  } catch (e) {
    return { ok: false, error: String(e && e.message ? e.message : e) };
  }
});
process.stdout.write(JSON.stringify(results));
