//! What must be asked of WeChat once is asked once across nodes.

use std::time::Duration;

use crate::helpers::WAIT;
use crate::helpers::fake_wechat::{Api, Fault, fake_image};

use super::{ClusterDb, Node, NodeOptions, create_scene, fake_wechat};

#[tokio::test]
async fn concurrent_code_requests_on_two_nodes_ask_wechat_once() {
    let Some(db) = ClusterDb::create().await else {
        return;
    };
    let fake = fake_wechat().await;
    let a = Node::start_with(&db.url, NodeOptions::live(&fake)).await;
    let b = Node::start_with(&db.url, NodeOptions::live(&fake)).await;
    let (id, _) = create_scene(&a).await;
    // A slow WeChat keeps the first call in flight while the others arrive.
    fake.fail_next(Api::CodeImage, Fault::Delay(Duration::from_millis(300)));
    let http = reqwest::Client::new();
    let requests = (0..8).map(|i| {
        let node = if i % 2 == 0 { &a } else { &b };
        http.get(node.url(&format!("/api/v1/scenes/{id}/qrcode")))
            .send()
    });
    let answers = tokio::time::timeout(WAIT, futures_util::future::join_all(requests))
        .await
        .expect("all answered");
    let expected = fake_image(&id);
    for res in answers {
        let res = res.expect("qrcode");
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.bytes().await.expect("bytes").as_ref(),
            expected.as_slice()
        );
    }
    assert_eq!(
        fake.calls(Api::CodeImage),
        1,
        "one WeChat call for the scene"
    );
    assert_eq!(fake.calls(Api::StableToken), 1, "one token for both nodes");
}

#[tokio::test]
async fn two_nodes_fetching_the_first_token_at_once_ask_wechat_once() {
    let Some(db) = ClusterDb::create().await else {
        return;
    };
    let fake = fake_wechat().await;
    let a = Node::start_with(&db.url, NodeOptions::live(&fake)).await;
    let b = Node::start_with(&db.url, NodeOptions::live(&fake)).await;
    let (one, _) = create_scene(&a).await;
    let (two, _) = create_scene(&b).await;
    // A slow stable_token keeps the first fetch in flight while the other
    // node needs a token too.
    fake.fail_next(Api::StableToken, Fault::Delay(Duration::from_millis(300)));
    let http = reqwest::Client::new();
    let (ra, rb) = tokio::time::timeout(
        WAIT,
        futures_util::future::join(
            http.get(a.url(&format!("/api/v1/scenes/{one}/qrcode")))
                .send(),
            http.get(b.url(&format!("/api/v1/scenes/{two}/qrcode")))
                .send(),
        ),
    )
    .await
    .expect("both answered");
    assert_eq!(ra.expect("node A").status(), 200);
    assert_eq!(rb.expect("node B").status(), 200);
    assert_eq!(fake.calls(Api::StableToken), 1, "one token for both nodes");
    assert_eq!(fake.calls(Api::CodeImage), 2);
}
