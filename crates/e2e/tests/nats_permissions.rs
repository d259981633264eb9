//! NATS authorization with the project's own nats/nats-server.conf: no client gets in without
//! its role's password, and each role may do only what its stage does. A refused publication
//! or subscription is seen as the server reports it (a permissions violation, an event of the
//! client) and by its effect: nothing reaches a subscriber, no subscription is made.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use async_nats::{Client, ConnectErrorKind, ConnectOptions, Event};
use bytes::Bytes;
use common::{DIGESTS, NUGGETS, NUMBERS};
use futures::StreamExt;
use testkit::{NatsServer, POLL, SOON, Stack, eventually};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// How long a refusal may take to come back from a local server.
const REFUSED_WITHIN: Duration = Duration::from_secs(10);

/// A client of `role` whose server errors (permission violations) are sent to the receiver.
async fn connect_watched(
    nats: &NatsServer,
    role: &str,
) -> (Client, mpsc::UnboundedReceiver<String>) {
    let (errors, refusals) = mpsc::unbounded_channel();
    let client = ConnectOptions::with_user_and_password(role.into(), nats.password(role).into())
        .custom_inbox_prefix(chocominer_model::inbox_prefix(role))
        .event_callback(move |event| {
            let errors = errors.clone();
            async move {
                if let Event::ServerError(error) = event {
                    let _ = errors.send(error.to_string());
                }
            }
        })
        .connect(nats.url())
        .await
        .unwrap_or_else(|e| panic!("connect as {role}: {e}"));
    (client, refusals)
}

/// Waits for the server to report a permissions violation naming `what` (e.g. `publish to
/// "chocominer.numbers"`); returns its text.
async fn refused(refusals: &mut mpsc::UnboundedReceiver<String>, what: &str) -> String {
    let error = timeout(REFUSED_WITHIN, refusals.recv())
        .await
        .unwrap_or_else(|_| panic!("no refusal of {what} within {REFUSED_WITHIN:?}"))
        .expect("the client is connected");
    let lower = error.to_lowercase();
    assert!(
        lower.contains("permissions violation") && lower.contains(&what.to_lowercase()),
        "wanted a permissions violation for {what}, got {error}"
    );
    error
}

/// Subscribes as `role` to `subject` (in queue `group`, if given) and waits for the server to
/// refuse it.
async fn subscription_refused(nats: &NatsServer, role: &str, subject: &str, group: Option<&str>) {
    let (client, mut refusals) = connect_watched(nats, role).await;
    let _subscription = match group {
        Some(group) => {
            client
                .queue_subscribe(subject.to_owned(), group.to_owned())
                .await
        }
        None => client.subscribe(subject.to_owned()).await,
    }
    .unwrap();
    client.flush().await.unwrap();
    let what = match group {
        Some(group) => format!("subscription to \"{subject}\" using queue \"{group}\""),
        None => format!("subscription to \"{subject}\""),
    };
    refused(&mut refusals, &what).await;
}

/// Whether `subscriber` holds a message now. Called after the publisher's flush (the server
/// has handled the publication) and the subscriber's own (whatever the server queued for it
/// before has arrived), so a message that was delivered is there.
async fn has_message(subscriber_client: &Client, subscriber: &mut async_nats::Subscriber) -> bool {
    subscriber_client
        .flush()
        .await
        .expect("flush the subscriber");
    timeout(Duration::ZERO, subscriber.next()).await.is_ok()
}

#[tokio::test]
async fn no_one_gets_in_without_their_roles_password() {
    let nats = NatsServer::start().await;
    let anonymous = async_nats::connect(nats.url()).await;
    assert_eq!(
        anonymous.err().map(|e| e.kind()),
        Some(ConnectErrorKind::AuthorizationViolation),
        "anonymous client let in"
    );
    // Another role's password is a wrong one.
    let wrong = ConnectOptions::with_user_and_password("rng".into(), nats.password("debug").into())
        .connect(nats.url())
        .await;
    assert_eq!(
        wrong.err().map(|e| e.kind()),
        Some(ConnectErrorKind::AuthorizationViolation),
        "rng let in with debug's password"
    );
    for role in nats.roles() {
        nats.connect_as(role).await.flush().await.expect("let in");
    }
}

