//! Flow control between stages against a real nats-server: the sender's window and loss
//! accounting, and the intake's service protocol and drain on stop. These run the library on
//! subjects of their own (`t.*`), which no role of the project's configuration may use, so on
//! a server without its authorization; the stages themselves are tested with it (`pipeline.rs`).

use std::time::Duration;

use async_nats::service::NATS_SERVICE_ERROR;
use async_nats::service::{Info, PingResponse, Stats};
use bytes::Bytes;
use chocominer_codec::HEADER_BATCH;
use chocominer_model::Stage;
use chocominer_pipeline::{EXTRA_SUBSCRIPTIONS, Intake, IntakeConfig};
use chocominer_pipeline::{Incoming, STOP_FENCE};
use chocominer_pipeline::{LATE_GRACE, Sender, SenderConfig};
use chocominer_process::{Connector, Shutdown};
use futures::StreamExt;
use testkit::{NatsServer, eventually};

const WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);

async fn intake(client: &async_nats::Client, url: &str, subject: &str) -> Intake {
    intake_with_capacity(client, url, subject, None).await
}

async fn intake_with_capacity(
    client: &async_nats::Client,
    url: &str,
    subject: &str,
    capacity: Option<usize>,
) -> Intake {
    let intake = Intake::start(
        client.clone(),
        IntakeConfig {
            stage: Stage::Hasher,
            subject: subject.into(),
            instance: "replica-1".into(),
            service: Connector::new(
                &testkit::nats_args(&["--nats-url", url]),
                "replica-1 service",
                &Shutdown::new(),
            ),
            capacity,
        },
    )
    .await
    .unwrap();
    intake.set_stats_data(|| serde_json::json!({ "custom": 7 }));
    intake
}

fn sender_config(subject: &str, max_in_flight: usize, ack_timeout: Duration) -> SenderConfig {
    SenderConfig {
        subject: subject.into(),
        target: Stage::Hasher,
        instance: "sender-1".into(),
        max_in_flight,
        ack_timeout,
    }
}

async fn json<T: serde::de::DeserializeOwned>(client: &async_nats::Client, subject: &str) -> T {
    let reply = client
        .request(subject.to_owned(), Bytes::new())
        .await
        .unwrap();
    serde_json::from_slice(&reply.payload).unwrap()
}

/// Reserves a credit in `sender`'s window (waiting for room or a consumer) and sends one batch of
/// `count` numbers in it.
async fn send_one(sender: &Sender, stop: &Shutdown, count: usize) {
    sender
        .reserve(stop)
        .await
        .unwrap()
        .send(Bytes::from_static(b"b"), count, None)
        .await;
}

#[tokio::test]
async fn intake_speaks_the_service_protocol() {
    testkit::init_tracing();
    let nats = NatsServer::start_without_authorization("").await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut intake = intake(&client, &nats.url(), "t.numbers").await;
    let stop = Shutdown::new();
    let served = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut n = 0;
            while let Some(incoming) = intake.next(&stop).await {
                if incoming.body().is_empty() {
                    incoming.refuse("empty").await;
                } else {
                    incoming.ack().await;
                }
                n += 1;
            }
            n
        }
    });

    let ping: PingResponse = json(&client, "$SRV.PING.hasher").await;
    assert_eq!(
        (ping.name.as_str(), ping.metadata["instance"].as_str()),
        ("hasher", "replica-1")
    );
    let info: Info = json(&client, &format!("$SRV.INFO.hasher.{}", ping.id)).await;
    assert_eq!(info.endpoints[0].subject, "t.numbers");
    assert_eq!(info.endpoints[0].queue_group, "hasher");

    for _ in 0..3 {
        let ack = client
            .request("t.numbers", Bytes::from_static(b"x"))
            .await
            .unwrap();
        assert!(ack.headers.is_none() && ack.payload.is_empty());
    }
    let refused = client.request("t.numbers", Bytes::new()).await.unwrap();
    assert_eq!(
        refused
            .headers
            .unwrap()
            .get(NATS_SERVICE_ERROR)
            .unwrap()
            .as_str(),
        "empty"
    );

    let stats: Stats = json(&client, "$SRV.STATS").await;
    let endpoint = &stats.endpoints[0];
    assert_eq!((endpoint.requests, endpoint.errors), (4, 1));
    assert_eq!(endpoint.data.as_ref().unwrap()["custom"], 7);
    stop.trigger();
    assert_eq!(served.await.unwrap(), 4);
}

