//! The fake's answers, checked without a socket.

use super::*;

fn fake() -> Fake {
    Fake::new(&FakeArgs {
        bind: "127.0.0.1:0".parse().expect("addr"),
        app_id: "wxbench".into(),
        app_secret: "s3cret".into(),
        no_unionid: false,
        max_secs: 1,
        code_image_bytes: 1000,
    })
}

async fn body(res: Response<Full<Bytes>>) -> Value {
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    serde_json::from_slice(&bytes).expect("json")
}

fn session_query(code: &str) -> String {
    format!("appid=wxbench&secret=s3cret&js_code={code}&grant_type=authorization_code")
}

#[test]
fn codes_round_trip() {
    let code = new_code("bench-l-17");
    let parts = parse_code(&code).expect("parsed");
    assert_eq!(parts.user, "bench-l-17");
    assert!(unix_ms() - parts.issued_ms < 10_000);
    for bad in [
        "",
        "bc-",
        "bc-u-1",
        "sim123",
        "bc--18f-0123456789abcdef",
        "bc-u-zz-0123456789abcdef",
        "bc-u-18f-0123456789abcde",
        "bc-u v-18f-0123456789abcdef",
    ] {
        assert_eq!(parse_code(bad), None, "{bad}");
    }
}

#[tokio::test]
async fn exchanges_each_code_once_with_stable_openid() {
    let f = fake();
    let (c1, c2) = (new_code("alice"), new_code("alice"));
    let a = body(f.jscode2session(&session_query(&c1))).await;
    let b = body(f.jscode2session(&session_query(&c2))).await;
    assert_eq!(a["openid"], b["openid"]);
    assert_eq!(a["unionid"], b["unionid"]);
    assert_ne!(a["session_key"], b["session_key"]);
    let key = STANDARD
        .decode(a["session_key"].as_str().expect("key"))
        .expect("base64");
    assert_eq!(key.len(), 16);
    let other = body(f.jscode2session(&session_query(&new_code("bob")))).await;
    assert_ne!(other["openid"], a["openid"]);
    let again = body(f.jscode2session(&session_query(&c1))).await;
    assert_eq!(again["errcode"], 40163);
    assert!(again.get("openid").is_none());
}

#[tokio::test]
async fn wechat_errors() {
    let f = fake();
    let q = session_query("nope");
    assert_eq!(body(f.jscode2session(&q)).await["errcode"], 40029);
    let old = format!(
        "bc-u-{:x}-0123456789abcdef",
        unix_ms() - CODE_LIFE_MS - 1000
    );
    assert_eq!(
        body(f.jscode2session(&session_query(&old))).await["errcode"],
        40029
    );
    let code = new_code("u");
    let wrong_secret =
        format!("appid=wxbench&secret=x&js_code={code}&grant_type=authorization_code");
    assert_eq!(
        body(f.jscode2session(&wrong_secret)).await["errcode"],
        40125
    );
    let wrong_app = format!("appid=wx0&secret=s3cret&js_code={code}&grant_type=authorization_code");
    assert_eq!(body(f.jscode2session(&wrong_app)).await["errcode"], 40013);
    // A refused call does not use the code up.
    assert!(body(f.jscode2session(&session_query(&code))).await["openid"].is_string());
}

#[tokio::test]
async fn stable_token_is_stable_until_forced() {
    let f = fake();
    let ask = |force: bool| {
        json!({"grant_type": "client_credential", "appid": "wxbench", "secret": "s3cret", "force_refresh": force})
            .to_string()
    };
    let a = body(f.stable_token(ask(false).as_bytes())).await;
    let b = body(f.stable_token(ask(false).as_bytes())).await;
    assert_eq!(a["access_token"], b["access_token"]);
    assert!(a["expires_in"].as_u64().expect("expires_in") > 7000);
    let c = body(f.stable_token(ask(true).as_bytes())).await;
    assert_ne!(a["access_token"], c["access_token"]);
    let bad = json!({"grant_type": "client_credential", "appid": "wxbench", "secret": "no"});
    assert_eq!(
        body(f.stable_token(bad.to_string().as_bytes())).await["errcode"],
        40125
    );
    assert_eq!(body(f.stable_token(b"not json")).await["errcode"], 47001);
}

#[test]
fn used_codes_are_bounded_and_forgotten() {
    let f = fake();
    let now = unix_ms();
    assert!(matches!(f.mark_used("a", now, now), Mark::Fresh));
    assert!(matches!(f.mark_used("a", now, now), Mark::Used));
    let old = now - CODE_LIFE_MS - 1;
    assert!(matches!(f.mark_used("old", old, now), Mark::Fresh));
    // The next prune (10 s on) forgets the expired one.
    let later = now + PRUNE_EVERY_MS;
    assert!(matches!(f.mark_used("b", later, later), Mark::Fresh));
    let used = f.used.lock().expect("lock");
    assert!(!used.codes.contains_key("old"));
    assert!(used.codes.contains_key("a"));
}

#[test]
fn refuses_other_addresses() {
    let mut args = FakeArgs {
        bind: "0.0.0.0:0".parse().expect("addr"),
        app_id: "wx".into(),
        app_secret: "s".into(),
        no_unionid: false,
        max_secs: 1,
        code_image_bytes: 1000,
    };
    assert!(run(&args).is_err());
    args.bind = "10.1.2.3:0".parse().expect("addr");
    assert!(run(&args).is_err());
}

#[tokio::test]
async fn code_images_need_the_current_token() {
    let f = fake();
    let req = br#"{"scene":"0123456789abcdef0123456789abcdef","page":"pages/scanlogin/index"}"#;
    // No token issued yet: 40001.
    assert_eq!(
        body(f.code_image("access_token=nope", req)).await["errcode"],
        40001
    );
    let ask = json!({"grant_type": "client_credential", "appid": "wxbench", "secret": "s3cret"});
    let token = body(f.stable_token(ask.to_string().as_bytes())).await["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let res = f.code_image(&format!("access_token={token}"), req);
    assert_eq!(res.headers()[CONTENT_TYPE], "image/jpeg");
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(bytes.len(), 1000);
    assert_eq!(&bytes[..2], &[0xFF, 0xD8]);
    let bad = f.code_image(&format!("access_token={token}"), br#"{"scene":""}"#);
    assert_eq!(body(bad).await["errcode"], 40169);
    assert_eq!(
        body(f.code_image("access_token=other", req)).await["errcode"],
        40001
    );
}
