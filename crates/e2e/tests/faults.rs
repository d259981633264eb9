//! The pipeline under faults: a hasher process killed outright, and garbage on every subject.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use async_nats::Message;
use async_nats::service::{NATS_SERVICE_ERROR, NATS_SERVICE_ERROR_CODE};
use bytes::Bytes;
use chocominer_codec::{DigestBatch, FORMAT_VERSION, NUMBER_LEN, NumberBatch, Numbers, PREFIX_LEN};
use chocominer_process::Shutdown;
use common::{DIGESTS, DigestFlow, NUGGETS, NUMBERS, junk};
use testkit::{POLL, SOON, Stack, eventually};
use tokio::time::timeout;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hasher_killed_with_sigkill() {
    let bin = testkit::cargo_bin_async("hasher").await;
    let stack = Stack::start().await;
    let shutdown = Shutdown::new();
    let flow = DigestFlow::watch(&stack.client).await;
    let worker = stack.spawn_worker("w1", &[], &shutdown);
    let hasher_args = [
        "--delay-ms",
        "20",
        "--concurrency",
        "1",
        "--ack-timeout-ms",
        "1000",
    ];
    let mut victim = stack.spawn_process(&bin, "hk", &hasher_args);
    let mut survivor = stack.spawn_process(&bin, "hs", &hasher_args);
    stack.wait_for_service("worker", &["w1"]).await;
    stack.wait_for_service("hasher", &["hk", "hs"]).await;
    // 400/s offered to two 50/s hashers with 32 batches in flight: each has a queue.
    let rng = stack.spawn_rng(
        "r1",
        &[
            "--rate",
            "400",
            "--batch",
            "1",
            "--in-flight",
            "32",
            "--ack-timeout-ms",
            "1000",
        ],
        &shutdown,
    );
    flow.wait_until("digests from both hashers", SOON, |f| {
        f.of("hk") >= 10 && f.of("hs") >= 10
    })
    .await;

    let status = victim.kill().await;
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    let at_kill = flow.of("hs");

    // The pipeline goes on through the surviving hasher, and only through it (once what the
    // victim sent before it died has arrived).
    flow.wait_until("digests still flowing after the kill", SOON, |f| {
        f.of("hs") >= at_kill + 10
    })
    .await;
    let from_victim = flow.of("hk");
    flow.wait_until("digests still flowing after the kill", SOON, |f| {
        f.of("hs") >= at_kill + 60
    })
    .await;
    assert_eq!(flow.of("hk"), from_victim, "a killed hasher sent digests");
    // ...and the batches that died with the victim are counted as lost, live in InfluxDB.
    let s = &stack;
    let lost = eventually("sum(rng.lost) > 0 in InfluxDB", SOON, POLL, || async move {
        let lost = s.sum("rng", "lost").await;
        (lost > 0).then_some(lost)
    })
    .await;
    assert!(!survivor.has_exited(), "hs died: {}", survivor.log_tail());
    assert!(worker.is_running() && rng.is_running());

    flow.stop(&stack.client).await;
    shutdown.trigger();
    let status = survivor.terminate(Duration::from_secs(30)).await;
    assert!(
        status.success(),
        "hs on SIGTERM: {status:?}\n{}",
        survivor.log_tail()
    );
    let (rng, worker) = tokio::join!(rng.report(), worker.report());
    assert!(rng.lost > 0 && rng.lost_batches > 0, "{rng:?}");
    assert!(
        rng.lost as i64 >= lost,
        "{rng:?} but InfluxDB had {lost} lost"
    );
    assert_eq!(rng.generated, rng.acked + rng.lost, "{rng:?}");
    assert!(worker.judged > 0, "{worker:?}");
    stack.eventually_sum("rng", "lost", rng.lost).await;
}

/// `body` with its format version byte changed to one no reader knows.
fn wrong_version(body: &[u8]) -> Vec<u8> {
    let mut body = body.to_vec();
    body[0] = FORMAT_VERSION + 1;
    body
}