#[tokio::test]
async fn stopping_intake_finishes_what_was_delivered() {
    stopping_intake_finishes(None).await;
}

/// The same with extra subscriptions in the queue group: each ends after one batch, so they need no
/// fence of their own.
#[tokio::test]
async fn stopping_intake_with_extra_subscriptions_finishes_what_was_delivered() {
    stopping_intake_finishes(Some(2)).await;
}

async fn stopping_intake_finishes(capacity: Option<usize>) {
    testkit::init_tracing();
    let nats = NatsServer::start_without_authorization("").await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut intake = intake_with_capacity(&client, &nats.url(), "t.drain", capacity).await;
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(format!("{inbox}.*")).await.unwrap();
    // A burst reaches the replica as it is told to stop, much of it still on the wire.
    let burst = STOP_FENCE as usize;
    for i in 0..burst {
        client
            .publish_with_reply("t.drain", format!("{inbox}.{i}"), Bytes::from_static(b"x"))
            .await
            .unwrap();
    }
    client.flush().await.unwrap();
    let stop = Shutdown::new();
    stop.trigger();
    let first = tokio::time::timeout(WAIT, intake.next(&stop))
        .await
        .unwrap()
        .unwrap();
    first.ack().await;
    // Traffic goes on after the stop: the replica takes at most the fence's worth of it.
    for i in 0..burst * 2 {
        client
            .publish_with_reply(
                "t.drain",
                format!("{inbox}.{}", 1000 + i),
                Bytes::from_static(b"x"),
            )
            .await
            .unwrap();
    }
    let mut taken = 1;
    while let Some(incoming) = tokio::time::timeout(WAIT, intake.next(&stop))
        .await
        .unwrap()
    {
        incoming.ack().await;
        taken += 1;
    }
    let extra = capacity.map_or(0, |capacity| capacity * EXTRA_SUBSCRIPTIONS);
    assert!(
        (burst..=burst + STOP_FENCE as usize + extra).contains(&taken),
        "took {taken}"
    );
    // Acknowledgements, and the "no responders" answers to late batches nobody took.
    let mut acked = std::collections::HashSet::new();
    while acked.len() < taken {
        let reply = tokio::time::timeout(WAIT, replies.next())
            .await
            .unwrap()
            .unwrap();
        if reply.status.is_none() {
            acked.insert(
                reply
                    .subject
                    .rsplit('.')
                    .next()
                    .unwrap()
                    .parse::<usize>()
                    .unwrap(),
            );
        }
    }
    let missing: Vec<usize> = (0..burst).filter(|i| !acked.contains(i)).collect();
    assert!(
        missing.is_empty(),
        "not finished: {missing:?} (took {taken}, acked {acked:?})"
    );
    // Once stopped, the replica is out of the queue group: nobody answers any more.
    let after = client.request("t.drain", Bytes::new()).await;
    assert!(after.is_err(), "a stopped intake must not take new batches");
}

