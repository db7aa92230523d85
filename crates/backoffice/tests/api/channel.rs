//! The register channel's edges: what a misbehaving or half-alive register connection gets.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::harness::{FAST, RawRegister, Scene, WAIT};

#[tokio::test]
async fn a_message_over_64_kib_closes_with_1009_and_says_why() {
    let Scene { bo, venue, token } = Scene::start(FAST).await;
    let bar1 = venue.registers[0].register.id;
    let (mut raw, _) =
        RawRegister::hello(&bo, &venue.registers[0].credential, false, json!([])).await;
    bo.wait_online(&token, bar1, true).await;

    let huge = json!({ "type": "heartbeat", "in_sale": false, "pad": "x".repeat(70 * 1024) });
    raw.send(huge).await;
    let frame = loop {
        match tokio::time::timeout(WAIT, raw.ws.next())
            .await
            .expect("an answer in time")
        {
            Some(Ok(Message::Close(frame))) => break frame.expect("a close frame with a code"),
            Some(Ok(_)) => continue,
            other => panic!("the connection ended without a close frame: {other:?}"),
        }
    };
    assert_eq!(frame.code, CloseCode::Size);
    assert!(frame.reason.contains("too big"), "{}", frame.reason);
    bo.wait_online(&token, bar1, false).await;
    assert!(
        bo.log().contains("message too big"),
        "the log names the reason"
    );
}

#[tokio::test]
async fn pings_alone_do_not_keep_a_register_online() {
    let Scene { bo, venue, token } = Scene::start(FAST).await;
    let bar1 = venue.registers[0].register.id;
    let (mut raw, _) =
        RawRegister::hello(&bo, &venue.registers[0].credential, false, json!([])).await;
    bo.wait_online(&token, bar1, true).await;

    // A hung app whose socket library still pings: no heartbeat ever arrives.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if raw.ws.send(Message::Ping(Vec::new().into())).await.is_err() {
            break;
        }
        if bo.register(&token, bar1).await["online"] == false {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a register that only pings stayed online"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bo.wait_online(&token, bar1, false).await;
}
