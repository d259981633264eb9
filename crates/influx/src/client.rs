//! The one HTTP client of InfluxDB 1.x: `POST /write` of line protocol for the stages' stats,
//! `GET /query` of InfluxQL (`epoch=ms`, several statements in one request) for the front ends
//! and the tests, one timeout for every request, errors of one line each.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Map, Value};

use crate::InfluxArgs;

/// How long one request may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a query gave no rows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("InfluxDB unreachable at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("InfluxDB at {url} answered with an error: {reason}")]
    Failed { url: String, reason: String },
    #[error("{url} did not answer like InfluxDB 1.x: {reason}")]
    NotInflux { url: String, reason: String },
    /// Wrong or missing credentials (401), or no right to read (403): says what to change.
    #[error("{0}")]
    Denied(String),
}

impl QueryError {
    /// Whether InfluxDB answered that the database does not exist (yet): nobody wrote to it.
    pub fn is_database_not_found(&self) -> bool {
        matches!(self, QueryError::Failed { reason, .. } if reason.contains("database not found"))
    }
}

/// Why points were not written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// Worth retrying later: unreachable, a 5xx, a database just created.
    #[error("{0}")]
    Retry(String),
    /// InfluxDB refused us, not the points (401, 403, a missing database this user may not
    /// create): the message says what to change; retrying helps once that is done.
    #[error("{0}")]
    Denied(String),
    /// The points themselves were refused: retrying cannot help.
    #[error("{0}")]
    Refused(String),
}

/// One row of a result: column name -> value, plus the tags of its series (`GROUP BY` tags).
pub type Row = Map<String, Value>;

/// The client of one database of one InfluxDB: writes, queries, creates it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    /// Where requests go, with credentials written in the URL unless `user` is set: never shown.
    target: String,
    /// The URL as it is shown, in [`Client::url`] and every error: credentials hidden.
    url: String,
    db: String,
    user: Option<(String, Option<String>)>,
    /// The unit of the times queries return: `ms`, or `ns` for [`Client::times_in_ns`].
    epoch: &'static str,
}

impl Client {
    /// A client for `args`; an empty URL is an error (set `--influx-url` or `INFLUX_URL`).
    pub fn new(args: &InfluxArgs) -> anyhow::Result<Client> {
        let url = args.url();
        anyhow::ensure!(
            !url.is_empty(),
            "no InfluxDB URL: set --influx-url or INFLUX_URL"
        );
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()?;
        let user = args
            .influx_user
            .clone()
            .map(|u| (u, args.password().map(str::to_owned)));
        // reqwest sends credentials written in the URL as an Authorization header before
        // `basic_auth`'s (InfluxDB reads the first): with INFLUX_USER set, they are left out.
        let target = match (&user, crate::credentials::split_userinfo(&url)) {
            (Some((name, _)), (clean, Some(_))) => {
                tracing::warn!(
                    url = %crate::redact_url(&url),
                    "INFLUX_USER is set: the credentials written in INFLUX_URL are not used, \
                     {name:?}'s are"
                );
                clean
            }
            _ => url.clone(),
        };
        Ok(Client {
            http,
            url: crate::redact_url(&url),
            target,
            db: args.influx_db.clone(),
            epoch: "ms",
            user,
        })
    }

    /// The same client (same connections, same credentials) for database `db`.
    pub fn with_db(&self, db: &str) -> Client {
        Client {
            db: db.to_owned(),
            ..self.clone()
        }
    }

    /// The user name requests are sent with: INFLUX_USER's, else the URL's, else none.
    fn user_name(&self) -> Option<String> {
        if let Some((name, _)) = &self.user {
            return Some(name.clone());
        }
        let (_, userinfo) = crate::credentials::split_userinfo(&self.target);
        userinfo.map(|u| u.split(':').next().unwrap_or_default().to_owned())
    }

    /// Why InfluxDB answered `status` (401 or 403) to a request of ours, with what to change;
    /// `None` for any other status. `needs` is the right the request needed.
    fn denied(&self, status: reqwest::StatusCode, text: &str, needs: &str) -> Option<String> {
        // InfluxDB's reason, without the statement it quotes: "requires READ on chocominer".
        let reason = serde_json::from_str::<Value>(text)
            .ok()
            .and_then(|json| json.get("error").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| text.to_owned());
        let said = snippet(&reason[reason.rfind("requires ").unwrap_or(0)..]);
        match (status, self.user_name()) {
            (reqwest::StatusCode::UNAUTHORIZED, None) => Some(format!(
                "InfluxDB at {} requires credentials (HTTP 401: {said}): set INFLUX_USER and \
                 INFLUX_PASSWORD_FILE (or INFLUX_PASSWORD)",
                self.url
            )),
            (reqwest::StatusCode::UNAUTHORIZED, Some(user)) => Some(format!(
                "InfluxDB at {} refused the credentials of user {user:?} (HTTP 401: {said}): \
                 check INFLUX_USER and INFLUX_PASSWORD_FILE (or INFLUX_PASSWORD)",
                self.url
            )),
            (reqwest::StatusCode::FORBIDDEN, user) => Some(format!(
                "InfluxDB at {} does not let user {:?} {needs} (HTTP 403: {said}): an \
                 administrator must grant it that right, or use a user that has it",
                self.url,
                user.unwrap_or_default()
            )),
            _ => None,
        }
    }

