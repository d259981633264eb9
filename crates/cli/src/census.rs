//! Who answers `$SRV.PING.<stage>`: the replicas NATS knows of, to cross-check the count of
//! instances writing stats.
//!
//! Every replica answers a ping once, so the answers are collected for [`LISTEN`] on a fresh
//! inbox (a plain `request` would keep only the first).

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::Client;
use async_nats::service::PingResponse;
use chocominer_pipeline::Stage;
use futures::StreamExt;
use tokio::time::{Instant, timeout_at};

/// How long answers to a ping are awaited.
pub const LISTEN: Duration = Duration::from_millis(300);
/// Answers read at most, so that a flood on the inbox cannot hold the command.
const MAX_ANSWERS: usize = 10_000;

/// The replicas of `stage` that answered a ping: service id → instance name (the id when the
/// replica has no `instance` metadata).
pub async fn replicas(client: &Client, stage: Stage) -> anyhow::Result<BTreeMap<String, String>> {
    let inbox = client.new_inbox();
    let mut answers = client.subscribe(inbox.clone()).await?;
    client
        .publish_with_reply(format!("$SRV.PING.{stage}"), inbox, bytes::Bytes::new())
        .await?;
    let deadline = Instant::now() + LISTEN;
    let mut found = BTreeMap::new();
    for _ in 0..MAX_ANSWERS {
        let Ok(Some(answer)) = timeout_at(deadline, answers.next()).await else {
            break;
        };
        // Anything else on the inbox is not a replica of ours: skip it.
        let Ok(ping) = serde_json::from_slice::<PingResponse>(&answer.payload) else {
            continue;
        };
        if ping.name != stage.name() {
            continue;
        }
        let name = ping.metadata.get("instance").cloned();
        found.insert(ping.id.clone(), name.unwrap_or(ping.id));
    }
    let _ = answers.unsubscribe().await;
    Ok(found)
}
