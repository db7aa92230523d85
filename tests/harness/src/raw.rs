//! Hand-driven peers, for what well-behaved ones never do: a register connection and an event
//! stream read frame by frame.

use crate::{BackOffice, WAIT};

use reqwest::StatusCode;
use serde_json::Value;

/// A hand-driven register connection, for what a well-behaved agent never does.
pub struct RawRegister {
    pub ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl RawRegister {
    pub async fn connect(
        bo: &BackOffice,
        credential: &str,
    ) -> Result<RawRegister, tokio_tungstenite::tungstenite::Error> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = format!(
            "{}/v1/registers/connect",
            bo.url.replace("http://", "ws://")
        );
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {credential}").parse().unwrap(),
        );
        let (ws, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(RawRegister { ws })
    }

    /// Connects and says hello; answers the welcome.
    pub async fn hello(
        bo: &BackOffice,
        credential: &str,
        in_sale: bool,
        recent: Value,
    ) -> (RawRegister, Value) {
        Self::hello_at(bo, credential, 0, in_sale, recent).await
    }

    /// Connects and says hello holding `applied_revision`; answers the welcome.
    pub async fn hello_at(
        bo: &BackOffice,
        credential: &str,
        applied_revision: i64,
        in_sale: bool,
        recent: Value,
    ) -> (RawRegister, Value) {
        let mut raw = Self::connect(bo, credential).await.unwrap();
        raw.send(serde_json::json!({
            "type": "hello", "protocol_version": 1, "applied_revision": applied_revision,
            "in_sale": in_sale, "recent": recent
        }))
        .await;
        let welcome = raw.recv().await.expect("a welcome");
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        (raw, welcome)
    }

    pub async fn send(&mut self, value: Value) {
        use futures::SinkExt;
        self.send_text(&value.to_string()).await;
        let _ = &mut self.ws.flush().await;
    }

    pub async fn send_text(&mut self, text: &str) {
        use futures::SinkExt;
        self.ws
            .send(tokio_tungstenite::tungstenite::Message::Text(text.into()))
            .await
            .unwrap();
    }

    /// The next JSON message, or `None` when the connection closes first.
    pub async fn recv(&mut self) -> Option<Value> {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            match tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a message in time")
            {
                Some(Ok(Message::Text(text))) => return Some(serde_json::from_str(&text).unwrap()),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Waits for the close frame; answers its reason.
    pub async fn closed_reason(&mut self) -> String {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            match tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("closed in time")
            {
                Some(Ok(Message::Close(frame))) => {
                    return frame.map(|f| f.reason.to_string()).unwrap_or_default();
                }
                None | Some(Err(_)) => return String::new(),
                Some(Ok(_)) => continue,
            }
        }
    }
}

/// A subscriber to `/v1/events`, parsing the server-sent events as they arrive.
pub struct EventStream {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl EventStream {
    pub async fn open(bo: &BackOffice, token: &str) -> EventStream {
        let response = bo
            .raw()
            .get(format!("{}/v1/events", bo.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        EventStream {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        }
    }

    /// The next event as (kind, JSON).
    pub async fn next(&mut self) -> Option<(String, Value)> {
        use futures::StreamExt;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut kind = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        kind = Some(value.trim().to_owned());
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim_start());
                    }
                }
                match kind {
                    Some(kind) => return Some((kind, serde_json::from_str(&data).unwrap())),
                    None => continue, // a keep-alive comment
                }
            }
            let chunk = tokio::time::timeout(WAIT, self.body.next())
                .await
                .ok()??
                .ok()?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Reads events until one satisfies `wanted`; answers it.
    pub async fn until(&mut self, what: &str, wanted: impl Fn(&str, &Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let (kind, event) = tokio::time::timeout(left, self.next())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for event: {what}"))
                .unwrap_or_else(|| panic!("the stream ended before: {what}"));
            if wanted(&kind, &event) {
                return event;
            }
        }
    }
}