    /// The URL, fit to show: credentials written in it are hidden (`http://***@host:8086`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Queries give times in nanoseconds, as points are written, for tests that compare them.
    pub fn times_in_ns(mut self) -> Client {
        self.epoch = "ns";
        self
    }

    pub fn db(&self) -> &str {
        &self.db
    }

    /// Runs `statements` (joined with `;`, one request) and returns the rows of each, in order.
    /// Times are in milliseconds since the Unix epoch (see [`Client::times_in_ns`]).
    pub async fn query(&self, statements: &[String]) -> Result<Vec<Vec<Row>>, QueryError> {
        match self.send(statements).await {
            // InfluxDB 1.6 answers a request of several statements on a missing database with
            // just "not executed": ask again with one to learn why.
            Err(QueryError::Failed { reason, .. })
                if reason == "not executed" && statements.len() > 1 =>
            {
                self.send(&statements[..1]).await?;
                Err(self.failed(reason))
            }
            answer => answer,
        }
    }

    /// Writes `lines` of line protocol (nanosecond times); a missing database is created, to retry.
    pub async fn write(&self, lines: &[String]) -> Result<(), WriteError> {
        self.write_body(lines.join("\n")).await
    }

    /// Writes `body`: the lines [`write`](Self::write) takes, already joined.
    pub async fn write_body(&self, body: String) -> Result<(), WriteError> {
        let response = self
            .request(Method::POST, "write")
            .query(&[("db", self.db.as_str()), ("precision", "ns")])
            .body(body)
            .send()
            .await
            .map_err(|e| WriteError::Retry(error_chain(&e.without_url())))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        if status == reqwest::StatusCode::NOT_FOUND && text.contains("database not found") {
            return match self.create_database().await {
                Ok(()) => Err(WriteError::Retry(format!(
                    "database {} was missing: created it",
                    self.db
                ))),
                Err(WriteError::Denied(why)) => Err(WriteError::Denied(format!(
                    "database {:?} does not exist and this user may not create it: an \
                     administrator must create it and grant the user WRITE on it ({why})",
                    self.db
                ))),
                Err(other) => Err(other),
            };
        }
        if let Some(why) = self.denied(status, &text, &format!("write to {:?}", self.db)) {
            return Err(WriteError::Denied(why));
        }
        let why = format!("HTTP {status}: {}", text.trim());
        if status.is_client_error() {
            Err(WriteError::Refused(why))
        } else {
            Err(WriteError::Retry(why))
        }
    }

    /// Whether InfluxDB answers `GET /ping` with 204: it is up and takes requests.
    pub async fn ping(&self) -> bool {
        self.http
            .get(format!("{}/ping", self.target))
            .send()
            .await
            .is_ok_and(|response| response.status() == reqwest::StatusCode::NO_CONTENT)
    }