/// `body`, whose last item run is one `item`-byte item, with that run's length prefix (the byte
/// `item` right before it) replaced by a varint claiming close to 2^63 bytes.
fn huge_length(body: &[u8], item: usize) -> Vec<u8> {
    let at = body.len() - item - 1;
    assert_eq!(body[at], item as u8, "length prefix where expected");
    let mut huge = body[..at].to_vec();
    huge.extend_from_slice(&[0xFD, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]);
    huge.extend_from_slice(&body[at + 1..]);
    huge
}

fn garbage_for_hashers() -> Vec<(&'static str, Bytes)> {
    let one = [7u8; NUMBER_LEN];
    let valid = NumberBatch {
        seq: 1,
        numbers: Numbers::Raw(&one),
    }
    .encode();
    let mut trailing = valid.to_vec();
    trailing.push(0);
    let garbage: Vec<(&str, Vec<u8>)> = vec![
        ("random bytes", junk(100, 0)),
        ("empty payload", vec![]),
        ("wrong version", wrong_version(&valid)),
        ("huge length prefix", huge_length(&valid, NUMBER_LEN)),
        (
            "ragged batch (33 bytes)",
            NumberBatch {
                seq: 1,
                numbers: Numbers::Raw(&[7; 33]),
            }
            .encode()
            .to_vec(),
        ),
        (
            "batch of no numbers",
            NumberBatch {
                seq: 1,
                numbers: Numbers::Raw(&[]),
            }
            .encode()
            .to_vec(),
        ),
        ("trailing byte", trailing),
        (
            "a seed claiming 4 billion numbers",
            NumberBatch {
                seq: 1,
                numbers: Numbers::Seeded {
                    seed: [7; 32],
                    count: u32::MAX,
                },
            }
            .encode()
            .to_vec(),
        ),
        (
            "a digest batch",
            DigestBatch {
                seq: 1,
                numbers: Numbers::Raw(&one),
                prefixes: &one[..PREFIX_LEN],
            }
            .encode()
            .to_vec(),
        ),
    ];
    for (what, body) in &garbage {
        assert!(
            NumberBatch::decode(body, 1 << 20).is_err(),
            "{what} is a valid number batch"
        );
    }
    garbage.into_iter().map(|(w, b)| (w, b.into())).collect()
}

fn garbage_for_workers() -> Vec<(&'static str, Bytes)> {
    let one = [7u8; NUMBER_LEN];
    let two = [9u8; 2 * NUMBER_LEN];
    let valid = DigestBatch {
        seq: 1,
        numbers: Numbers::Raw(&one),
        prefixes: &one[..PREFIX_LEN],
    }
    .encode();
    let garbage: Vec<(&str, Vec<u8>)> = vec![
        ("random bytes", junk(100, 0)),
        ("empty payload", vec![]),
        ("wrong version", wrong_version(&valid)),
        // On the prefixes' length, the last run.
        ("huge length prefix", huge_length(&valid, PREFIX_LEN)),
        (
            "ragged batch (33 bytes)",
            DigestBatch {
                seq: 1,
                numbers: Numbers::Raw(&[7; 33]),
                prefixes: &[7; 33],
            }
            .encode()
            .to_vec(),
        ),
        (
            "ragged prefixes (5 bytes)",
            DigestBatch {
                seq: 1,
                numbers: Numbers::Raw(&one),
                prefixes: &[7; 5],
            }
            .encode()
            .to_vec(),
        ),
        (
            "2 numbers, 1 digest prefix",
            DigestBatch {
                seq: 1,
                numbers: Numbers::Raw(&two),
                prefixes: &one[..PREFIX_LEN],
            }
            .encode()
            .to_vec(),
        ),
        (
            "a seed claiming 4 billion numbers, 1 digest prefix",
            DigestBatch {
                seq: 1,
                numbers: Numbers::Seeded {
                    seed: [7; 32],
                    count: u32::MAX,
                },
                prefixes: &one[..PREFIX_LEN],
            }
            .encode()
            .to_vec(),
        ),
        (
            "a number batch",
            NumberBatch {
                seq: 1,
                numbers: Numbers::Raw(&one),
            }
            .encode()
            .to_vec(),
        ),
    ];
    for (what, body) in &garbage {
        assert!(
            DigestBatch::decode(body, 1 << 20).is_err(),
            "{what} is a valid digest batch"
        );
    }
    garbage.into_iter().map(|(w, b)| (w, b.into())).collect()
}