#[tokio::test]
async fn only_rng_may_send_numbers_and_only_a_hasher_digests() {
    let stack = Stack::nats_only().await;
    // Watching every pipeline subject, as people do.
    let mut watched = stack.client.subscribe("chocominer.>").await.unwrap();
    stack.client.flush().await.unwrap();

    // A worker, a hasher, the cli and debug may not send numbers.
    for role in ["worker", "hasher", "cli", "debug"] {
        let (client, mut refusals) = connect_watched(&stack.nats, role).await;
        client
            .publish(NUMBERS, Bytes::from_static(b"x"))
            .await
            .unwrap();
        client.flush().await.unwrap();
        let error = refused(&mut refusals, &format!("publish to \"{NUMBERS}\"")).await;
        assert!(
            !has_message(&stack.client, &mut watched).await,
            "{role}'s numbers were delivered"
        );
        tracing::info!(role, "{error}");
    }
    // Nobody but a hasher may inject digests: not debug, not rng, not a worker.
    for role in ["debug", "rng", "worker"] {
        let (client, mut refusals) = connect_watched(&stack.nats, role).await;
        client
            .publish(DIGESTS, Bytes::from_static(b"x"))
            .await
            .unwrap();
        client.flush().await.unwrap();
        refused(&mut refusals, &format!("publish to \"{DIGESTS}\"")).await;
        assert!(
            !has_message(&stack.client, &mut watched).await,
            "{role}'s digests were delivered"
        );
    }
    // Nor nuggets but a worker.
    let (client, mut refusals) = connect_watched(&stack.nats, "hasher").await;
    client
        .publish(NUGGETS, Bytes::from_static(b"{}"))
        .await
        .unwrap();
    client.flush().await.unwrap();
    refused(&mut refusals, &format!("publish to \"{NUGGETS}\"")).await;

    // The rightful senders get through, to the same watcher: the check above could fail.
    for (role, subject) in [("rng", NUMBERS), ("hasher", DIGESTS), ("worker", NUGGETS)] {
        let client = stack.connect_as(role).await;
        client
            .publish(subject, Bytes::from_static(b"x"))
            .await
            .unwrap();
        client.flush().await.unwrap();
        let message = timeout(REFUSED_WITHIN, watched.next())
            .await
            .unwrap_or_else(|_| panic!("{role}'s message on {subject} not delivered"))
            .unwrap();
        assert_eq!(message.subject.as_str(), subject);
    }
}

#[tokio::test]
async fn no_role_may_join_another_stages_queue_group() {
    let stack = Stack::nats_only().await;
    for (role, subject, group) in [
        ("worker", NUMBERS, "hasher"),
        ("hasher", DIGESTS, "worker"),
        ("rng", NUMBERS, "hasher"),
        ("debug", NUMBERS, "hasher"),
        ("cli", DIGESTS, "worker"),
    ] {
        subscription_refused(&stack.nats, role, subject, Some(group)).await;
    }
    // None of those subscriptions was made: a batch finds no one to take it.
    for (role, subject) in [("rng", NUMBERS), ("hasher", DIGESTS)] {
        let client = stack.connect_as(role).await;
        let answer = timeout(
            REFUSED_WITHIN,
            client.request(subject, Bytes::from_static(b"x")),
        )
        .await
        .expect("an answer from the server");
        let error = answer.expect_err("someone took the batch");
        assert_eq!(
            error.kind(),
            async_nats::RequestErrorKind::NoResponders,
            "{error}"
        );
    }
}

/// The watchers (`cli`, `debug`) may not make a queue subscription at all: one on a wildcard
/// subject in a stage's group would have nats-server up to 2.12 merge it into that group and
/// hand it the stage's batches (measured on 2.10.26: 64 of 195 taken). 2.14+ keeps them apart,
/// but the permission refuses it on any version.
#[tokio::test]
async fn the_watchers_make_no_queue_subscription_at_all() {
    let stack = Stack::nats_only().await;
    for (role, subject, group) in [
        ("cli", "chocominer.*", "worker"),
        ("cli", "chocominer.>", "hasher"),
        ("debug", "chocominer.*", "hasher"),
        ("debug", ">", "worker"),
        ("cli", "chocominer.nuggets", "anything"),
    ] {
        subscription_refused(&stack.nats, role, subject, Some(group)).await;
    }
    // A plain subscription, what `sub` makes, is still theirs.
    let (cli, mut refusals) = connect_watched(&stack.nats, "cli").await;
    let _watch = cli.subscribe("chocominer.>").await.unwrap();
    cli.flush().await.unwrap();
    assert!(
        timeout(Duration::from_millis(500), refusals.recv())
            .await
            .is_err(),
        "cli's plain subscription was refused"
    );
}

