//! `chocominer sub` against a real pipeline: nuggets that verify, batches shown with their ids
//! and numbers in hex (seeded ones expanded), digest prefixes that are the start of SHA-256 of
//! their numbers, and garbage shown as undecodable without stopping.

mod common;

use chocominer_codec::{BatchHeaders, FORMAT_VERSION, NumberBatch, Numbers, PREFIX_LEN};
use chocominer_model::nugget::{Nugget, digest_of};
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

    // Digest batches, as JSON: each prefix shown is the start of SHA-256 of its number, in hex.
    let out = run(
        &stack,
        &["sub", "digests", "--json", "--count", "2", "--show", "5"],
    )
    .await;
    let batches = objects(&out);
    assert_eq!(batches.len(), 2, "{out}");
    for json in batches {
        assert_eq!(json["kind"], "digests", "{json}");
        assert_eq!(json["instance"], "h1", "{json}");
        assert!(
            json["origin"].as_str().unwrap().starts_with("r1/"),
            "{json}"
        );
        assert!(json.get("digests").is_none(), "{json}");
        let (numbers, prefixes) = (strings(&json["numbers"]), strings(&json["prefixes"]));
        assert_eq!((numbers.len(), prefixes.len()), (5, 5), "{json}");
        for (number, prefix) in numbers.iter().zip(&prefixes) {
            let digest = digest_of(&hex::decode(number).expect("hex number"));
            assert_eq!(*prefix, hex::encode(&digest[..PREFIX_LEN]), "{json}");
        }
    }

    // Digest batches, as text: each prefix in 8 hex digits and `…`, beside its number.
    let out = run(&stack, &["sub", "digests", "--count", "2"]).await;
    let headlines: Vec<&str> = out.lines().filter(|l| !l.starts_with(' ')).collect();
    assert_eq!(headlines.len(), 2, "{out}");
    for headline in headlines {
        assert!(
            headline.contains("  chocominer.digests  batch h1/")
                && headline.contains(" from h1  5 digest prefixes of r1/")
                && headline.ends_with(" (raw)"),
            "{out}"
        );
    }
    let items: Vec<(&str, &str)> = out
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix('['))
        .filter_map(|l| l.split_once("] ")?.1.split_once("…  of number "))
        .collect();
    assert_eq!(items.len(), 6, "3 shown per batch: {out}");
    for (prefix, number) in items {
        let hex_digits =
            |s: &str, n| s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        assert!(
            hex_digits(prefix, 8) && number.strip_suffix('…').is_some_and(|n| hex_digits(n, 16)),
            "{out}"
        );
    }
    assert_eq!(out.matches("… and 2 more").count(), 2, "{out}");
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
    // Each subject from the role that may publish on it; from several connections, so each
    // message is shown before the next is sent (order across connections is not kept).
    let rng = stack.connect_as("rng").await;
    let hasher = stack.connect_as("hasher").await;
    let worker = stack.connect_as("worker").await;
    let client_for = |subject: &str| match subject {
        "chocominer.numbers" => &rng,
        "chocominer.digests" => &hasher,
        _ => &worker,
    };
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
    let mut lines = Vec::new();
    // 4 undecodable lines, one each...
    for (subject, body) in garbage {
        let client = client_for(subject);
        client
            .publish(subject, bytes::Bytes::copy_from_slice(body))
            .await
            .unwrap();
        client.flush().await.unwrap();
        lines.extend(sub.next_line().await);
    }
    // ...then the good batch: a headline and 2 numbers.
    rng.publish_with_headers("chocominer.numbers", headers, good.encode())
        .await
        .unwrap();
    rng.flush().await.unwrap();
    for _ in 0..3 {
        lines.extend(sub.next_line().await);
    }
    let text = lines.join("\n");
    let unknown_version = format!(
        "undecodable on chocominer.numbers: unknown format version 99 (this build reads \
         {FORMAT_VERSION}), 12 bytes"
    );
    let expected = [
        &unknown_version,
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

/// What anyone who may publish can put in front of `sub`: escape sequences (window title, clear
/// screen, colour, a fake "(verified)"), carriage returns, C1 and bidirectional controls, in
/// the batch headers, in a subject's last token and in a nugget's JSON fields. (No carriage
/// return in a header: async-nats 0.51 panics on one, in its connection task, and the client
/// loses its connection before `sub` sees the message.)
mod hostile {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpStream;

    pub const TITLE: &str = "\x1b]0;pwned\x07";
    pub const CLEAR: &str = "\x1b[2J\x1b[H";
    pub const FAKE_OK: &str = "\x1b[1;32m(verified)\x1b[0m";

    /// A message as a publisher writes it on the wire: subject, headers, body.
    pub type Message = (String, Vec<(&'static str, String)>, Vec<u8>);

    /// The messages.
    pub fn messages() -> Vec<Message> {
        let numbers = [7u8; 64];
        let batch = |seq| {
            NumberBatch {
                seq,
                numbers: Numbers::Raw(&numbers),
            }
            .encode()
            .to_vec()
        };
        let digests = {
            use chocominer_codec::DigestBatch;
            DigestBatch {
                seq: 2,
                numbers: Numbers::Raw(&numbers),
                prefixes: &[0u8; 2 * PREFIX_LEN],
            }
            .encode()
            .to_vec()
        };
        let headers = |origin: Option<String>| {
            let mut h = vec![
                ("Chocominer-Batch", format!("r1/1{TITLE}")),
                ("Chocominer-Count", "2".to_owned()),
                ("Chocominer-Instance", format!("{CLEAR}r1{FAKE_OK}")),
            ];
            h.extend(origin.map(|o| ("Chocominer-Origin", o)));
            h
        };
        let nugget = serde_json::json!({
            "number": format!("{TITLE}ab"),
            "digest": format!("{FAKE_OK}\r0000"),
            "zero_bits": 30,
            "difficulty": 4,
            "instance": format!("w1{CLEAR}\u{9b}31m\u{202e}"),
            "batch": format!("r1/1\x7f{TITLE}"),
            "found_at_ns": 1,
        });
        // serde's error quotes the string it could not take as a number.
        let ill_typed = serde_json::json!({
            "number": "ab", "digest": "cd", "zero_bits": format!("{CLEAR}{TITLE}"),
            "difficulty": 4, "instance": "w1", "batch": null, "found_at_ns": 1,
        });
        vec![
            ("chocominer.numbers".into(), headers(None), batch(1)),
            (
                "chocominer.digests".into(),
                headers(Some(format!("r1/0{FAKE_OK}\u{9b}2J"))),
                digests,
            ),
            (
                "chocominer.nuggets".into(),
                vec![],
                nugget.to_string().into_bytes(),
            ),
            (
                "chocominer.nuggets".into(),
                vec![],
                ill_typed.to_string().into_bytes(),
            ),
            (
                format!("chocominer.x{TITLE}{CLEAR}"),
                vec![],
                b"hello".to_vec(),
            ),
        ]
    }

    /// Publishes `messages` byte for byte over a plain socket, as any NATS publisher may (a
    /// client library would refuse some of them before sending), then waits for the server's
    /// PONG: it has routed them.
    pub async fn publish(port: u16, messages: &[Message]) {
        let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut stream = BufReader::new(stream);
        let mut info = String::new();
        stream.read_line(&mut info).await.unwrap();
        assert!(info.starts_with("INFO "), "{info}");
        let mut wire =
            b"CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true}\r\n".to_vec();
        for (subject, headers, body) in messages {
            if headers.is_empty() {
                wire.extend(format!("PUB {subject} {}\r\n", body.len()).as_bytes());
            } else {
                let mut block = b"NATS/1.0\r\n".to_vec();
                for (name, value) in headers {
                    block.extend(format!("{name}: {value}\r\n").as_bytes());
                }
                block.extend(b"\r\n");
                let total = block.len() + body.len();
                wire.extend(format!("HPUB {subject} {} {total}\r\n", block.len()).as_bytes());
                wire.extend(block);
            }
            wire.extend(body);
            wire.extend(b"\r\n");
        }
        wire.extend(b"PING\r\n");
        stream.get_mut().write_all(&wire).await.unwrap();
        let mut answer = String::new();
        while !answer.contains("PONG") {
            let mut chunk = [0u8; 256];
            let n = tokio::time::timeout(common::SOON, stream.read(&mut chunk))
                .await
                .expect("the server answers PING")
                .unwrap();
            assert!(n > 0, "the server closed the connection: {answer}");
            answer += &String::from_utf8_lossy(&chunk[..n]);
            assert!(!answer.contains("-ERR"), "the server refused: {answer}");
        }
    }

    /// Runs `sub <args>` until it has printed `count` messages published meanwhile: its stdout,
    /// byte for byte.
    pub async fn watched(stack: &Stack, args: &[&str]) -> Vec<u8> {
        let messages = messages();
        let count = messages.len().to_string();
        let mut all = vec!["sub", "--count", &count];
        all.extend(args.iter().copied());
        let mut sub = Running::spawn(chocominer_on(stack, &all));
        sub.subscribed().await;
        publish(stack.nats.port(), &messages).await;
        let mut out = Vec::new();
        tokio::time::timeout(common::SOON, sub.stdout.get_mut().read_to_end(&mut out))
            .await
            .expect("sub prints them within a minute")
            .unwrap();
        assert!(
            sub.success().await,
            "sub exits cleanly after --count messages"
        );
        out
    }

    /// The characters of `out` a terminal would act on, other than line ends.
    pub fn controls(out: &str) -> Vec<char> {
        out.chars()
            .filter(|&c| {
                c != '\n'
                    && (c.is_control()
                        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'))
            })
            .collect()
    }
}

/// No control character from the bus reaches the terminal: the text shows each one escaped,
/// and `--json` gives the very strings received, as valid JSON with no raw control in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_escapes_control_characters_from_the_bus() {
    use hostile::{CLEAR, FAKE_OK, TITLE};
    // The project's permissions let no one publish on a subject of its own (the last message):
    // what `sub` shows of whatever a server delivers is tested on one without them.
    let stack =
        Stack::nats_only_on(testkit::NatsServer::start_without_authorization("").await).await;

    let out = hostile::watched(&stack, &[]).await;
    let text = String::from_utf8(out).expect("UTF-8");
    assert_eq!(hostile::controls(&text), [] as [char; 0], "{text:?}");
    let headlines: Vec<&str> = text.lines().filter(|l| !l.starts_with(' ')).collect();
    assert_eq!(headlines.len(), 5, "one headline per message: {text}");
    for shown in [
        // The headers of a batch.
        "batch r1/1\\x1b]0;pwned\\x07 from \\x1b[2J\\x1b[Hr1\\x1b[1;32m(verified)\\x1b[0m  2 numbers",
        " of r1/0\\x1b[1;32m(verified)\\x1b[0m\\u{9b}2J (raw)",
        // A nugget's fields, and why it does not verify.
        "by w1\\x1b[2J\\x1b[H\\u{9b}31m\\u{202e}  from batch r1/1\\x7f\\x1b]0;pwned\\x07",
        "    number \\x1b]0;pwned\\x07ab",
        "    digest \\x1b[1;32m(verified)\\x1b[0m\\r0000",
        "does not verify: number is not hex",
        // serde's reason quotes the string (escaped by serde already).
        "undecodable on chocominer.nuggets: not a nugget as JSON: invalid type: string \"",
        // A subject's token.
        "undecodable on chocominer.x\\x1b]0;pwned\\x07\\x1b[2J\\x1b[H: not a subject of this pipeline",
    ] {
        assert!(text.contains(shown), "{shown:?} not in:\n{text}");
    }

    let out = hostile::watched(&stack, &["--json"]).await;
    let json = String::from_utf8(out).expect("UTF-8");
    assert_eq!(hostile::controls(&json), [] as [char; 0], "{json:?}");
    let seen = objects(&json);
    assert_eq!(seen.len(), 5, "{json}");
    // Parsed back, the strings are exactly what was sent.
    assert_eq!(seen[0]["batch"], format!("r1/1{TITLE}"));
    assert_eq!(seen[0]["instance"], format!("{CLEAR}r1{FAKE_OK}"));
    assert_eq!(seen[1]["origin"], format!("r1/0{FAKE_OK}\u{9b}2J"));
    assert_eq!(seen[2]["kind"], "nugget");
    assert_eq!(seen[2]["instance"], format!("w1{CLEAR}\u{9b}31m\u{202e}"));
    assert_eq!(seen[2]["digest"], format!("{FAKE_OK}\r0000"));
    assert_eq!(seen[3]["kind"], "undecodable");
    assert_eq!(seen[4]["subject"], format!("chocominer.x{TITLE}{CLEAR}"));
}
