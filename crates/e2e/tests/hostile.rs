//! What a publisher on the pipeline's subjects cannot do, against a real nats-server: plant
//! nuggets with forged digests.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::{Client, HeaderMap, Message};
use bytes::Bytes;
use chocominer_pipeline::codec::{BatchHeaders, DigestBatch, NUMBER_LEN, Numbers};
use chocominer_pipeline::nugget::{Nugget, is_nugget};
use chocominer_pipeline::{NATS_SERVICE_ERROR, NATS_SERVICE_ERROR_CODE};
use common::{DIGESTS, NUGGETS, check_nugget_point};
use futures::StreamExt;
use serde_json::Value;
use testkit::{POLL, SOON, Stack, eventually, eventually_eq};
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// The worker's difficulty in these tests (the demo's): one digest in 16 is a nugget.
const DIFFICULTY: u32 = 4;

/// The custom figures (`data`) of the one `stage` replica's `$SRV.STATS` answer.
async fn stats_data(client: &Client, stage: &str) -> Value {
    let answer = client
        .request(format!("$SRV.STATS.{stage}"), Bytes::new())
        .await
        .unwrap_or_else(|e| panic!("$SRV.STATS.{stage}: {e}"));
    let stats: Value = serde_json::from_slice(&answer.payload).expect("STATS is JSON");
    stats["endpoints"][0]["data"].clone()
}

/// A number field of `stage`'s `$SRV.STATS` figures.
async fn stat(client: &Client, stage: &str, field: &str) -> u64 {
    let data = stats_data(client, stage).await;
    data[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{stage} STATS has no {field}: {data}"))
}

/// Every nugget published on `chocominer.nuggets`, as it came.
struct NuggetFeed {
    seen: Arc<Mutex<Vec<Bytes>>>,
    task: JoinHandle<()>,
}

impl NuggetFeed {
    async fn watch(client: &Client) -> NuggetFeed {
        let mut feed = client
            .subscribe(NUGGETS)
            .await
            .expect("subscribe to nuggets");
        client.flush().await.expect("flush the subscription");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let seen = seen.clone();
            async move {
                while let Some(message) = feed.next().await {
                    seen.lock().unwrap().push(message.payload);
                }
            }
        });
        NuggetFeed { seen, task }
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Waits until `n` nuggets more than now have been published.
    async fn wait_for_more(&self, n: usize) {
        let wanted = self.count() + n;
        eventually(
            &format!("{wanted} nuggets on {NUGGETS}"),
            SOON,
            POLL,
            || async move { (self.count() >= wanted).then_some(()) },
        )
        .await;
    }

    fn nuggets(&self) -> Vec<Nugget> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .map(|json| serde_json::from_slice(json).expect("a nugget is JSON"))
            .collect()
    }
}

impl Drop for NuggetFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A digest batch as a forger would send it, and the digests in it that are forged nugget
/// candidates.
struct Forgery {
    what: &'static str,
    body: Bytes,
    count: usize,
    forged: Vec<[u8; 32]>,
}

/// A digest with `zeros` leading zero bytes, then bytes that look like any digest.
fn forged_digest(zeros: usize, salt: u8) -> [u8; 32] {
    let mut digest = [0u8; 32];
    for (i, byte) in digest.iter_mut().enumerate().skip(zeros) {
        *byte = salt.wrapping_mul(31).wrapping_add(i as u8) | 0x80;
    }
    digest
}

fn forgeries() -> Vec<Forgery> {
    use chocominer_pipeline::nugget::is_digest_of;
    use sha2::{Digest, Sha256};
    let mut all = Vec::new();
    // Raw numbers, every digest zero: 256 leading zero bits beside any number.
    let numbers: Vec<u8> = (0..8u8).flat_map(|i| [i; NUMBER_LEN]).collect();
    let zeros = [[0u8; 32]; 8];
    all.push(Forgery {
        what: "raw numbers, zero digests",
        body: DigestBatch {
            seq: 1,
            numbers: Numbers::Raw(&numbers),
            digests: zeros.as_flattened(),
        }
        .encode(),
        count: 8,
        forged: zeros.to_vec(),
    });
    // Raw numbers, digests with 40 to 96 leading zero bits and the look of real ones.
    let plausible: Vec<[u8; 32]> = (0..8).map(|i| forged_digest(5 + i % 8, i as u8)).collect();
    all.push(Forgery {
        what: "raw numbers, digests with many leading zero bits",
        body: DigestBatch {
            seq: 2,
            numbers: Numbers::Raw(&numbers),
            digests: plausible.as_flattened(),
        }
        .encode(),
        count: 8,
        forged: plausible.clone(),
    });
    // A seeded batch: the numbers are the seed's keystream, the digests the forger's.
    let seeded = Numbers::Seeded {
        seed: [42; 32],
        count: 8,
    };
    all.push(Forgery {
        what: "seeded numbers, digests with many leading zero bits",
        body: DigestBatch {
            seq: 3,
            numbers: seeded,
            digests: plausible.as_flattened(),
        }
        .encode(),
        count: 8,
        forged: plausible,
    });
    // A seeded batch whose even digests are the real ones (the real nuggets among them are
    // recorded) and whose odd ones are forged.
    let count = 32;
    let mixed = Numbers::Seeded {
        seed: [7; 32],
        count: count as u32,
    };
    let digests: Vec<[u8; 32]> = (0..count)
        .map(|i| match i % 2 {
            0 => Sha256::digest(mixed.number(i)).into(),
            _ => forged_digest(3, i as u8),
        })
        .collect();
    let forged: Vec<[u8; 32]> = digests
        .iter()
        .enumerate()
        .filter(|(i, digest)| !is_digest_of(&mixed.number(*i), &digest[..]))
        .map(|(_, digest)| *digest)
        .collect();
    assert_eq!(forged.len(), count / 2);
    all.push(Forgery {
        what: "seeded numbers, real and forged digests",
        body: DigestBatch {
            seq: 4,
            numbers: mixed,
            digests: digests.as_flattened(),
        }
        .encode(),
        count,
        forged,
    });
    for forgery in &all {
        assert!(
            forgery.forged.iter().all(|d| is_nugget(d, DIFFICULTY)),
            "{}: every forged digest is a nugget candidate",
            forgery.what
        );
    }
    all
}