/// A stage's service connection may subscribe to the service protocol's subjects of its own
/// stage only: not `$SRV.>` (which a `$SRV.*` permission let through) nor the other stage's.
#[tokio::test]
async fn a_stage_answers_the_service_protocol_for_itself_only() {
    let stack = Stack::nats_only().await;
    for (role, subject) in [
        ("hasher", "$SRV.>"),
        ("hasher", "$SRV.*"),
        ("hasher", "$SRV.PING.worker"),
        ("worker", "$SRV.>"),
        ("worker", "$SRV.STATS.hasher"),
        ("worker", "$SRV.INFO.hasher.x"),
    ] {
        subscription_refused(&stack.nats, role, subject, None).await;
    }
}

#[tokio::test]
async fn each_sender_alone_reads_its_replies() {
    let stack = Stack::nats_only().await;
    for (role, inbox) in [
        ("rng", "_INBOX.hasher.>"),
        ("rng", "_INBOX.>"),
        ("hasher", "_INBOX.rng.>"),
        ("cli", "_INBOX.rng.>"),
        ("worker", "_INBOX.hasher.>"),
        // debug reads its own inboxes only: with all of `_INBOX.>` it would see every
        // acknowledgement.
        ("debug", "_INBOX.>"),
        ("debug", "_INBOX.rng.>"),
        ("debug", "_INBOX.cli.>"),
    ] {
        subscription_refused(&stack.nats, role, inbox, None).await;
    }
    // Its own, it reads: the inboxes its client makes are where it may read.
    let rng = stack.connect_as("rng").await;
    assert!(rng.new_inbox().starts_with("_INBOX.rng."));
}

