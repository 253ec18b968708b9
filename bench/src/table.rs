//! What a run found, judged against the targets and laid out as the
//! readable table (the JSON line is the same figures).

use serde_json::{Value, json};

use crate::report::{ROW_HEADER, Summary};

/// Targets of issue 4 (2 cores, N = 10,000, R = 1,000/s, D = 10 s).
const TARGET_BYTES_PER_BROWSER: f64 = 4096.0;
const TARGET_PUSH_P99_US: f64 = 1500.0;
const TARGET_CPU_PER_LOGIN_US: f64 = 300.0;

/// The login phases after `logins`: their key in the JSON line and name.
const FLOW_PHASES: [(&str, &str); 2] = [("full", "full logins"), ("oidc", "OIDC logins")];

/// Each target, its measured value and whether it is met.
pub fn targets(out: &Value) -> Value {
    let mem = out["memory"]["bytes_per_waiting_browser"].as_f64();
    let p99 = out["confirm"]["push"]["p99_us"].as_f64();
    let cpu = out["logins"]["hub_cpu_us_per_login"].as_f64();
    let login_errors = out["logins"]["errors"].as_u64().unwrap_or(1);
    let check = |v: Option<f64>, limit: f64| json!({"value": v, "limit": limit, "met": v.is_some_and(|v| v <= limit)});
    let mut cpu_check = check(cpu, TARGET_CPU_PER_LOGIN_US);
    cpu_check["met"] = json!(cpu_check["met"] == true && login_errors == 0);
    json!({
        "bytes_per_waiting_browser": check(mem, TARGET_BYTES_PER_BROWSER),
        "push_p99_us": check(p99, TARGET_PUSH_P99_US),
        "hub_cpu_us_per_login": cpu_check,
    })
}

/// Where WeChat's CPU went, after a hub CPU figure.
fn wechat_note(out: &Value, cpu: &Value, per_what: &str) -> String {
    match (out["wechat"].as_str(), cpu.as_f64()) {
        (Some("simulator"), _) => {
            "\n      (includes the built-in WeChat simulator's side)".to_owned()
        }
        (_, Some(us)) => format!("\n      (not counted there: fake WeChat CPU {us} us/{per_what})"),
        _ => String::new(),
    }
}

/// The readable table.
pub fn table(out: &Value) -> String {
    let f = |v: &Value| v.as_f64().map_or("-".to_owned(), |x| format!("{x}"));
    let mut t = String::new();
    let mem = &out["memory"];
    t += "\nscanlogin-bench results\n";
    t += &format!(
        "  waiting browsers          {:>8}   hub RSS {} -> {} -> {} KiB (before, scenes, sockets)\n",
        f(&mem["browsers"]),
        f(&mem["rss_before_kib"]),
        f(&mem["rss_after_scenes_kib"]),
        f(&mem["rss_waiting_kib"])
    );
    t += &format!(
        "  memory per waiting browser {:>7} B   (scene {} B + socket {} B)   target <= 4096 B\n",
        f(&mem["bytes_per_waiting_browser"]),
        f(&mem["bytes_per_scene_row"]),
        f(&mem["bytes_per_socket"])
    );
    if out["idle"].is_object() {
        t += &format!(
            "  idle hub CPU              {:>7} % of one core over {} s\n",
            f(&out["idle"]["hub_cpu_pct_of_one_core"]),
            f(&out["idle"]["secs"])
        );
    }
    let c = &out["confirm"];
    t += &format!(
        "  confirms                  {:>8}   at {}/s, pushed {}, errors {}, max send lag {} us, hub CPU {} us/confirm ({} cores busy){}\n",
        f(&c["sent"]),
        f(&c["rate"]),
        f(&c["pushed"]),
        f(&c["errors"]),
        f(&c["max_send_lag_us"]),
        f(&c["hub_cpu_us_per_confirm"]),
        f(&c["hub_cores_busy"]),
        wechat_note(out, &c["wechat_cpu_us_per_confirm"], "confirm")
    );
    let l = &out["logins"];
    t += &format!(
        "  logins                    {:>8}   {}/s with {} workers, errors {}, hub CPU {} us/login ({} cores busy)  target <= 300 us{}\n",
        f(&l["ok"]),
        f(&l["per_sec"]),
        f(&l["workers"]),
        f(&l["errors"]),
        f(&l["hub_cpu_us_per_login"]),
        f(&l["hub_cores_busy"]),
        wechat_note(out, &l["wechat_cpu_us_per_login"], "login")
    );
    for (key, name) in FLOW_PHASES {
        let l = &out[key];
        if l.is_object() {
            t += &format!(
                "  {:<26}{:>8}   {}/s with {} workers, errors {}, hub CPU {} us/login ({} cores busy){}\n",
                name,
                f(&l["ok"]),
                f(&l["per_sec"]),
                f(&l["workers"]),
                f(&l["errors"]),
                f(&l["hub_cpu_us_per_login"]),
                f(&l["hub_cores_busy"]),
                wechat_note(out, &l["wechat_cpu_us_per_login"], "login")
            );
        }
    }
    if out["poll"].is_object() {
        let p = &out["poll"];
        t += &format!(
            "  short polls               {:>8}   {}/s, hub CPU {} us/request; 10,000 browsers at 1/s need {} cores, mean delay {} ms\n",
            f(&p["requests"]),
            f(&p["per_sec"]),
            f(&p["hub_cpu_us_per_request"]),
            f(&p["baseline_10k_browsers_1s"]["hub_cores_needed"]),
            f(&p["baseline_10k_browsers_1s"]["mean_delay_ms"])
        );
    }
    t += ROW_HEADER;
    t += "\n";
    let row = |label: &str, v: &Value| -> String {
        serde_json::from_value::<Summary>(v.clone())
            .map(|s| s.row(label))
            .unwrap_or_default()
    };
    t += &row("confirm -> push", &c["push"]);
    t += "\n";
    t += &row("confirm HTTP answer", &c["http"]);
    t += "\n";
    for (key, name) in [("logins", "complete login")]
        .into_iter()
        .chain(FLOW_PHASES)
    {
        let l = &out[key];
        if !l.is_object() {
            continue;
        }
        t += &row(&format!("{name} flow"), &l["flow"]);
        t += "\n";
        for step in l["steps"].as_array().into_iter().flatten() {
            t += &row(
                &format!(" - {}", step["step"].as_str().unwrap_or("")),
                &step["latency"],
            );
            t += "\n";
        }
    }
    if out["poll"].is_object() {
        t += &row("short poll", &out["poll"]["latency"]);
        t += "\n";
    }
    for (name, v) in out["targets"].as_object().into_iter().flatten() {
        t += &format!(
            "  target {name:<22} {} (limit {}): {}\n",
            f(&v["value"]),
            f(&v["limit"]),
            if v["met"] == true { "met" } else { "NOT met" }
        );
    }
    t
}
