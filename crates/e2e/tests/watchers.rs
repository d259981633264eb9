//! What the roles that only watch (`cli`, `debug`) can do to the books, with authorization on.
//! Both see every batch go by on `chocominer.>`, its reply subject with it, and may ask the
//! services (`$SRV.>`): a `$SRV` request naming a batch's reply subject as its own would have
//! every replica answer there. Such an answer must acknowledge nothing (the server refuses it,
//! and an acknowledgement names its batch), land on no pipeline subject, and, sent by the
//! thousand, crowd out no real acknowledgement: every number rng made is judged or counted
//! lost, once.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_nats::Client;
use bytes::Bytes;
use chocominer_codec::HEADER_BATCH;
use common::{NUGGETS, NUMBERS};
use futures::StreamExt;
use testkit::{POLL, SOON, Stack, eventually};
use tokio::task::JoinHandle;

/// rng twice as fast as the hasher can hash: only its window of unacknowledged batches holds
/// it back, so acknowledgements that came before the hashing would let it run ahead and the
/// hasher drop what waited too long.
const RNG_ARGS: &[&str] = &[
    "--rate",
    "100",
    "--batch",
    "1",
    "--in-flight",
    "16",
    "--ack-timeout-ms",
    "2000",
];
/// 50 numbers a second.
const HASHER_ARGS: &[&str] = &[
    "--delay-ms",
    "20",
    "--concurrency",
    "1",
    "--ack-timeout-ms",
    "2000",
];

/// The service requests sent for each batch seen, each naming its reply subject.
const ASKED: [&str; 4] = [
    "$SRV.PING",
    "$SRV.INFO.hasher",
    "$SRV.STATS.worker",
    "$SRV.PING.hasher",
];

/// An attacker as `role`: for every batch it sees on `chocominer.numbers`, sends `per_batch`
/// rounds of [`ASKED`] with the batch's reply subject as theirs, and every tenth batch asks
/// for answers onto the pipeline's subjects too. Counts the requests sent.
struct Reflector {
    sent: Arc<AtomicU64>,
    batches: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Reflector {
    async fn start(stack: &Stack, role: &str, per_batch: usize) -> Reflector {
        let client = stack.connect_as(role).await;
        let mut batches_seen = client.subscribe(NUMBERS).await.unwrap();
        client.flush().await.unwrap();
        let (sent, batches) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let task = tokio::spawn({
            let (sent, batches) = (sent.clone(), batches.clone());
            async move {
                while let Some(batch) = batches_seen.next().await {
                    let Some(reply) = batch.reply else { continue };
                    let n = batches.fetch_add(1, Ordering::Relaxed);
                    let mut targets = vec![reply.to_string()];
                    if n % 10 == 0 {
                        targets.extend([NUGGETS.to_owned(), NUMBERS.to_owned()]);
                    }
                    for target in &targets {
                        for _ in 0..per_batch {
                            for asked in ASKED {
                                ask(&client, asked, target).await;
                                sent.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    let _ = client.flush().await;
                }
            }
        });
        Reflector {
            sent,
            batches,
            task,
        }
    }

    fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }
}

impl Drop for Reflector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn ask(client: &Client, subject: &str, reply: &str) {
    client
        .publish_with_reply(subject.to_owned(), reply.to_owned(), Bytes::new())
        .await
        .unwrap();
}

/// Messages on the pipeline's subjects that no stage would send there: a nugget that is not
/// one, numbers without a batch name (a service answer is JSON without headers).
struct Intruders {
    count: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Intruders {
    async fn watch(client: &Client) -> Intruders {
        let mut nuggets = client.subscribe(NUGGETS).await.unwrap();
        let mut numbers = client.subscribe(NUMBERS).await.unwrap();
        client.flush().await.unwrap();
        let count = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn({
            let count = count.clone();
            async move {
                loop {
                    let intruder = tokio::select! {
                        Some(m) = nuggets.next() => {
                            serde_json::from_slice::<chocominer_model::nugget::Nugget>(&m.payload)
                                .is_err()
                        }
                        Some(m) = numbers.next() => {
                            m.headers.as_ref().and_then(|h| h.get(HEADER_BATCH)).is_none()
                        }
                        else => return,
                    };
                    if intruder {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
        Intruders { count, task }
    }
}

impl Drop for Intruders {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs a demo pipeline (rng faster than its hasher) under a [`Reflector`] as `role` until it
/// has answered `batches` batches with its requests, then checks the books and the subjects.
async fn books_hold_under_reflection(role: &str, per_batch: usize, batches: u64) {
    let stack = Stack::start().await;
    let intruders = Intruders::watch(&stack.client).await;
    let reflector = Reflector::start(&stack, role, per_batch).await;
    let pipeline = stack
        .pipeline()
        .rng("r1", RNG_ARGS)
        .hasher("h1", HASHER_ARGS)
        .start()
        .await;
    let reflector = &reflector;
    eventually(
        &format!("{batches} batches reflected on"),
        SOON * 3,
        POLL,
        || async move { (reflector.batches() >= batches).then_some(()) },
    )
    .await;
    let (rng, hasher, worker) = pipeline.stop().await;
    let sent = reflector.sent.load(Ordering::Relaxed);
    println!("{role}: {sent} requests sent; {rng:?} {hasher:?} {worker:?}");
    assert!(sent >= batches * (ASKED.len() * per_batch) as u64, "{sent}");
    assert!(worker.judged > 0, "{worker:?}");
    assert_eq!(
        rng.generated,
        worker.judged + rng.lost + hasher.lost,
        "generated != judged + lost: {rng:?} {hasher:?} {worker:?}"
    );
    assert_eq!(
        (rng.lost, hasher.lost),
        (0, 0),
        "an acknowledgement was crowded out or a batch refused: {rng:?} {hasher:?}"
    );
    // No answer reached a batch's inbox at all: the server refused each (and the stages did
    // not try); an answer that had would be counted stray.
    assert_eq!((rng.stray, hasher.stray), (0, 0), "{rng:?} {hasher:?}");
    assert_eq!(
        intruders.count.load(Ordering::Relaxed),
        0,
        "service answers on the pipeline's subjects"
    );
}

/// Finding: every reflected answer counted as an acknowledgement, so rng ran ahead of its
/// hasher, which dropped what waited too long, uncounted (921 made, 200 judged, 0 lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_answers_sent_into_a_batch_inbox_acknowledge_nothing() {
    testkit::init_tracing();
    books_hold_under_reflection("cli", 1, 300).await;
}

/// Finding: a flood of reflected answers into rng's inbox overflowed its subscription until a
/// real acknowledgement was dropped, the batch judged and counted lost too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_reflections_crowds_out_no_acknowledgement() {
    testkit::init_tracing();
    books_hold_under_reflection("debug", 50, 150).await;
}