/// A replica short of its capacity holds extra subscriptions in the queue group, two per batch
/// short, so NATS steers batches to it; it makes no new ones while it holds its capacity, and
/// makes them again once it has capacity.
#[tokio::test]
async fn a_replica_short_of_capacity_makes_extra_subscriptions_in_the_group() {
    testkit::init_tracing();
    let nats = NatsServer::start_without_authorization("").await;
    let replica = async_nats::ConnectOptions::new()
        .name("replica-1")
        .connect(nats.url())
        .await
        .unwrap();
    let capacity = 2;
    let mut intake = intake_with_capacity(&replica, &nats.url(), "t.extra", Some(capacity)).await;
    let stop = Shutdown::new();
    let (held_tx, mut held_rx) = tokio::sync::mpsc::unbounded_channel::<Incoming>();
    let taking = tokio::spawn({
        let stop = stop.clone();
        async move {
            while let Some(incoming) = intake.next(&stop).await {
                held_tx.send(incoming).unwrap();
            }
        }
    });
    let idle = 1 + capacity * EXTRA_SUBSCRIPTIONS;
    eventually(
        "an idle replica holds its own subscription and its extra ones",
        WAIT,
        POLL,
        || async { (nats.subscriptions("replica-1", "t.extra").await == idle).then_some(()) },
    )
    .await;

    // Taken in, not settled: the replica is at (and past) its capacity. Each extra subscription
    // takes one batch at most; with this many, every one of them is used (one is missed by
    // all of them with a chance of (4/5)^60, about 1e-6).
    let client = async_nats::connect(nats.url()).await.unwrap();
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(format!("{inbox}.*")).await.unwrap();
    let batches = 60;
    for i in 0..batches {
        client
            .publish_with_reply("t.extra", format!("{inbox}.{i}"), Bytes::from_static(b"x"))
            .await
            .unwrap();
    }
    let mut held = Vec::new();
    while held.len() < batches {
        let incoming = tokio::time::timeout(WAIT, held_rx.recv()).await.unwrap();
        held.push(incoming.unwrap());
    }
    assert_eq!(
        nats.subscriptions("replica-1", "t.extra").await,
        1,
        "a replica holding its capacity keeps only its own subscription"
    );

    // Settled: capacity again, so extra subscriptions again.
    for incoming in held {
        incoming.ack().await;
    }
    eventually(
        "a replica with capacity again takes extra subscriptions again",
        WAIT,
        POLL,
        || async { (nats.subscriptions("replica-1", "t.extra").await == idle).then_some(()) },
    )
    .await;
    let mut acked = 0;
    while acked < batches {
        let reply = tokio::time::timeout(WAIT, replies.next()).await.unwrap();
        assert!(reply.unwrap().status.is_none(), "every batch acknowledged");
        acked += 1;
    }
    stop.trigger();
    tokio::time::timeout(WAIT, taking).await.unwrap().unwrap();
}

/// Serves `subject` in queue group `hasher`: acknowledges every batch, until `stop`.
fn serve(mut intake: Intake, stop: &Shutdown) -> tokio::task::JoinHandle<u64> {
    let stop = stop.clone();
    tokio::spawn(async move {
        let mut served = 0;
        while let Some(incoming) = intake.next(&stop).await {
            incoming.ack().await;
            served += 1;
        }
        served
    })
}

/// With nobody listening, a batch is not lost: it waits in the sender's window; the sender takes
/// no new one, says so once, and sends everything once a consumer appears.
#[tokio::test]
async fn batches_nobody_took_wait_and_the_sender_resumes() {
    testkit::init_tracing();
    let nats = NatsServer::start_without_authorization("").await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let sender = Sender::start(client.clone(), sender_config("t.absent", 4, WAIT))
        .await
        .unwrap();
    let stats = sender.stats();
    let stop = Shutdown::new();
    send_one(&sender, &stop, 10).await;
    eventually("the batch nobody took waits", WAIT, POLL, || async {
        (stats.waiting() == 1 && sender.is_waiting()).then_some(())
    })
    .await;

    // The next reservation waits for a consumer; it gets one when a replica appears.
    let waiting = tokio::spawn({
        let stop = stop.clone();
        async move {
            send_one(&sender, &stop, 5).await;
            sender
        }
    });
    // Several probes (the waiting batch, sent again) find nobody: still one wait, nothing lost,
    // nothing new sent.
    let s = &stats;
    let before = nats.messages_in().await;
    eventually("three probes answered by no one", WAIT, POLL, || async {
        (nats.messages_in().await >= before + 3).then_some(())
    })
    .await;
    assert!(!waiting.is_finished(), "the sender must wait");
    assert_eq!(
        (s.lost.total(), s.waits.total(), s.waiting(), s.sent.total()),
        (0, 1, 1, 10)
    );

    let served = serve(intake(&client, &nats.url(), "t.absent").await, &stop);
    let sender = tokio::time::timeout(WAIT, waiting).await.unwrap().unwrap();
    eventually("both batches acknowledged", WAIT, POLL, || async {
        (stats.acked.total() == 15).then_some(())
    })
    .await;
    sender.close().await;
    stop.trigger();
    assert_eq!(served.await.unwrap(), 2, "each batch taken exactly once");
    assert_eq!(
        (s.sent.total(), s.lost.total(), s.waiting(), s.waits.total()),
        (15, 0, 0, 1)
    );
}

