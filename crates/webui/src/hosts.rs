//! The dashboard's defence against DNS rebinding: a page of another site whose name resolves to
//! the dashboard's address could read it, but its requests still name the other site in their
//! `Host`. So only an IP address, `localhost` (and `*.localhost`) or a name allowed by
//! `--allowed-hosts` is answered, with any port; anything else gets `421 Misdirected Request`.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The names the dashboard answers to beyond IP addresses and localhost.
#[derive(Debug, Default)]
pub struct AllowedHosts {
    /// Lowercase, without a trailing dot; `.example.org` stands for the names under it.
    names: Vec<String>,
    /// Whether a refusal was logged: the first one is, as a misconfiguration shows that way.
    warned: AtomicBool,
}

impl AllowedHosts {
    /// `names` as given (blank ones ignored: an empty variable allows no name).
    pub fn new(names: &[String]) -> AllowedHosts {
        AllowedHosts {
            names: names
                .iter()
                .map(|name| normal(name.trim()))
                .filter(|name| !name.is_empty() && name != ".")
                .collect(),
            warned: AtomicBool::new(false),
        }
    }

    /// Whether a request naming `authority` (a `Host` header: `name`, `name:port`, `[v6]:port`)
    /// is answered.
    pub fn allows(&self, authority: &str) -> bool {
        let Some(host) = host_of(authority) else {
            return false;
        };
        if host.parse::<IpAddr>().is_ok() {
            return true;
        }
        let host = normal(host);
        host == "localhost"
            || host.ends_with(".localhost")
            || self.names.iter().any(|name| match name.strip_prefix('.') {
                Some(domain) => host == domain || host.ends_with(name.as_str()),
                None => host == *name,
            })
    }
}

/// Checks a name given to `--allowed-hosts`: a host name (letters, digits, '-', '.', '_'),
/// optionally starting with '.' for every name under it; no port, no scheme.
pub fn parse_allowed_host(text: &str) -> Result<String, String> {
    let name = text.trim();
    let valid = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    valid.then(|| name.to_owned()).ok_or_else(|| {
        "expected host names separated by commas, like dashboard.example.org or .example.org \
         (every name under it); no scheme, no port"
            .to_owned()
    })
}

/// The host of an authority, without its port or the brackets of an IPv6 address; `None` when
/// it is not one.
fn host_of(authority: &str) -> Option<&str> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return (after.is_empty() || is_port(after.strip_prefix(':')?)).then_some(host);
    }
    match authority.split_once(':') {
        Some((host, port)) if is_port(port) && !host.is_empty() => Some(host),
        Some(_) => None,
        None if authority.is_empty() => None,
        None => Some(authority),
    }
}

fn is_port(text: &str) -> bool {
    !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit())
}

/// A name as compared: lowercase, without the trailing dot of a fully qualified name.
fn normal(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// The middleware: passes the request on when its `Host` (and the authority of an absolute
/// request target, if any) is allowed; answers 421 otherwise, or 400 without a `Host`.
pub async fn check(
    State(allowed): State<Arc<AllowedHosts>>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let target = request.uri().authority().map(|a| a.as_str().to_owned());
    let named: Vec<String> = [host, target].into_iter().flatten().collect();
    if named.is_empty() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "no Host header: name the dashboard's host",
        );
    }
    if let Some(bad) = named.iter().find(|authority| !allowed.allows(authority)) {
        let shown: String = bad.chars().take(100).collect();
        if !allowed.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                host = ?shown,
                "refused a request naming a host not allowed (DNS rebinding?); if it is this \
                 dashboard's own name, add it to WEBUI_ALLOWED_HOSTS (--allowed-hosts)"
            );
        }
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            &format!(
                "this dashboard does not answer to host {shown:?}: add it to \
                 WEBUI_ALLOWED_HOSTS (--allowed-hosts) if it is its own name"
            ),
        );
    }
    next.run(request).await
}

fn refuse(status: StatusCode, line: &str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        format!("{line}\n"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_localhost_are_answered_with_any_port() {
        let none = AllowedHosts::new(&[]);
        for host in [
            "127.0.0.1:8000",
            "127.0.0.1",
            "localhost:8000",
            "LOCALHOST:28000",
            "localhost.:1",
            "dash.localhost:8000",
            "[::1]:8000",
            "[::1]",
            "10.1.2.3:8000",
            "[fe80::1]:80",
        ] {
            assert!(none.allows(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:8000",
            "localhost.evil.example:8000",
            "127.0.0.1.nip.io:8000",
            "",
            ":8000",
            "localhost:80:80",
            "[::1]x",
            "::1",
            "localhost:http",
        ] {
            assert!(!none.allows(host), "{host}");
        }
    }

    #[test]
    fn names_given_are_answered() {
        let names = ["Dashboard.Example.org.", " .class.test ", ""].map(String::from);
        let allowed = AllowedHosts::new(&names);
        for host in [
            "dashboard.example.org",
            "dashboard.example.org:443",
            "DASHBOARD.example.org.",
            "class.test",
            "webui.class.test:8000",
        ] {
            assert!(allowed.allows(host), "{host}");
        }
        for host in ["example.org", "x.dashboard.example.org", "evilclass.test"] {
            assert!(!allowed.allows(host), "{host}");
        }
        assert!(parse_allowed_host("dash-1.example.org").is_ok());
        assert!(parse_allowed_host("").is_ok());
        for bad in ["http://x", "x:8000", "a b", "*"] {
            assert!(parse_allowed_host(bad).is_err(), "{bad}");
        }
    }
}