    /// Creates the database if it is missing; [`WriteError::Denied`] when this user may not.
    pub async fn create_database(&self) -> Result<(), WriteError> {
        let q = format!("CREATE DATABASE \"{}\"", self.db.replace('"', "\\\""));
        let response = self
            .request(Method::POST, "query")
            .query(&[("q", q)])
            .send()
            .await
            .map_err(|e| WriteError::Retry(error_chain(&e.without_url())))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if let Some(why) = self.denied(status, &text, "create databases") {
            return Err(WriteError::Denied(why));
        }
        // InfluxDB answers 200 even to a statement that failed, the error in its result.
        let error = serde_json::from_str::<Value>(&text).ok().and_then(|json| {
            json.pointer("/results/0/error")
                .or_else(|| json.get("error"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        match error {
            None if status.is_success() => Ok(()),
            error => Err(WriteError::Retry(format!(
                "creating database {}: HTTP {status}: {}",
                self.db,
                error.unwrap_or_else(|| snippet(&text))
            ))),
        }
    }

    /// A request to `path` of InfluxDB, with our credentials.
    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}/{path}", self.target));
        match &self.user {
            Some((user, password)) => request.basic_auth(user, password.as_ref()),
            None => request,
        }
    }

    async fn send(&self, statements: &[String]) -> Result<Vec<Vec<Row>>, QueryError> {
        let q = statements.join(";\n");
        let response = self
            .request(Method::GET, "query")
            .query(&[("db", self.db.as_str()), ("q", &q), ("epoch", self.epoch)])
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| self.unreachable(e))?;
        if let Some(why) = self.denied(status, &body, &format!("read {:?}", self.db)) {
            return Err(QueryError::Denied(why));
        }
        let json = serde_json::from_str::<Value>(&body).ok();
        if let Some(error) = json.as_ref().and_then(|json| json.get("error")?.as_str()) {
            return Err(self.failed(format!("HTTP {status}: {error}")));
        }
        if !status.is_success() {
            return Err(self.failed(format!("HTTP {status}: {}", snippet(&body))));
        }
        let not_influx = |what: &str| QueryError::NotInflux {
            url: self.url.clone(),
            reason: format!("HTTP {status}, {what}: {}", snippet(&body)),
        };
        let json = json.ok_or_else(|| not_influx("not JSON"))?;
        let results = json["results"]
            .as_array()
            .ok_or_else(|| not_influx("no \"results\""))?;
        // A missing database fails the whole request, with one result holding the error.
        if let Some(error) = results
            .iter()
            .find_map(|result| result.get("error").and_then(Value::as_str))
        {
            return Err(self.failed(error.to_owned()));
        }
        if results.len() != statements.len() {
            return Err(self.failed(format!(
                "{} results for {} statements",
                results.len(),
                statements.len()
            )));
        }
        Ok(results.iter().map(rows).collect())
    }

    fn unreachable(&self, e: reqwest::Error) -> QueryError {
        QueryError::Unreachable {
            url: self.url.clone(),
            reason: error_chain(&e.without_url()),
        }
    }

    fn failed(&self, reason: String) -> QueryError {
        QueryError::Failed {
            url: self.url.clone(),
            reason,
        }
    }
}

/// Flattens `series[*]` of one statement's result into rows.
fn rows(result: &Value) -> Vec<Row> {
    let mut rows = Vec::new();
    for series in result["series"].as_array().into_iter().flatten() {
        let list = |key: &str| series[key].as_array().into_iter().flatten();
        let columns: Vec<&str> = list("columns").filter_map(Value::as_str).collect();
        for value in list("values").filter_map(Value::as_array) {
            let mut row: Row = columns
                .iter()
                .map(|c| c.to_string())
                .zip(value.iter().cloned())
                .collect();
            for (tag, tag_value) in series["tags"].as_object().into_iter().flatten() {
                row.entry(tag.clone()).or_insert_with(|| tag_value.clone());
            }
            rows.push(row);
        }
    }
    rows
}

/// The last two distinct messages of an error's chain of causes, `tcp connect error:
/// Connection refused (os error 111)`: the generic wrappers above them say nothing more.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut messages: Vec<String> = Vec::new();
    for error in std::iter::successors(Some(e), |e| e.source()) {
        let message = error.to_string();
        // A wrapper may repeat its cause in its own message: keep the shorter, deeper one.
        if let Some(last) = messages.last_mut()
            && last.contains(&message)
        {
            *last = message;
        } else {
            messages.push(message);
        }
    }
    let keep = messages.len().saturating_sub(2);
    messages[keep..].join(": ")
}

/// The start of a response body, on one line, for an error message.
fn snippet(body: &str) -> String {
    let line = body.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None if line.is_empty() => "(empty body)".to_owned(),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flattens_series_with_tags() {
        let result = json!({
            "statement_id": 0,
            "series": [
                {"name": "worker", "tags": {"instance": "w1"}, "columns": ["time", "count"],
                 "values": [[1000, 3]]},
                {"name": "worker", "tags": {"instance": "w2"}, "columns": ["time", "count"],
                 "values": [[1000, 2], [2000, 1]]}
            ]
        });
        let rows = rows(&result);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0]["instance"], "w1");
        assert_eq!(rows[2]["count"], 1);
        assert!(super::rows(&json!({"statement_id": 0})).is_empty());
    }

    #[derive(Debug)]
    struct Chain(&'static str, Option<Box<Chain>>);

    impl std::fmt::Display for Chain {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Chain {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn error_chains_keep_the_last_two_causes() {
        let refused = Chain("connection refused", None);
        let tcp = Chain("tcp connect error", Some(Box::new(refused)));
        let client = Chain("client error (Connect)", Some(Box::new(tcp)));
        let top = Chain("error sending request", Some(Box::new(client)));
        assert_eq!(error_chain(&top), "tcp connect error: connection refused");
        let timeout = Chain("timed out", None);
        let top = Chain("request failed: timed out", Some(Box::new(timeout)));
        assert_eq!(error_chain(&top), "timed out");
        assert_eq!(error_chain(&Chain("alone", None)), "alone");
    }

    #[test]
    fn snippets_are_short_single_lines() {
        assert_eq!(snippet("a\n  b"), "a b");
        assert_eq!(snippet(""), "(empty body)");
        assert_eq!(snippet(&"x".repeat(500)).chars().count(), 201);
    }
}
