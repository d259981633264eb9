//! Asking a stage's replicas over the NATS service API: who answers `$SRV.PING.<stage>`, and
//! what each says to `$SRV.STATS.<stage>`. Every replica answers, so the answers are collected
//! for [`LISTEN`] on a fresh inbox (a plain `request` would keep only the first).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_nats::Client;
use async_nats::service::endpoint;
use bytes::Bytes;
use chocominer_model::Stage;
use futures::StreamExt;
use serde::Deserialize;
use tokio::time::{Instant, timeout_at};

/// How long answers to a ping are awaited.
pub const LISTEN: Duration = Duration::from_millis(300);
/// Answers read at most, so that a flood on the inbox cannot hold the command.
const MAX_ANSWERS: usize = 10_000;

/// One replica's answer to `$SRV.PING` or `$SRV.STATS`. async-nats's own `Stats` has no
/// `metadata`, where our replicas put their instance name, hence this shape.
#[derive(Debug, Clone, Deserialize)]
pub struct Answer {
    pub name: String,
    pub id: String,
    #[serde(default)]
    pub metadata: HashMap<String, String>,
    /// `$SRV.STATS` only.
    #[serde(default)]
    pub endpoints: Vec<endpoint::Stats>,
}

impl Answer {
    /// The instance name, or the service id when the replica has none.
    pub fn instance(&self) -> &str {
        self.metadata.get("instance").unwrap_or(&self.id)
    }
}

/// The answers of `stage`'s replicas to `$SRV.<verb>.<stage>` within [`LISTEN`], each with the
/// moment it arrived: service id → (arrival, answer). Anything else on the inbox is skipped.
pub async fn ask(
    client: &Client,
    verb: &str,
    stage: Stage,
) -> anyhow::Result<BTreeMap<String, (Instant, Answer)>> {
    let inbox = client.new_inbox();
    let mut answers = client.subscribe(inbox.clone()).await?;
    client
        .publish_with_reply(format!("$SRV.{verb}.{stage}"), inbox, Bytes::new())
        .await?;
    let deadline = Instant::now() + LISTEN;
    let mut found = BTreeMap::new();
    for _ in 0..MAX_ANSWERS {
        let Ok(Some(message)) = timeout_at(deadline, answers.next()).await else {
            break;
        };
        let at = Instant::now();
        if let Ok(answer) = serde_json::from_slice::<Answer>(&message.payload)
            && answer.name == stage.name()
        {
            found.insert(answer.id.clone(), (at, answer));
        }
    }
    let _ = answers.unsubscribe().await;
    Ok(found)
}