/// A receiver that cannot hand batches on turns them away: they wait in its sender's window, as
/// for "no responders", and nothing counts as refused or lost. Waiting batches a stopping sender
/// still has are counted as lost.
#[tokio::test]
async fn turned_away_batches_wait_then_are_sent_again() {
    testkit::init_tracing();
    let nats = NatsServer::start_without_authorization("").await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut intake = intake(&client, &nats.url(), "t.away").await;
    let sender = Sender::start(client.clone(), sender_config("t.away", 4, WAIT))
        .await
        .unwrap();
    let stats = sender.stats();
    let stop = Shutdown::new();
    for _ in 0..3 {
        send_one(&sender, &stop, 2).await;
    }
    // Turn away the three batches and the first two probes.
    for _ in 0..5 {
        let incoming = tokio::time::timeout(WAIT, intake.next(&stop))
            .await
            .unwrap()
            .unwrap();
        incoming.turn_away("no worker is listening").await;
    }
    assert!(sender.is_waiting());
    assert_eq!((stats.lost.total(), stats.waits.total()), (0, 1));
    // Then take everything: the probe, then the other two waiting batches.
    let served = serve(intake, &stop);
    eventually("every batch acknowledged", WAIT, POLL, || async {
        (stats.acked.total() == 6).then_some(())
    })
    .await;
    assert!(!sender.is_waiting());
    assert_eq!((stats.lost.total(), stats.waiting()), (0, 0));
    stop.trigger();
    assert_eq!(served.await.unwrap(), 3);

    // Nobody listens any more: a waiting batch cannot go anywhere when the sender stops.
    send_one(&sender, &Shutdown::new(), 7).await;
    eventually("the last batch waits", WAIT, POLL, || async {
        (stats.waiting() == 1).then_some(())
    })
    .await;
    sender.close().await;
    assert_eq!(
        (
            stats.lost.total(),
            stats.lost_batches.total(),
            stats.waiting()
        ),
        (7, 1, 0)
    );
}

#[tokio::test]
async fn sender_window_is_bounded_and_timeouts_are_lost() {
    let nats = NatsServer::start_without_authorization("").await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    // A consumer that takes batches and never answers.
    let _silent = client.subscribe("t.silent").await.unwrap();
    client.flush().await.unwrap();
    let ack_timeout = Duration::from_millis(300);
    let sender = Sender::start(client.clone(), sender_config("t.silent", 2, ack_timeout))
        .await
        .unwrap();
    let stats = sender.stats();
    let stop = Shutdown::new();
    for _ in 0..2 {
        send_one(&sender, &stop, 3).await;
    }
    assert_eq!(stats.in_flight(), 2);
    // The window is full: the third batch can only go once the first two time out.
    let started = tokio::time::Instant::now();
    let credit = tokio::time::timeout(WAIT, sender.reserve(&stop))
        .await
        .unwrap()
        .unwrap();
    assert!(
        started.elapsed() >= ack_timeout / 2,
        "reserved after {:?}",
        started.elapsed()
    );
    // Out of the window, but counted lost only after their grace (an answer may still come).
    assert_eq!((stats.lost.total(), stats.in_flight()), (0, 0));
    credit.send(Bytes::from_static(b"b"), 3, None).await;
    eventually(
        "the first two counted lost",
        WAIT + LATE_GRACE,
        POLL,
        || {
            let lost = (stats.lost.total(), stats.lost_batches.total());
            async move { (lost == (6, 2)).then_some(()) }
        },
    )
    .await;
    // Closing waits for the last one's grace too.
    sender.close().await;
    assert_eq!(
        (stats.sent.total(), stats.lost.total(), stats.acked.total()),
        (9, 9, 0)
    );
    // A stop while waiting for room gives up without sending.
    let full = Sender::start(client.clone(), sender_config("t.silent", 1, WAIT))
        .await
        .unwrap();
    send_one(&full, &stop, 1).await;
    let stop_now = Shutdown::new();
    stop_now.trigger();
    assert!(full.reserve(&stop_now).await.is_err());
}

