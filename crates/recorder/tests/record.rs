//! The recorder between a stage's InfluxDB client and a real influxd with authorization on:
//! what a stage writes gets through; what a stage never writes, a wrong password, and anything
//! but a write are refused, and nothing of a refused request reaches InfluxDB.

use chocominer_influx::{Client, InfluxArgs, Secret, WriteError};
use chocominer_model::nugget::record_of;
use chocominer_process::{HealthArgs, Shutdown};
use testkit::{DB, Influx};
use tokio::net::TcpListener;

const PASSWORD: &str = "stages-password-for-tests";

/// A recorder in front of `influx` as its writer; its URL and its stop.
async fn recorder(
    influx: &Influx,
) -> (String, Shutdown, tokio::task::JoinHandle<recorder::Report>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = recorder::Config {
        listen: listener.local_addr().unwrap(),
        user: recorder::DEFAULT_USER.into(),
        password_file: Secret::new(PASSWORD),
        influx: influx.writer(DB),
        health: HealthArgs::default(),
    };
    let shutdown = Shutdown::new();
    let task = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { recorder::serve(listener, config, shutdown).await.unwrap() }
    });
    (url, shutdown, task)
}

/// A stage's client of the recorder at `url`, with `password`.
fn stage(url: &str, password: &str) -> Client {
    let mut args = InfluxArgs::new(url, DB);
    args.influx_user = Some(recorder::DEFAULT_USER.into());
    args.influx_password = Some(password.into());
    Client::new(&args).unwrap()
}

#[tokio::test]
async fn a_stages_points_get_through_and_nothing_else() {
    let influx = Influx::start().await;
    influx.create_database(DB).await;
    let (url, shutdown, task) = recorder(&influx).await;
    let client = stage(&url, PASSWORD);
    let now = chocominer_process::now_ns();

    let mut number = [7u8; 32];
    let (digest, zero_bits) = loop {
        let (digest, bits) = record_of(&number);
        if bits >= 4 {
            break (digest, bits);
        }
        number[0] = number[0].wrapping_add(1);
    };
    let number_hex: String = number.iter().map(|b| format!("{b:02x}")).collect();
    let good = vec![
        format!(
            "worker,instance=w1 hashes=10i,nuggets=1i,forged=0i,rejected=0i,expired=0i,difficulty=4i,busy=0.5 {now}"
        ),
        format!(
            "nugget,instance=w1 number=\"{number_hex}\",digest=\"{digest}\",zero_bits={zero_bits}i {now}"
        ),
    ];
    client.write(&good).await.expect("a stage's points");
    let rows = influx
        .rows(DB, r#"SELECT count("hashes") FROM "worker""#)
        .await;
    assert_eq!(rows.len(), 1, "{rows:?}");

    let forged_digest = "0".repeat(64);
    for bad in [
        format!("worker,instance=w1 hashes=-5i {now}"),
        format!("worker,instance=w1 busy=7.0 {now}"),
        format!("worker,instance=w1 hashes=1.5 {now}"),
        format!("worker,instance=w1,extra=x hashes=1i {now}"),
        format!("worker,instance=w1 made_up=1i {now}"),
        format!("other,instance=w1 hashes=1i {now}"),
        format!("worker,instance=w1 hashes=1i {}", now + 3_600_000_000_000),
        "worker,instance=w1 hashes=1i".to_owned(),
        format!(
            "nugget,instance=w1 number=\"{number_hex}\",digest=\"{forged_digest}\",zero_bits=256i {now}"
        ),
    ] {
        // A good line before the bad one: the request is refused whole.
        let request = vec![good[0].clone(), bad.clone()];
        match client.write(&request).await {
            Err(WriteError::Refused(why)) => assert!(why.contains("line 2"), "{bad}: {why}"),
            other => panic!("{bad}: {other:?}"),
        }
    }
    let rows = influx
        .rows(DB, r#"SELECT count("hashes") FROM "worker""#)
        .await;
    assert_eq!(rows[0]["count"], 1, "a refused request wrote something");

    match stage(&url, "not-the-password").write(&good).await {
        Err(WriteError::Denied(_)) => {}
        other => panic!("a wrong password: {other:?}"),
    }
    // No query at all, so no DELETE or DROP SERIES.
    let deleted = stage(&url, PASSWORD)
        .query(&[r#"DELETE FROM "worker""#.to_owned()])
        .await;
    assert!(deleted.is_err(), "{deleted:?}");
    let rows = influx
        .rows(DB, r#"SELECT count("hashes") FROM "worker""#)
        .await;
    assert_eq!(rows[0]["count"], 1);

    shutdown.trigger();
    let report = task.await.unwrap();
    assert_eq!(report.recorded, 2, "{report:?}");
}

/// The real stages, given the recorder as their InfluxDB with the stages' password: every
/// point they write is one the recorder takes, of every measurement, none refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_stages_write_through_it() {
    use std::time::Duration;
    use testkit::{NatsServer, POLL, SOON, StageProcess, eventually};

    let (nats, influx) = tokio::join!(NatsServer::start(), Influx::start());
    influx.create_database(DB).await;
    let (url, shutdown, task) = recorder(&influx).await;
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("influx-stages.password");
    std::fs::write(&password_file, PASSWORD).unwrap();
    let args = |stage: &str, instance: &str, extra: &[&str]| -> Vec<String> {
        let mut args = vec!["--nats-url".to_owned(), nats.url()];
        args.extend(nats.user_args(stage));
        args.extend([
            "--influx-url".to_owned(),
            url.clone(),
            "--influx-user".to_owned(),
            recorder::DEFAULT_USER.to_owned(),
            "--influx-password-file".to_owned(),
            password_file.display().to_string(),
            "--instance".to_owned(),
            instance.to_owned(),
        ]);
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };
    let bin = |name: &'static str| testkit::cargo_bin_async(name);
    let (rng, hasher, worker) = tokio::join!(bin("rng"), bin("hasher"), bin("worker"));
    let mut worker =
        StageProcess::spawn(&worker, "w1", &args("worker", "w1", &["--delay-ms", "0"]));
    let mut hasher =
        StageProcess::spawn(&hasher, "h1", &args("hasher", "h1", &["--delay-ms", "0"]));
    let client = nats.connect_as("debug").await;
    testkit::wait_for_service(&client, "worker", &["w1"]).await;
    testkit::wait_for_service(&client, "hasher", &["h1"]).await;
    let mut rng = StageProcess::spawn(
        &rng,
        "r1",
        &args("rng", "r1", &["--rate", "200", "--batch", "10"]),
    );

    let influx = &influx;
    eventually("points of every measurement", SOON, POLL, || async move {
        let mut all = true;
        for measurement in ["rng", "hasher", "worker", "nugget"] {
            let q = format!(r#"SELECT count(*) FROM "{measurement}""#);
            all &= !influx.rows(DB, &q).await.is_empty();
        }
        all.then_some(())
    })
    .await;
    for (name, process) in [("r1", &mut rng), ("h1", &mut hasher), ("w1", &mut worker)] {
        let status = process.terminate(Duration::from_secs(30)).await;
        assert!(
            status.success(),
            "{name}: {status:?}\n{}",
            process.log_tail()
        );
    }
    shutdown.trigger();
    let report = task.await.unwrap();
    assert_eq!(
        report.refused, 0,
        "the recorder refused a real stage's points: {report:?}"
    );
    assert!(report.recorded > 0, "{report:?}");
}
