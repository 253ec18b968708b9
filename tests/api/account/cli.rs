//! `scanlogin users show|delete ID`, run as the real binary against the
//! test hub's database (the hub keeps running).

use serde_json::{Value, json};

use super::{account, hub, log_in, rows_of, ticket_of};
use crate::helpers::{CLIENT_ID, TestApp, WAIT, assert_problem, ok_json, unique};

/// `scanlogin users ARGS`: (success, stdout, stderr).
async fn users(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, &app.config_toml).expect("write config");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_scanlogin"))
        .arg("--config")
        .arg(&config)
        .arg("users")
        .args(args)
        .env_clear()
        .envs(crate::process::kept_env())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(WAIT * 3, out)
        .await
        .expect("users finishes")
        .expect("users runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn users_show_prints_the_account_as_the_person_sees_it() {
    let app = hub(90).await;
    let openid = unique("o_cli");
    let (user, _) = log_in(&app, CLIENT_ID, &openid, "Cli/1", json!({})).await;
    let (ok, stdout, stderr) = users(&app, &["show", &user]).await;
    assert!(ok, "users show failed: {stderr}");
    let shown: Value = serde_json::from_str(&stdout).expect("one JSON document");
    let seen = ok_json(account(&app, &openid).await).await;
    assert_eq!(shown, seen, "the same document as POST /api/v1/mp/account");
    assert_eq!(shown["user"]["id"], user.as_str());

    let (ok, stdout, stderr) = users(&app, &["show", "no-such-user"]).await;
    assert!(!ok, "an unknown user is a failure");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("no user \"no-such-user\""), "{stderr}");
}

#[tokio::test]
async fn users_delete_deletes_as_the_person_would() {
    let app = hub(90).await;
    let openid = unique("o_cli_del");
    let (user, scene) = log_in(&app, CLIENT_ID, &openid, "CliDel/1", json!({})).await;
    let ticket = ticket_of(&app, &scene).await;
    let (by_user, _) = log_in(&app, CLIENT_ID, &unique("o_by"), "By/1", json!({})).await;

    let (ok, stdout, stderr) = users(&app, &["delete", &user]).await;
    assert!(ok, "users delete failed: {stderr}");
    assert!(stdout.contains(&format!("user {user} deleted")), "{stdout}");
    let db = app.db().await;
    let left = rows_of(&db, &user).await;
    assert!(left.iter().all(|(_, n)| *n == 0), "left behind: {left:?}");
    assert_problem(app.redeem(&ticket).await, 400, "invalid_ticket").await;
    assert_problem(account(&app, &openid).await, 404, "user_not_found").await;
    let (ok, _, _) = users(&app, &["show", &by_user]).await;
    assert!(ok, "the other user stays");

    let (ok, _, stderr) = users(&app, &["delete", &user]).await;
    assert!(!ok, "deleting again is a failure");
    assert!(stderr.contains(&format!("no user {user:?}")), "{stderr}");
    let (ok, _, _) = users(&app, &["show", &user]).await;
    assert!(!ok);
    // The next login of the same person is a new user.
    let (again, _) = log_in(&app, CLIENT_ID, &openid, "Again/1", json!({})).await;
    assert_ne!(again, user);
}