/// Sends `body` to `subject` as a request with `headers`; the answer, within 10 s.
async fn request(client: &Client, subject: &str, headers: HeaderMap, body: Bytes) -> Message {
    timeout(
        Duration::from_secs(10),
        client.request_with_headers(subject.to_owned(), headers, body),
    )
    .await
    .unwrap_or_else(|_| panic!("no answer on {subject} within 10 s"))
    .unwrap_or_else(|e| panic!("request on {subject}: {e}"))
}

/// The service error of an answer, if it is one: (code, text).
fn service_error(answer: &Message) -> Option<(String, String)> {
    let headers = answer.headers.as_ref()?;
    let text = headers.get(NATS_SERVICE_ERROR)?.as_str().to_owned();
    let code = headers.get(NATS_SERVICE_ERROR_CODE)?.as_str().to_owned();
    Some((code, text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_nuggets_are_counted_and_never_recorded() {
    let stack = Stack::start().await;
    let feed = NuggetFeed::watch(&stack.client).await;
    let difficulty = DIFFICULTY.to_string();
    let pipeline = stack
        .pipeline()
        .worker("w1", &["--difficulty", &difficulty])
        .hasher("h1", &["--delay-ms", "0"])
        .rng("r1", &["--rate", "400", "--batch", "10"])
        .start()
        .await;
    feed.wait_for_more(5).await;

    // Forged batches, each answered like any batch the worker judged.
    let forgeries = forgeries();
    let (mut forged, mut numbers) = (0, 0);
    for forgery in &forgeries {
        let headers = BatchHeaders::new("forger", 1, forgery.count).to_header_map();
        let answer = request(&stack.client, DIGESTS, headers, forgery.body.clone()).await;
        assert_eq!(service_error(&answer), None, "{}", forgery.what);
        forged += forgery.forged.len() as u64;
        numbers += forgery.count as u64;
    }
    let client = &stack.client;
    eventually_eq("the worker's forged count", SOON, POLL, forged, || {
        stat(client, "worker", "forged")
    })
    .await;
    // Real nuggets still flow.
    feed.wait_for_more(5).await;

    let (rng, hasher, worker) = pipeline.stop().await;
    assert_eq!(worker.forged, forged, "{worker:?}");
    // The forged batches were judged (and acknowledged) on top of what rng made.
    assert_eq!(
        rng.generated + numbers,
        worker.judged + rng.lost + hasher.lost,
        "{rng:?} {hasher:?} {worker:?}"
    );
    stack.eventually_sum("worker", "forged", forged).await;
    stack
        .eventually_sum("worker", "nuggets", worker.nuggets)
        .await;

    // No forged digest reached InfluxDB or the feed; everything there verifies.
    let forged_hex: Vec<String> = forgeries
        .iter()
        .flat_map(|f| f.forged.iter().map(hex::encode))
        .collect();
    let rows = stack.rows(r#"SELECT * FROM "nugget""#).await;
    assert_eq!(rows.len() as u64, worker.nuggets, "{worker:?}");
    for row in &rows {
        check_nugget_point(row, DIFFICULTY);
        assert!(!forged_hex.contains(&row["digest"].as_str().unwrap().to_owned()));
    }
    eventually_eq("nuggets on the feed", SOON, POLL, worker.nuggets, || {
        let n = feed.count() as u64;
        async move { n }
    })
    .await;
    for nugget in feed.nuggets() {
        if let Err(e) = Nugget::verify(&nugget.number, &nugget.digest, DIFFICULTY) {
            panic!("{nugget:?} on the feed does not verify: {e}");
        }
        assert!(!forged_hex.contains(&nugget.digest), "{nugget:?}");
    }
}
