//! One message seen on a pipeline subject, decoded with the stages' own codec (what a hasher or
//! worker would take; the headers only add names), or why it could not be. Its strings are kept
//! as received, for `--json`; [`Sighting::render`] escapes each one.

use async_nats::Message;
use chocominer_codec::{BatchHeaders, DigestBatch, NumberBatch, Numbers};
use chocominer_model::Subjects;
use chocominer_model::nugget::Nugget;
use serde::Serialize;

use crate::clock;
use crate::output::escape;
use crate::paint::Paint;

/// A decoded message and when it arrived.
#[derive(Debug, Serialize)]
pub struct Sighting {
    #[serde(rename = "time", serialize_with = "clock::as_rfc3339")]
    pub received_ns: i64,
    pub subject: String,
    #[serde(flatten)]
    pub content: Content,
}

/// What a message carried; `kind` in JSON.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Content {
    Numbers(Batch),
    Digests(Batch),
    Nugget(Find),
    Undecodable { reason: String, bytes: usize },
}

/// A batch of numbers (rng → hasher) or of digest prefixes (hasher → worker), with its first
/// items.
#[derive(Debug, Serialize)]
pub struct Batch {
    /// `<instance>/<seq>` from the headers, or `?/<seq>` when they are missing.
    pub batch: String,
    pub seq: u64,
    pub count: usize,
    /// The sender (`Chocominer-Instance` header).
    pub instance: Option<String>,
    /// On digests: the rng batch the numbers came from.
    pub origin: Option<String>,
    /// `raw` or `seeded`.
    pub encoding: &'static str,
    /// Seeded batches: the ChaCha8 seed, hex.
    pub seed: Option<String>,
    /// The first numbers, hex (seeded ones expanded).
    pub numbers: Vec<String>,
    /// Digest batches: the first digest prefixes, 8 hex digits each, all a digest batch carries:
    /// prefix `i` is the first 4 bytes of SHA-256 of number `i`. Empty on number batches.
    pub prefixes: Vec<String>,
}

/// A nugget as the worker published it, and whether it checks out.
#[derive(Debug, Serialize)]
pub struct Find {
    #[serde(flatten)]
    pub nugget: Nugget,
    /// Why it does not verify (digest is not SHA-256 of the number, too few zero bits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalid: Option<String>,
}

impl Sighting {
    /// Decodes `message`, keeping the first `show` numbers (and digest prefixes) of a batch.
    pub fn read(
        message: &Message,
        subjects: &Subjects,
        max_payload: usize,
        show: usize,
    ) -> Sighting {
        let subject = message.subject.as_str();
        let body = &message.payload[..];
        let headers = message
            .headers
            .as_ref()
            .and_then(BatchHeaders::from_header_map);
        let decoded = if subject == subjects.numbers {
            NumberBatch::decode(body, max_payload)
                .map(|b| Content::Numbers(Batch::new(b.seq, &b.numbers, [], headers, show)))
                .map_err(|e| e.to_string())
        } else if subject == subjects.digests {
            DigestBatch::decode(body, max_payload)
                .map(|b| {
                    Content::Digests(Batch::new(b.seq, &b.numbers, b.prefixes(), headers, show))
                })
                .map_err(|e| e.to_string())
        } else if subject == subjects.nuggets {
            read_nugget(body)
        } else {
            Err("not a subject of this pipeline".to_owned())
        };
        Sighting {
            received_ns: chocominer_process::now_ns(),
            subject: subject.to_owned(),
            content: decoded.unwrap_or_else(|reason| Content::Undecodable {
                reason,
                bytes: body.len(),
            }),
        }
    }

