//! The notify protocol, SIGTERM, and a restart mid-login.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use serde_json::json;

use super::{Hub, create_scene, next, post, recv_notify, sim_code, ws_auth};

#[tokio::test]
async fn systemd_sees_ready_then_stopping_and_exit_is_clean() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let extra = [
        ("NOTIFY_SOCKET", sock_path.display().to_string()),
        ("WATCHDOG_USEC", "400000".to_owned()),
        ("WATCHDOG_PID", String::new()),
    ];
    let mut hub = Hub::start(dir.path(), &extra, None);
    let before = recv_notify(&sock, "READY=1");
    // READY comes only once the listener answers and migrations ran.
    hub.wait_ready().await;
    let watchdog = recv_notify(&sock, "WATCHDOG=1");
    assert!(
        watchdog.iter().any(|m| m.contains("WATCHDOG=1")),
        "{watchdog:?}"
    );
    hub.sigterm();
    let after = recv_notify(&sock, "STOPPING=1");
    assert_eq!(hub.wait_exit(), 0, "exit code after SIGTERM");
    assert!(
        !before.iter().any(|m| m.contains("STOPPING")),
        "STOPPING before the signal: {before:?}"
    );
    assert!(after.iter().any(|m| m.contains("STOPPING=1")));
}

#[tokio::test]
async fn restart_mid_login_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut hub = Hub::start(dir.path(), &[], None);
    hub.wait_ready().await;
    let (scene, token) = create_scene(&hub).await;
    let mut ws = ws_auth(&hub, &scene, &token).await;
    assert_eq!(next(&mut ws).await.expect("state")["state"], "waiting");
    let code = sim_code(&hub, "carol").await;
    let (status, scan) = post(
        hub.url("/api/v1/mp/scan"),
        json!({"scene_id": scene, "code": code}),
    )
    .await;
    assert_eq!(status, 200, "{scan}");
    assert_eq!(next(&mut ws).await.expect("state")["state"], "scanned");

    hub.sigterm();
    assert_eq!(
        next(&mut ws).await,
        Err(1012),
        "sockets close with 1012 on shutdown"
    );
    assert_eq!(hub.wait_exit(), 0);

    let hub = Hub::start(&hub.dir.clone(), &[], None);
    hub.wait_ready().await;
    let mut ws = ws_auth(&hub, &scene, &token).await;
    assert_eq!(
        next(&mut ws).await.expect("state")["state"],
        "scanned",
        "state survived the restart"
    );
    let mp_token = scan["mp_token"].as_str().expect("mp_token");
    let (status, body) = post(
        hub.url("/api/v1/mp/confirm"),
        json!({"scene_id": scene, "mp_token": mp_token, "profile": {"nickname": "Carol"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let event = next(&mut ws).await.expect("confirmed");
    assert_eq!(event["state"], "confirmed");
    assert_eq!(event["user"]["nickname"], "Carol");
    assert!(
        event["ticket"]
            .as_str()
            .is_some_and(|t| t.starts_with(&scene))
    );
    assert_eq!(next(&mut ws).await, Err(1000));
}

/// A request the hub is working on when SIGTERM comes is answered in full
/// before the process exits.
#[tokio::test]
async fn a_request_in_flight_at_sigterm_is_answered_before_the_exit() {
    use crate::helpers::fake_wechat::{Api, FakeWechat, Fault, fake_image};
    // Live mode against a fake WeChat that takes 2 s for the code image.
    let fake = FakeWechat::start(&[("wxdemo0000000000".into(), "demo-app-secret".into())]).await;
    fake.fail_next(Api::CodeImage, Fault::Delay(Duration::from_secs(2)));
    let dir = tempfile::tempdir().expect("tempdir");
    let extra = [
        ("SCANLOGIN__WECHAT__MODE", "live".to_owned()),
        ("SCANLOGIN__WECHAT__API_BASE", fake.url()),
    ];
    let mut hub = Hub::start(dir.path(), &extra, None);
    hub.wait_ready().await;
    let (scene, _) = create_scene(&hub).await;
    let image = tokio::spawn(reqwest::get(
        hub.url(&format!("/api/v1/scenes/{scene}/qrcode")),
    ));
    // The hub is inside the request once WeChat was asked.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while fake.calls(Api::CodeImage) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "WeChat was never asked"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    hub.sigterm();
    let res = tokio::time::timeout(Duration::from_secs(20), image)
        .await
        .expect("answered in time")
        .expect("task")
        .expect("the request in flight is answered, not cut off");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/jpeg");
    let body = res.bytes().await.expect("body");
    assert_eq!(body.as_ref(), fake_image(&scene).as_slice());
    assert_eq!(hub.wait_exit(), 0, "exit code after SIGTERM");
}
