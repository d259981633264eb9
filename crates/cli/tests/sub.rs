//! `chocominer sub` against a real pipeline: nuggets that verify, batches shown with their ids
//! and numbers in hex (seeded ones expanded), digests that are SHA-256 of their numbers, and
//! garbage shown as undecodable without stopping.

mod common;

use chocominer_pipeline::codec::{BatchHeaders, NumberBatch, Numbers};
use chocominer_pipeline::nugget::Nugget;
use common::{Running, chocominer_on, run};
use serde_json::Value;
use testkit::Stack;

const DIFFICULTY: u32 = 4;

/// Parses `--json` output: one object per line.
fn objects(out: &str) -> Vec<Value> {
    out.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| v.as_str().expect("hex string").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_shows_nuggets_batches_and_digests() {
    let stack = Stack::start().await;
    let _pipeline = stack
        .pipeline()
        .worker("w1", &["--difficulty", "4"])
        .hasher("h1", &["--delay-ms", "0"])
        .rng("r1", &["--rate", "500", "--batch", "5"])
        .start()
        .await;

    // Nuggets, as JSON: each one verifies.
    let out = run(&stack, &["sub", "nuggets", "--json", "--count", "3"]).await;
    let nuggets = objects(&out);
    assert_eq!(nuggets.len(), 3, "{out}");
    for json in nuggets {
        assert_eq!(json["kind"], "nugget", "{json}");
        assert_eq!(json["subject"], "chocominer.nuggets", "{json}");
        assert!(json.get("invalid").is_none(), "{json}");
        let nugget: Nugget = serde_json::from_value(json.clone()).expect("a nugget");
        assert_eq!(
            (nugget.difficulty, nugget.instance.as_str()),
            (DIFFICULTY, "w1")
        );
        Nugget::verify(&nugget.number, &nugget.digest, DIFFICULTY)
            .unwrap_or_else(|e| panic!("{json}: {e}"));
    }

    // Number batches, as text: batch id, count, sender, then numbers in hex.
    let out = run(&stack, &["sub", "numbers", "--count", "2"]).await;
    let headlines: Vec<&str> = out.lines().filter(|l| !l.starts_with(' ')).collect();
    assert_eq!(headlines.len(), 2, "{out}");
    for headline in headlines {
        assert!(
            headline.contains("  chocominer.numbers  batch r1/")
                && headline.contains(" from r1  5 numbers (raw)"),
            "{out}"
        );
    }
    let numbers: Vec<&str> = out
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix('['))
        .filter_map(|l| l.split_once("] ").map(|(_, hex)| hex))
        .collect();
    assert_eq!(numbers.len(), 6, "3 numbers shown per batch: {out}");
    assert!(
        numbers
            .iter()
            .all(|n| n.len() == 64 && hex::decode(n).is_ok()),
        "{out}"
    );
    assert_eq!(out.matches("… and 2 more").count(), 2, "{out}");

    // Digest batches, as JSON: each digest shown is SHA-256 of its number.
    let out = run(
        &stack,
        &["sub", "digests", "--json", "--count", "2", "--show", "5"],
    )
    .await;
    for json in objects(&out) {
        assert_eq!(json["kind"], "digests", "{json}");
        assert_eq!(json["instance"], "h1", "{json}");
        assert!(
            json["origin"].as_str().unwrap().starts_with("r1/"),
            "{json}"
        );
        let (numbers, digests) = (strings(&json["numbers"]), strings(&json["digests"]));
        assert_eq!((numbers.len(), digests.len()), (5, 5), "{json}");
        for (number, digest) in numbers.iter().zip(&digests) {
            // Difficulty 0: only the SHA-256 is checked.
            Nugget::verify(number, digest, 0).unwrap_or_else(|e| panic!("{json}: {e}"));
        }
    }
}

/// A seeded batch is shown with its seed and its first numbers expanded from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_expands_seeded_batches() {
    let stack = Stack::start().await;
    let _pipeline = stack
        .pipeline()
        .hasher("h1", &["--delay-ms", "0"])
        .rng(
            "r1",
            &["--rate", "1000", "--batch", "100", "--numbers", "seeded"],
        )
        .start()
        .await;
    let out = run(
        &stack,
        &["sub", "numbers", "--json", "--count", "2", "--show", "4"],
    )
    .await;
    for json in objects(&out) {
        assert_eq!(
            (&json["encoding"], &json["count"]),
            (&Value::from("seeded"), &Value::from(100)),
            "{json}"
        );
        let seed: [u8; 32] = hex::decode(json["seed"].as_str().expect("a seed"))
            .expect("hex seed")
            .try_into()
            .expect("32 bytes");
        let expanded = Numbers::Seeded { seed, count: 100 };
        let shown = strings(&json["numbers"]);
        assert_eq!(shown.len(), 4, "{json}");
        for (i, number) in shown.iter().enumerate() {
            assert_eq!(*number, hex::encode(expanded.number(i)), "{json}");
        }
    }
    let text = run(&stack, &["sub", "numbers", "--count", "1"]).await;
    assert!(text.contains("100 numbers (seeded, seed "), "{text}");
}

/// Garbage on every subject is shown as undecodable, and `sub` goes on to the next message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_shows_garbage_as_undecodable_and_goes_on() {
    let stack = Stack::nats_only().await;
    let client = &stack.client;
    let mut sub = Running::spawn(chocominer_on(&stack, &["sub", "--count", "5"]));
    sub.subscribed().await;

    let numbers = [7u8; 64];
    let good = NumberBatch {
        seq: 9,
        numbers: Numbers::Raw(&numbers),
    };
    let headers = BatchHeaders::new("tester", 9, 2).to_header_map();
    let garbage: [(&str, &[u8]); 4] = [
        ("chocominer.numbers", b"\x63not a batch"),
        ("chocominer.digests", b""),
        ("chocominer.nuggets", b"{\"number\": 1"),
        ("chocominer.digests", &good.encode()),
    ];
    for (subject, body) in garbage {
        client
            .publish(subject, bytes::Bytes::copy_from_slice(body))
            .await
            .unwrap();
    }
    client
        .publish_with_headers("chocominer.numbers", headers, good.encode())
        .await
        .unwrap();
    client.flush().await.unwrap();

    let mut lines = Vec::new();
    // 4 undecodable lines, then the good batch: a headline and 2 numbers.
    for _ in 0..7 {
        match sub.next_line().await {
            Some(line) => lines.push(line),
            None => break,
        }
    }
    let text = lines.join("\n");
    let expected = [
        "undecodable on chocominer.numbers: unknown format version 99 (this build reads 1), 12 bytes",
        "undecodable on chocominer.digests: empty body, 0 bytes",
        "undecodable on chocominer.nuggets: not a nugget as JSON",
        // A number batch is not a digest batch.
        "undecodable on chocominer.digests: malformed body",
        "chocominer.numbers  batch tester/9 from tester  2 numbers (raw)",
    ];
    for (line, expected) in lines.iter().zip(expected) {
        assert!(
            line.contains(expected),
            "{expected:?} not in {line:?}:\n{text}"
        );
    }
    assert_eq!(
        lines[5].trim(),
        format!("[0] {}", hex::encode([7u8; 32])),
        "{text}"
    );
    assert!(
        sub.success().await,
        "sub exits cleanly after --count messages"
    );
}