    /// The sighting as text: one headline, then one indented line per item shown. Each string
    /// that came with the message is escaped: the only control characters in the text are the
    /// line ends and the colours (`paint`) written here.
    pub fn render(&self, paint: Paint) -> String {
        let time = paint.dim(&clock::time_of_day(self.received_ns));
        let subject = escape(&self.subject);
        match &self.content {
            Content::Numbers(batch) | Content::Digests(batch) => {
                let noun = match self.content {
                    Content::Numbers(_) => ("number", "numbers"),
                    _ => ("digest prefix", "digest prefixes"),
                };
                let mut text = format!("{time}  {subject}  {}\n", batch.headline(noun));
                for (i, number) in batch.numbers.iter().enumerate() {
                    text += &match batch.prefixes.get(i) {
                        // `…`: the digest goes on, but the batch carries only its start.
                        Some(prefix) => {
                            let number = paint.dim(&format!("of number {}…", &number[..16]));
                            format!("    [{i}] {prefix}…  {number}\n")
                        }
                        None => format!("    [{i}] {number}\n"),
                    };
                }
                if batch.count > batch.numbers.len() {
                    text += &format!("    … and {} more\n", batch.count - batch.numbers.len());
                }
                text
            }
            Content::Nugget(find) => {
                let n = &find.nugget;
                let headline = paint.gold(&format!(
                    "NUGGET  {} zero bits (difficulty {})",
                    n.zero_bits, n.difficulty
                ));
                let from = escape(n.batch.as_deref().unwrap_or("?"));
                let verdict = match &find.invalid {
                    None => String::new(),
                    Some(why) => format!(
                        "    {}\n",
                        paint.alarm(&format!("does not verify: {}", escape(why)))
                    ),
                };
                format!(
                    "{time}  {subject}  {headline}  by {}  from batch {from}\n    number {}\n    \
                     digest {}\n{verdict}",
                    escape(&n.instance),
                    escape(&n.number),
                    paint.gold(&escape(&n.digest)),
                )
            }
            Content::Undecodable { reason, bytes } => format!(
                "{time}  {}\n",
                paint.alarm(&format!(
                    "undecodable on {subject}: {}, {bytes} bytes",
                    escape(reason)
                ))
            ),
        }
    }
}

fn read_nugget(body: &[u8]) -> Result<Content, String> {
    let nugget: Nugget =
        serde_json::from_slice(body).map_err(|e| format!("not a nugget as JSON: {e}"))?;
    let invalid = Nugget::verify(&nugget.number, &nugget.digest, nugget.difficulty).err();
    Ok(Content::Nugget(Find { nugget, invalid }))
}

impl Batch {
    fn new(
        seq: u64,
        numbers: &Numbers,
        prefixes: impl IntoIterator<Item = u32>,
        headers: Option<BatchHeaders>,
        show: usize,
    ) -> Batch {
        let count = numbers.count();
        let shown = count.min(show);
        let encoding = numbers.encoding().name();
        let seed = match numbers {
            Numbers::Raw(_) => None,
            Numbers::Seeded { seed, .. } => Some(hex::encode(seed)),
        };
        let (batch, instance, origin) = match headers {
            Some(h) => (h.batch, Some(h.instance), h.origin),
            None => (format!("?/{seq}"), None, None),
        };
        Batch {
            batch,
            seq,
            count,
            instance,
            origin,
            encoding,
            seed,
            numbers: (0..shown).map(|i| hex::encode(numbers.number(i))).collect(),
            prefixes: prefixes
                .into_iter()
                .take(shown)
                .map(|p| format!("{p:08x}"))
                .collect(),
        }
    }