/// An acknowledgement after the sender's timeout, within its grace, counts the batch
/// delivered, not lost: the receiver did hand it on.
#[tokio::test]
async fn a_late_acknowledgement_counts_the_batch_delivered() {
    let nats = NatsServer::start_without_authorization("").await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut slow = client.subscribe("t.late").await.unwrap();
    client.flush().await.unwrap();
    let sender = Sender::start(
        client.clone(),
        sender_config("t.late", 1, Duration::from_millis(200)),
    )
    .await
    .unwrap();
    let stats = sender.stats();
    let stop = Shutdown::new();
    send_one(&sender, &stop, 3).await;
    let batch = tokio::time::timeout(WAIT, slow.next())
        .await
        .unwrap()
        .unwrap();
    // The receiver answers only once the sender has given up waiting for it.
    eventually("the batch out of the window", WAIT, POLL, || {
        let in_flight = stats.in_flight();
        async move { (in_flight == 0).then_some(()) }
    })
    .await;
    assert_eq!(stats.lost.total(), 0, "counted lost before its grace");
    acknowledge(&client, &batch).await;
    eventually("the late acknowledgement counted", WAIT, POLL, || {
        let acked = (stats.acked.total(), stats.late.total());
        async move { (acked == (3, 1)).then_some(()) }
    })
    .await;
    sender.close().await;
    assert_eq!((stats.sent.total(), stats.lost.total()), (3, 0));
}

/// Acknowledges `batch` by hand, as an intake does: an empty answer naming the batch.
async fn acknowledge(client: &async_nats::Client, batch: &async_nats::Message) {
    let mut headers = async_nats::HeaderMap::new();
    let named = batch.headers.as_ref().and_then(|h| h.get(HEADER_BATCH));
    headers.insert(HEADER_BATCH, named.expect("a batch names itself").as_str());
    client
        .publish_with_headers(batch.reply.clone().unwrap(), headers, Bytes::new())
        .await
        .unwrap();
}

