//! Asking a stage's replicas over the NATS service protocol: who answers `$SRV.PING.<stage>`
//! (the replicas NATS knows of, to cross-check the count of instances writing stats), and what
//! each says to `$SRV.STATS.<stage>` (its request count, processing time and custom figures,
//! which `chocominer ping` turns into time per hash and busy share).
//!
//! Every replica answers a request once, so the answers are collected for [`LISTEN`] on a
//! fresh inbox (a plain `request` would keep only the first).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_nats::Client;
use async_nats::service::{PingResponse, endpoint};
use bytes::Bytes;
use chocominer_model::Stage;
use futures::StreamExt;
use serde::Deserialize;
use tokio::time::{Instant, timeout_at};

/// How long answers to a ping are awaited.
pub const LISTEN: Duration = Duration::from_millis(300);
/// Answers read at most, so that a flood on the inbox cannot hold the command.
const MAX_ANSWERS: usize = 10_000;

/// The replicas of `stage` that answered a ping: service id → instance name (the id when the
/// replica has no `instance` metadata).
pub async fn replicas(client: &Client, stage: Stage) -> anyhow::Result<BTreeMap<String, String>> {
    let mut found = BTreeMap::new();
    for (_, answer) in ask(client, "PING", stage).await? {
        // Anything else on the inbox is not a replica of ours: skip it.
        let Ok(ping) = serde_json::from_slice::<PingResponse>(&answer) else {
            continue;
        };
        if ping.name != stage.name() {
            continue;
        }
        let name = ping.metadata.get("instance").cloned();
        found.insert(ping.id.clone(), name.unwrap_or(ping.id));
    }
    Ok(found)
}

/// One replica's answer to `$SRV.STATS`. async-nats's own `Stats` has no `metadata`, where
/// our replicas put their instance name, hence this shape.
#[derive(Debug, Clone, Deserialize)]
pub struct StatsAnswer {
    pub name: String,
    pub id: String,
    #[serde(default)]
    pub metadata: HashMap<String, String>,
    pub endpoints: Vec<endpoint::Stats>,
}

impl StatsAnswer {
    /// The instance name, or the service id when the replica has none.
    pub fn instance(&self) -> &str {
        self.metadata.get("instance").unwrap_or(&self.id)
    }
}

/// The `$SRV.STATS` answers of `stage`'s replicas, each with the moment it arrived: service
/// id → (arrival, answer).
pub async fn stats(
    client: &Client,
    stage: Stage,
) -> anyhow::Result<BTreeMap<String, (Instant, StatsAnswer)>> {
    let mut found = BTreeMap::new();
    for (at, answer) in ask(client, "STATS", stage).await? {
        let Ok(stats) = serde_json::from_slice::<StatsAnswer>(&answer) else {
            continue;
        };
        if stats.name != stage.name() {
            continue;
        }
        found.insert(stats.id.clone(), (at, stats));
    }
    Ok(found)
}

/// Every answer to `$SRV.<verb>.<stage>` within [`LISTEN`], with the moment it arrived.
async fn ask(client: &Client, verb: &str, stage: Stage) -> anyhow::Result<Vec<(Instant, Bytes)>> {
    let inbox = client.new_inbox();
    let mut answers = client.subscribe(inbox.clone()).await?;
    client
        .publish_with_reply(format!("$SRV.{verb}.{stage}"), inbox, Bytes::new())
        .await?;
    let deadline = Instant::now() + LISTEN;
    let mut found = Vec::new();
    for _ in 0..MAX_ANSWERS {
        let Ok(Some(answer)) = timeout_at(deadline, answers.next()).await else {
            break;
        };
        found.push((Instant::now(), answer.payload));
    }
    let _ = answers.unsubscribe().await;
    Ok(found)
}