/// Sends each body to `subject` twice: as a request, whose answer must be a service error,
/// and as a plain message. Returns how many messages were sent.
async fn send_garbage(stack: &Stack, subject: &str, garbage: &[(&str, Bytes)]) -> u64 {
    // From the role that may publish on `subject`: rng on numbers, a hasher on digests.
    let role = if subject == NUMBERS { "rng" } else { "hasher" };
    let client = stack.connect_as(role).await;
    for (what, body) in garbage {
        let answer: Message = timeout(
            Duration::from_secs(10),
            client.request(subject.to_owned(), body.clone()),
        )
        .await
        .unwrap_or_else(|_| panic!("no answer to {what} on {subject}"))
        .unwrap_or_else(|e| panic!("request with {what} on {subject}: {e}"));
        let headers = answer
            .headers
            .as_ref()
            .unwrap_or_else(|| panic!("answer to {what} on {subject} has no headers"));
        let error = headers.get(NATS_SERVICE_ERROR).map(|v| v.as_str());
        assert!(
            error.is_some_and(|e| !e.is_empty()),
            "answer to {what} on {subject} is no service error: {headers:?}"
        );
        assert_eq!(
            headers.get(NATS_SERVICE_ERROR_CODE).map(|v| v.as_str()),
            Some("400"),
            "answer to {what} on {subject}: {headers:?}"
        );
        client
            .publish(subject.to_owned(), body.clone())
            .await
            .unwrap();
    }
    client.flush().await.unwrap();
    2 * garbage.len() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_counted_not_fatal() {
    let stack = Stack::start().await;
    let flow = DigestFlow::watch(&stack.client).await;
    let pipeline = stack
        .pipeline()
        .hasher("h1", &["--delay-ms", "0"])
        .rng("r1", &["--rate", "200", "--batch", "10"])
        .start()
        .await;
    flow.wait_until("digests flowing", SOON, |f| f.total() > 0)
        .await;

    let to_hashers = send_garbage(&stack, NUMBERS, &garbage_for_hashers()).await;
    let to_workers = send_garbage(&stack, DIGESTS, &garbage_for_workers()).await;
    // Nobody consumes nuggets; garbage there (from a worker's credentials, the only ones that
    // may publish nuggets) must not bother anyone either.
    let worker = stack.connect_as("worker").await;
    let inbox = worker.new_inbox();
    for body in [junk(100, 0), vec![], b"{\"number\": 12".to_vec()] {
        let body = Bytes::from(body);
        worker.publish(NUGGETS, body.clone()).await.unwrap();
        worker
            .publish_with_reply(NUGGETS, inbox.clone(), body)
            .await
            .unwrap();
    }
    worker.flush().await.unwrap();

    // Counted in the live stats...
    stack.eventually_sum("hasher", "rejected", to_hashers).await;
    stack.eventually_sum("worker", "rejected", to_workers).await;
    // ...and nothing stopped: the services run and numbers still flow end to end.
    let before = flow.total();
    flow.wait_until("digests flowing after the garbage", SOON, |f| {
        f.total() >= before + 100
    })
    .await;
    assert!(pipeline.is_running());

    // Without the observer, a hasher sending to the stopped worker hears "no responders".
    flow.stop(&stack.client).await;
    let (rng, hasher, worker) = pipeline.stop().await;
    assert_eq!(hasher.rejected, to_hashers, "{hasher:?}");
    assert_eq!(worker.rejected, to_workers, "{worker:?}");
    assert_eq!(
        rng.generated,
        worker.judged + rng.lost + hasher.lost,
        "{rng:?} {hasher:?} {worker:?}"
    );
    stack.eventually_sum("hasher", "rejected", to_hashers).await;
    stack.eventually_sum("worker", "rejected", to_workers).await;
}
