//! What an InfluxQL statement names that the schema does not have: the check the tests of
//! every query (the read side's, the dashboard's, Chronograf's) make. Built for tests only.

use std::collections::BTreeSet;

use super::{INSTANCE, MEASUREMENTS, Measurement};

/// The measurement named `name`.
pub(super) fn measurement(name: &str) -> Option<&'static Measurement> {
    MEASUREMENTS.iter().copied().find(|m| m.name == name)
}

/// What `statement` (InfluxQL) names that the schema does not have: measurements after `FROM`
/// (the last part of `"db"."rp"."measurement"`), and fields of those measurements anywhere
/// else in the same query. A query may also name `time`, the [`INSTANCE`] tag and the columns
/// of the subquery it reads from, not its own aliases (`sum("x") AS "x"` still needs a field
/// `x`). Functions, keywords, strings, numbers and Chronograf's `:variables:` are not names.
pub fn unknown_names(statement: &str) -> Vec<String> {
    let tokens = tokenize(statement);
    let mut unknown = Vec::new();
    let mut at = 0;
    while at < tokens.len() {
        read_query(&tokens, &mut at, &mut unknown);
        // Past the `;` between statements (or a stray `)`).
        at += 1;
    }
    unknown
}

/// Reads one query from `tokens[*at]` to the `)` that closes it, the `;` that ends it or the
/// end, notes what it names that is unknown, and returns the columns it gives to a query that
/// reads from it: its aliases and the names it reads (a superset, which is enough here).
fn read_query(tokens: &[Token], at: &mut usize, unknown: &mut Vec<String>) -> BTreeSet<String> {
    let mut measurements = Vec::new();
    let mut subquery_columns = BTreeSet::new();
    let mut columns = BTreeSet::new();
    let mut references = Vec::new();
    let mut depth = 0;
    while let Some(token) = tokens.get(*at) {
        let next = tokens.get(*at + 1);
        match token {
            Token::Punct(')' | ';') if depth == 0 => break,
            Token::Punct('(') => depth += 1,
            Token::Punct(')') => depth -= 1,
            Token::Word(w) if w.eq_ignore_ascii_case("from") => {
                // `FROM a, "db"."rp"."b"` or `FROM (SELECT ...)`.
                *at += 1;
                loop {
                    match tokens.get(*at) {
                        Some(Token::Punct('(')) => {
                            *at += 1;
                            subquery_columns.extend(read_query(tokens, at, unknown));
                            *at += 1;
                        }
                        Some(Token::Name(_) | Token::Word(_)) => {
                            while tokens.get(*at + 1) == Some(&Token::Punct('.')) {
                                *at += 2;
                            }
                            if let Some(Token::Name(n) | Token::Word(n)) = tokens.get(*at) {
                                measurements.push(n.clone());
                            }
                            *at += 1;
                        }
                        _ => break,
                    }
                    if tokens.get(*at) != Some(&Token::Punct(',')) {
                        break;
                    }
                    *at += 1;
                }
                continue;
            }
            Token::Word(w) if w.eq_ignore_ascii_case("as") => {
                if let Some(Token::Name(n) | Token::Word(n)) = next {
                    columns.insert(n.clone());
                }
                *at += 2;
                continue;
            }
            // A function (`sum(`, `time(`, `fill(`): its arguments are read in turn.
            Token::Word(_) if next == Some(&Token::Punct('(')) => {}
            Token::Word(w) if is_keyword(w) => {}
            Token::Name(n) | Token::Word(n) => references.push(n.clone()),
            _ => {}
        }
        *at += 1;
    }
    let mut known: Vec<&Measurement> = Vec::new();
    for name in &measurements {
        match measurement(name) {
            Some(m) => known.push(m),
            None => unknown.push(format!("measurement {name:?}")),
        }
    }
    for name in references {
        let fine = name == "time"
            || name == INSTANCE
            || subquery_columns.contains(&name)
            || known.iter().any(|m| m.field(&name).is_some());
        if !fine {
            let of: Vec<&str> = known.iter().map(|m| m.name).collect();
            let of = match of.is_empty() {
                true => "any measurement".to_owned(),
                false => of.join(", "),
            };
            unknown.push(format!("field {name:?} (not in {of})"));
        }
        columns.insert(name);
    }
    columns
}

/// InfluxQL's words that are not names, as ChocoMiner's queries use them.
fn is_keyword(word: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "select",
        "from",
        "where",
        "and",
        "or",
        "not",
        "group",
        "by",
        "order",
        "asc",
        "desc",
        "limit",
        "offset",
        "slimit",
        "soffset",
        "fill",
        "as",
        "time",
        "now",
        "none",
        "null",
        "previous",
        "linear",
        "tz",
        "show",
        "field",
        "tag",
        "keys",
        "measurements",
        "on",
        "with",
        "key",
        "in",
        "integer",
        "float",
        "string",
        "boolean",
    ];
    KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(word))
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// A double-quoted identifier.
    Name(String),
    /// An unquoted word: a keyword, a function or an identifier.
    Word(String),
    Punct(char),
    /// A string, a number, a duration or a Chronograf variable: never a name.
    Literal,
}

fn tokenize(statement: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = statement.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                let mut text = String::new();
                while let Some(next) = chars.next() {
                    match next {
                        '\\' => text.extend(chars.next()),
                        _ if next == c => break,
                        _ => text.push(next),
                    }
                }
                tokens.push(match c {
                    '"' => Token::Name(text),
                    _ => Token::Literal,
                });
            }
            // Chronograf's `:dashboardTime:` (or the `::` of a cast, whose type is a keyword).
            ':' => {
                for next in chars.by_ref() {
                    if next == ':' {
                        break;
                    }
                }
                tokens.push(Token::Literal);
            }
            _ if c.is_ascii_alphabetic() || c == '_' => {
                let mut word = String::from(c);
                while let Some(&next) = chars.peek() {
                    if !(next.is_ascii_alphanumeric() || next == '_') {
                        break;
                    }
                    word.push(next);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
            // Numbers and durations: 100, 0.5, 1e6, 2s, 1000ms.
            _ if c.is_ascii_digit() => {
                while chars
                    .next_if(|next| next.is_ascii_alphanumeric() || *next == '.')
                    .is_some()
                {}
                tokens.push(Token::Literal);
            }
            _ if c.is_whitespace() => {}
            _ => tokens.push(Token::Punct(c)),
        }
    }
    tokens
}