/// Only an answer that names the batch settles it: anything else reaching the reply inbox
/// (a service reply someone had sent there, an answer naming another batch) is counted stray
/// and ignored, and the batch is still settled by its real acknowledgement.
#[tokio::test]
async fn only_an_answer_naming_its_batch_settles_it() {
    let nats = NatsServer::start_without_authorization("").await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut receiver = client.subscribe("t.named").await.unwrap();
    client.flush().await.unwrap();
    let sender = Sender::start(client.clone(), sender_config("t.named", 2, WAIT))
        .await
        .unwrap();
    let stats = sender.stats();
    let stop = Shutdown::new();
    send_one(&sender, &stop, 3).await;
    send_one(&sender, &stop, 4).await;
    let first = tokio::time::timeout(WAIT, receiver.next())
        .await
        .unwrap()
        .unwrap();
    let second = tokio::time::timeout(WAIT, receiver.next())
        .await
        .unwrap()
        .unwrap();
    let reply = first.reply.clone().unwrap();

    // What a `$SRV.PING` with this reply subject would have had answered there: no headers.
    client
        .publish(
            reply.clone(),
            Bytes::from_static(br#"{"type":"io.nats.micro.v1.ping_response"}"#),
        )
        .await
        .unwrap();
    // The second batch's name on the first batch's inbox subject, and a name of nothing.
    for named in [
        second
            .headers
            .as_ref()
            .unwrap()
            .get(HEADER_BATCH)
            .unwrap()
            .as_str(),
        "sender-1/999",
    ] {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(HEADER_BATCH, named);
        client
            .publish_with_headers(reply.clone(), headers, Bytes::new())
            .await
            .unwrap();
    }
    eventually("the three strays counted", WAIT, POLL, || {
        let stray = stats.stray.total();
        async move { (stray == 3).then_some(()) }
    })
    .await;
    assert_eq!(
        (stats.acked.total(), stats.in_flight()),
        (0, 2),
        "a stray settled a batch"
    );

    acknowledge(&client, &first).await;
    acknowledge(&client, &second).await;
    eventually("both acknowledged", WAIT, POLL, || {
        let acked = stats.acked.total();
        async move { (acked == 7).then_some(()) }
    })
    .await;
    sender.close().await;
    assert_eq!((stats.lost.total(), stats.stray.total()), (0, 3));
}

/// A batch sent long before it reached the receiver (which was frozen, say), by its sender's
/// clock, is stale on arrival however fresh it looks to the receiver's own clock.
#[tokio::test]
async fn a_batch_that_waited_on_its_way_is_expired_on_arrival() {
    use chocominer_codec::format_sent_at;
    use chocominer_codec::{HEADER_INSTANCE, HEADER_SENT_MS, HEADER_TTL_MS};
    use std::time::SystemTime;

    let nats = NatsServer::start_without_authorization("").await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut intake = intake(&client, &nats.url(), "t.waited").await;
    let stop = Shutdown::new();
    // Sent `ago` before now by the clock of "r1", which is an hour ahead of this one.
    let send = |ago: Duration| {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(HEADER_INSTANCE, "r1");
        headers.insert(HEADER_TTL_MS, "5000");
        let at = SystemTime::now() + Duration::from_secs(3600) - ago;
        headers.insert(HEADER_SENT_MS, format_sent_at(at).as_str());
        let client = client.clone();
        async move {
            client
                .publish_with_reply_and_headers("t.waited", "nobody", headers, Bytes::new())
                .await
                .unwrap();
        }
    };
    // The receiver judges lateness once it has taken a few batches of the sender (three: no
    // one or two set the figure, see the pipeline's `transit` module).
    for _ in 0..3 {
        send(Duration::ZERO).await;
        let fresh = intake.next(&stop).await.unwrap();
        assert!(!fresh.expired() && fresh.late_by() < Duration::from_secs(1));
        fresh.ack().await;
    }
    send(Duration::from_secs(8)).await;
    let stale = intake.next(&stop).await.unwrap();
    assert!(stale.expired(), "late by {:?}", stale.late_by());
    assert!(
        stale.late_by() >= Duration::from_secs(7),
        "{:?}",
        stale.late_by()
    );
    send(Duration::from_secs(2)).await;
    let late_but_in_time = intake.next(&stop).await.unwrap();
    assert!(
        !late_but_in_time.expired(),
        "{:?}",
        late_but_in_time.late_by()
    );
    let left = late_but_in_time.deadline().unwrap() - std::time::Instant::now();
    assert!(left < Duration::from_millis(3_100), "{left:?} left");
}

/// A batch that waited at the receiver past its sender's acknowledgement timeout is known to
/// be counted as lost already: the receiver can drop it instead of counting it twice.
#[tokio::test]
async fn a_batch_outliving_its_ttl_is_expired() {
    let nats = NatsServer::start_without_authorization("").await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut intake = intake(&client, &nats.url(), "t.ttl").await;
    let ack_timeout = Duration::from_millis(300);
    let sender = Sender::start(client.clone(), sender_config("t.ttl", 4, ack_timeout))
        .await
        .unwrap();
    let stop = Shutdown::new();
    for _ in 0..2 {
        send_one(&sender, &stop, 1).await;
    }
    let fresh = intake.next(&stop).await.unwrap();
    assert!(!fresh.expired(), "just received");
    let stale = intake.next(&stop).await.unwrap();
    // The receiver is busy for longer than the sender waits.
    tokio::time::sleep(ack_timeout).await;
    assert!(stale.expired());
    let stats = intake.stats();
    stale.drop_expired();
    assert_eq!(stats.expired.total(), 1);
    // Without the header (e.g. a hand-made request) nothing expires.
    client
        .publish_with_reply("t.ttl", "nobody", Bytes::from_static(b"x"))
        .await
        .unwrap();
    let plain = intake.next(&stop).await.unwrap();
    assert!(!plain.expired());
    assert_eq!((plain.ttl(), plain.deadline()), (None, None));
    // The header comes from the message: one that does not read means no deadline, one of
    // 585 million years a deadline that never comes (and no panic).
    for ttl in ["abc", "-5", "18446744073709551615"] {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(chocominer_codec::HEADER_TTL_MS, ttl);
        client
            .publish_with_reply_and_headers("t.ttl", "nobody", headers, Bytes::from_static(b"x"))
            .await
            .unwrap();
        let odd = intake.next(&stop).await.unwrap();
        assert!(!odd.expired(), "{ttl}");
        assert_eq!(odd.deadline().is_none(), odd.ttl().is_none(), "{ttl}");
    }
}