    /// `batch rng-1/17 from rng-1  1 number (raw)`; on digests,
    /// `… 2 digest prefixes of rng-1/17 (raw)`. `noun`: singular and plural.
    fn headline(&self, (one, many): (&str, &str)) -> String {
        let noun = if self.count == 1 { one } else { many };
        let from = escape(self.instance.as_deref().unwrap_or("?"));
        let mut line = format!(
            "batch {} from {from}  {} {noun}",
            escape(&self.batch),
            self.count
        );
        if let Some(origin) = &self.origin {
            line += &format!(" of {}", escape(origin));
        }
        match &self.seed {
            Some(seed) => line += &format!(" (seeded, seed {}…)", &seed[..16]),
            None => line += &format!(" ({})", self.encoding),
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line of every kind, each string of it holding escape sequences and controls.
    fn hostile() -> Vec<Sighting> {
        let evil = "\x1b]0;pwned\x07\x1b[2J\x1b[1;32m(verified)\x1b[0m\r\u{9b}\u{202e}\x7f";
        let batch = || Batch {
            batch: format!("r1/1{evil}"),
            seq: 1,
            count: 4,
            instance: Some(evil.to_owned()),
            origin: Some(evil.to_owned()),
            encoding: "raw",
            seed: None,
            numbers: vec!["00".repeat(32)],
            prefixes: vec!["11".repeat(4)],
        };
        let nugget = Nugget {
            number: evil.to_owned(),
            digest: evil.to_owned(),
            zero_bits: 5,
            difficulty: 4,
            instance: evil.to_owned(),
            batch: Some(evil.to_owned()),
            found_at_ns: 0,
        };
        [
            Content::Numbers(batch()),
            Content::Digests(batch()),
            Content::Nugget(Find {
                nugget,
                invalid: Some(evil.to_owned()),
            }),
            Content::Undecodable {
                reason: evil.to_owned(),
                bytes: 3,
            },
        ]
        .into_iter()
        .map(|content| Sighting {
            received_ns: 0,
            subject: format!("chocominer.{evil}"),
            content,
        })
        .collect()
    }

    /// Without the colours `paint` writes.
    fn bare(text: &str) -> String {
        Paint::SEQUENCES
            .iter()
            .fold(text.to_owned(), |text, ours| text.replace(ours, ""))
    }

    #[test]
    fn a_digest_batch_shows_each_prefix_as_the_start_of_a_digest() {
        use chocominer_codec::{DigestBatch, PREFIX_LEN};
        let numbers: Vec<u8> = (0..4 * 32).map(|i| i as u8).collect();
        let prefixes: Vec<u8> = [0x0000_1234u32, 0xdead_beef, 0, u32::MAX]
            .iter()
            .flat_map(|p| p.to_be_bytes())
            .collect();
        assert_eq!(prefixes.len(), 4 * PREFIX_LEN);
        let body = DigestBatch {
            seq: 7,
            numbers: Numbers::Raw(&numbers),
            prefixes: &prefixes,
        }
        .encode();
        let batch = DigestBatch::decode(&body, 1 << 20).unwrap();
        let mut headers = BatchHeaders::new("h1", 7, 4);
        headers.origin = Some("r1/3".to_owned());
        let sighting = Sighting {
            received_ns: 0,
            subject: "chocominer.digests".to_owned(),
            content: Content::Digests(Batch::new(
                batch.seq,
                &batch.numbers,
                batch.prefixes(),
                Some(headers),
                3,
            )),
        };
        let time = clock::time_of_day(0);
        assert_eq!(
            bare(&sighting.render(Paint::colour())),
            format!(
                "{time}  chocominer.digests  batch h1/7 from h1  4 digest prefixes of r1/3 (raw)\n\
                 \x20   [0] 00001234…  of number 0001020304050607…\n\
                 \x20   [1] deadbeef…  of number 2021222324252627…\n\
                 \x20   [2] 00000000…  of number 4041424344454647…\n\
                 \x20   … and 1 more\n"
            )
        );
        // JSON: the prefixes in hex, 8 digits each, under their own name.
        let json = serde_json::to_value(&sighting).unwrap();
        assert_eq!(
            json["prefixes"],
            serde_json::json!(["00001234", "deadbeef", "00000000"])
        );
        assert_eq!(json["numbers"][1], hex::encode(&numbers[32..64]));
        assert!(json.get("digests").is_none(), "{json}");
        // One of them: "digest prefix".
        let one = Sighting {
            content: Content::Digests(Batch::new(1, &Numbers::Raw(&numbers[..32]), [7], None, 3)),
            ..sighting
        };
        assert!(
            bare(&one.render(Paint::colour()))
                .contains("batch ?/1 from ?  1 digest prefix (raw)\n"),
            "{one:?}"
        );
    }

    #[test]
    fn text_holds_no_control_character_but_line_ends_and_its_own_colours() {
        for sighting in hostile() {
            let text = sighting.render(Paint::colour());
            assert!(text.contains(Paint::SEQUENCES[3]), "coloured: {text:?}");
            let bare = bare(&text);
            assert!(
                !bare
                    .chars()
                    .any(|c| c != '\n' && crate::output::is_unsafe(c)),
                "{text:?}"
            );
            assert!(bare.contains("\\x1b]0;pwned\\x07"), "{text:?}");
        }
    }
}
