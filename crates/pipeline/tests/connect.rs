//! Connecting to NATS through `NATS_URL`: a comma-separated list of servers is a list, tried
//! server by server, not one malformed address.

use std::time::Duration;

use chocominer_pipeline::{NatsArgs, Shutdown};
use testkit::NatsServer;

fn args(nats: &NatsServer, nats_url: String) -> NatsArgs {
    NatsArgs {
        nats_url,
        nats_user: Some("debug".into()),
        nats_password: Some(nats.password("debug").into()),
        nats_password_file: None,
        nats_token: None,
        nats_creds: None,
        nats_ca: None,
        subject_prefix: "t".into(),
        nats_subscription_capacity: 16,
    }
}

#[tokio::test]
async fn a_list_of_urls_connects_through_the_server_that_answers() {
    let nats = NatsServer::start().await;
    // Nothing listens on the first one: the client must go on to the second.
    let nobody = testkit::free_port();
    let args = args(
        &nats,
        format!(
            "nats://127.0.0.1:{nobody}, nats://127.0.0.1:{}",
            nats.port()
        ),
    );
    assert_eq!(args.server_urls().len(), 2);
    let connected = tokio::time::timeout(
        Duration::from_secs(20),
        chocominer_pipeline::connect(&args, "list-test", &Shutdown::new()),
    )
    .await
    .expect("connected within 20 s")
    .unwrap()
    .expect("connected");
    connected.flush().await.unwrap();
    assert_eq!(connected.server_info().port, nats.port());
}