/// A stage answers into its sender's inbox (acknowledgements) and into the watchers' (the
/// service protocol), nowhere else: not into another stage's inbox, not onto a pipeline subject,
/// which a reply subject chosen by `cli` or `debug` could otherwise name.
#[tokio::test]
async fn a_stage_answers_only_its_sender_and_the_watchers() {
    let stack = Stack::nats_only().await;
    let mut watched = stack.client.subscribe("chocominer.>").await.unwrap();
    stack.client.flush().await.unwrap();
    for (role, subject) in [
        ("hasher", "_INBOX.worker.x.1"),
        ("hasher", "_INBOX.hasher2.x"),
        ("hasher", "_INBOX.abc.1"),
        ("hasher", NUGGETS),
        ("worker", "_INBOX.rng.x.1"),
        ("worker", "_INBOX.abc.1"),
        ("worker", NUMBERS),
    ] {
        let (client, mut refusals) = connect_watched(&stack.nats, role).await;
        client
            .publish(subject, Bytes::from_static(b"{}"))
            .await
            .unwrap();
        client.flush().await.unwrap();
        refused(&mut refusals, &format!("publish to \"{subject}\"")).await;
    }
    assert!(
        !has_message(&stack.client, &mut watched).await,
        "a stage's answer reached a pipeline subject"
    );
    // What they answer, they may: the same check sees these through.
    for (role, answers) in [("hasher", "rng"), ("worker", "hasher"), ("hasher", "cli")] {
        let asker = stack.connect_as(answers).await;
        let mut inbox = asker
            .subscribe(format!("_INBOX.{answers}.t"))
            .await
            .unwrap();
        asker.flush().await.unwrap();
        let client = stack.connect_as(role).await;
        client
            .publish(format!("_INBOX.{answers}.t"), Bytes::new())
            .await
            .unwrap();
        client.flush().await.unwrap();
        timeout(REFUSED_WITHIN, inbox.next())
            .await
            .unwrap_or_else(|_| panic!("{role} cannot answer {answers}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_watches_the_pipeline_and_asks_its_services() {
    let stack = Stack::nats_only().await;
    let mut watched = stack.client.subscribe("chocominer.>").await.unwrap();
    stack.client.flush().await.unwrap();
    let pipeline = stack.pipeline().start().await;

    // Numbers and digests flow past the debug user's eyes.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..1000 {
        let message = timeout(SOON, watched.next())
            .await
            .expect("the pipeline's messages within SOON")
            .unwrap();
        seen.insert(message.subject.to_string());
        if seen.contains(NUMBERS) && seen.contains(DIGESTS) {
            break;
        }
    }
    assert!(seen.contains(NUMBERS) && seen.contains(DIGESTS), "{seen:?}");

    // Its `$SRV.PING` is answered by the running hasher, into debug's own inbox.
    let ping = timeout(
        REFUSED_WITHIN,
        stack.client.request("$SRV.PING.hasher", Bytes::new()),
    )
    .await
    .expect("an answer within 10 s")
    .expect("the hasher answers $SRV.PING");
    let ping: serde_json::Value = serde_json::from_slice(&ping.payload).unwrap();
    assert_eq!(ping["name"], "hasher", "{ping}");

    // The official Python client, as the debug user, sees the same.
    let output = python_check(&stack).await;
    assert!(output.status.success(), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("anonymous refused"),
        "{}",
        describe(&output)
    );
    assert!(
        stdout.contains("debug refused on chocominer.digests"),
        "{}",
        describe(&output)
    );
    assert!(
        stdout.contains("hasher answers PING"),
        "{}",
        describe(&output)
    );
    assert!(
        stdout.contains("debug refused on a default _INBOX. inbox"),
        "{}",
        describe(&output)
    );

    let (rng, hasher, worker) = pipeline.stop().await;
    assert!(
        rng.generated > 0 && worker.judged > 0,
        "{rng:?} {hasher:?} {worker:?}"
    );
}

/// A stage whose permissions do not cover what it does says so in its log, naming what was
/// refused: here rng sending on another prefix's subject.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_publication_is_logged_by_the_stage() {
    let bin = testkit::cargo_bin_async("rng").await;
    let stack = Stack::nats_only().await;
    let rng = stack.spawn_process(&bin, "r1", &["--subject-prefix", "elsewhere"]);
    eventually("rng logs the refusal", SOON, POLL, || {
        let log = rng.log_tail();
        async move {
            (log.contains("NATS refused")
                && log.contains("elsewhere.numbers")
                && log.contains("nats_user=rng"))
            .then_some(())
        }
    })
    .await;
}

/// The NATS client logs every connection event at INFO itself, unthrottled, beside the stage's
/// own lines (which throttle what repeats): a client making a hasher reconnect over and over
/// filled its log. With its default filter a stage keeps the client's INFO out: its log has
/// its own "connected to NATS" and nothing of the client's ("connected successfully",
/// "event: connected").
#[tokio::test]
async fn the_nats_clients_own_info_lines_stay_out_of_a_stages_log() {
    let bin = testkit::cargo_bin_async("hasher").await;
    let stack = Stack::nats_only().await;
    let hasher = stack.spawn_process(&bin, "h1", &[]);
    eventually(
        "the hasher's own line: connected to NATS",
        SOON,
        POLL,
        || {
            let log = hasher.log();
            async move { log.contains("connected to NATS").then_some(()) }
        },
    )
    .await;
    let log = hasher.log();
    assert!(
        !log.contains("async_nats") && !log.contains("connected successfully"),
        "the NATS client's own lines are in the stage's log:\n{log}"
    );
}

fn python() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// Runs nats_permissions.py as the debug user against `stack`.
async fn python_check(stack: &Stack) -> std::process::Output {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/nats_permissions.py");
    let url = stack.nats.url();
    let password = stack.nats.password("debug").to_owned();
    let python = python();
    tokio::task::spawn_blocking(move || {
        Command::new(&python)
            .arg(&script)
            .arg(url)
            .env("NATS_USER", "debug")
            .env("NATS_PASSWORD", password)
            .output()
            .unwrap_or_else(|e| panic!("{}: {e} (scripts/install-deps.sh)", python.display()))
    })
    .await
    .unwrap()
}

fn describe(output: &std::process::Output) -> String {
    format!(
        "{}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
