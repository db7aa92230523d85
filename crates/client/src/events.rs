//! Following Back Office's live events (`/v1/events`, server-sent events).
//!
//! Every connection starts with a snapshot, and every later event carries the full new state of
//! what changed, so after a reconnect the new snapshot replaces whatever was missed: applying
//! updates in order always gives the current state. The subscription reconnects by itself with
//! exponential backoff and full jitter, tells its reader when it is connected or not (so a screen
//! can show "Reconnecting…"), and stops when dropped.

use regsync_protocol::api::EVENTS_KEEP_ALIVE_SECS;
use std::time::Duration;

use futures::StreamExt;
use rand::Rng;
use regsync_protocol::sync::Event;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::{Client, Error, error_from, transport_error};

/// What a subscription yields.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// Connected (again); a snapshot follows.
    Connected,
    Event(Event),
    /// The stream broke; it is reconnecting by itself.
    Disconnected {
        reason: String,
    },
}

/// A live subscription. `next` answers `None` once it has ended for good (signed out).
#[derive(Debug)]
pub struct Subscription {
    rx: mpsc::Receiver<Update>,
    task: JoinHandle<()>,
}

impl Subscription {
    pub async fn next(&mut self) -> Option<Update> {
        self.rx.recv().await
    }

    /// An update that has already arrived, without waiting.
    pub fn try_next(&mut self) -> Option<Update> {
        self.rx.try_recv().ok()
    }

    /// Stops following; the connection closes.
    pub fn close(self) {}
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Silence for three keep-alives means a dead link.
const IDLE: Duration = Duration::from_secs(3 * EVENTS_KEEP_ALIVE_SECS);

pub(crate) fn subscribe(client: Client) -> Subscription {
    let (tx, rx) = mpsc::channel(1024);
    let task = tokio::spawn(run(client, tx));
    Subscription { rx, task }
}

async fn run(client: Client, tx: mpsc::Sender<Update>) {
    let mut backoff = MIN_BACKOFF;
    loop {
        match follow(&client, &tx).await {
            Ended::ReaderGone => return,
            Ended::SignedOut(reason) => {
                let _ = tx.send(Update::Disconnected { reason }).await;
                return;
            }
            Ended::Broken {
                reason,
                was_connected,
            } => {
                if tx.send(Update::Disconnected { reason }).await.is_err() {
                    return;
                }
                if was_connected {
                    backoff = MIN_BACKOFF;
                }
            }
        }
        let wait = rand::rng().random_range(Duration::ZERO..=backoff);
        backoff = (backoff * 2).min(MAX_BACKOFF);
        tokio::time::sleep(wait).await;
    }
}

enum Ended {
    ReaderGone,
    SignedOut(String),
    Broken { reason: String, was_connected: bool },
}

async fn connect(client: &Client) -> Result<reqwest::Response, Error> {
    let (mut token, generation) = client.bearer().await?;
    let mut refreshed = false;
    loop {
        let response = client
            .http()
            .get(format!("{}/v1/events", client.base_url()))
            .bearer_auth(&token)
            .header("accept", "text/event-stream")
            .send()
            .await
            .map_err(|e| transport_error(client.base_url(), crate::REQUEST_TIMEOUT, e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap_or_default();
        let error = error_from(status, &headers, &body);
        match error {
            Error::NotSignedIn { .. } if !refreshed => {
                refreshed = true;
                token = client.bearer_after_rejection(generation).await?.0;
            }
            error => return Err(error),
        }
    }
}

async fn follow(client: &Client, tx: &mpsc::Sender<Update>) -> Ended {
    let response = match connect(client).await {
        Ok(response) => response,
        Err(error @ (Error::NotSignedIn { .. } | Error::Forbidden { .. })) => {
            return Ended::SignedOut(error.to_string());
        }
        Err(error) => {
            return Ended::Broken {
                reason: error.to_string(),
                was_connected: false,
            };
        }
    };
    if tx.send(Update::Connected).await.is_err() {
        return Ended::ReaderGone;
    }
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    loop {
        let chunk = match tokio::time::timeout(IDLE, body.next()).await {
            Err(_) => {
                return Ended::Broken {
                    reason: format!("no word from Back Office for {} s", IDLE.as_secs()),
                    was_connected: true,
                };
            }
            Ok(None) => {
                return Ended::Broken {
                    reason: "Back Office closed the event stream".into(),
                    was_connected: true,
                };
            }
            Ok(Some(Err(error))) => {
                return Ended::Broken {
                    reason: format!("the event stream broke: {error}"),
                    was_connected: true,
                };
            }
            Ok(Some(Ok(chunk))) => chunk,
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            match parse_block(&block) {
                Ok(Some(event)) => {
                    if tx.send(Update::Event(event)).await.is_err() {
                        return Ended::ReaderGone;
                    }
                }
                Ok(None) => {}
                Err(reason) => {
                    return Ended::Broken {
                        reason,
                        was_connected: true,
                    };
                }
            }
        }
    }
}

/// One server-sent event block: `None` for comments (keep-alives).
fn parse_block(block: &str) -> Result<Option<Event>, String> {
    let mut data = String::new();
    for line in block.lines() {
        if let Some(value) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(value.strip_prefix(' ').unwrap_or(value));
        }
    }
    if data.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(&data)
        .map(Some)
        .map_err(|e| format!("an event Back Office sent cannot be read: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events_and_skips_keep_alives() {
        let block = "event: site\nid: 3\ndata: {\"type\":\"site\",\"site\":{\"id\":\"00000000-0000-0000-0000-000000000000\",\"name\":\"Main Bar\",\"register_count\":2,\"catalog_revision\":4}}\n\n";
        match parse_block(block).unwrap() {
            Some(Event::Site { site }) => assert_eq!(site.catalog_revision, 4),
            other => panic!("{other:?}"),
        }
        assert_eq!(parse_block(": keep-alive\n\n").unwrap(), None);
        assert!(parse_block("data: {nope\n\n").is_err());
    }
}
