//! Credentials written inside URLs (`http://user:pass@influxdb:8086`, `nats://token@nats:4222`):
//! split out of a URL to connect with ([`split_userinfo`]; NATS's client ignores them, too), and
//! hidden ([`redact`]) wherever a URL is shown: logs, errors, `chocominer status`, the dashboard.

/// What stands for the credentials in a shown URL.
pub const HIDDEN: &str = "***";

/// One URL without the credentials written in it, and those (`user:pass` or `token`).
pub fn split_userinfo(url: &str) -> (String, Option<&str>) {
    match userinfo(url) {
        Some(at) => (
            format!("{}{}", &url[..at.start], &url[at.end + 1..]),
            Some(&url[at]),
        ),
        None => (url.to_owned(), None),
    }
}

/// `urls` (one URL, or several separated by commas) fit to show: the credentials written in any
/// of them replaced by [`HIDDEN`] (`http://***@influxdb:8086`). In doubt it hides more: a
/// password may hold a comma, so a comma starts another URL only when a `scheme://` follows it
/// (`nats://n1,user:pw@n2` is shown `nats://***@n2`).
pub fn redact(urls: &str) -> String {
    let mut begins = vec![0];
    begins.extend(
        urls.match_indices(',')
            .map(|(comma, _)| comma + 1)
            .filter(|&next| scheme_end(&urls[next..]).is_some()),
    );
    begins.push(urls.len());
    let hide = |url: &str| match userinfo(url) {
        Some(at) => format!("{}{HIDDEN}{}", &url[..at.start], &url[at.end..]),
        None => url.to_owned(),
    };
    begins.windows(2).map(|w| hide(&urls[w[0]..w[1]])).collect()
}

/// Where the credentials written in `url` are: from just after its `scheme://` (or the start)
/// to its last `@`, as a password may hold `@`, `/` or `://`.
fn userinfo(url: &str) -> Option<std::ops::Range<usize>> {
    let from = scheme_end(url).unwrap_or(0);
    url[from..].rfind('@').map(|at| from..from + at)
}

/// Where the credentials of `url` would begin: after its `scheme://` (blanks before it allowed).
fn scheme_end(url: &str) -> Option<usize> {
    let trimmed = url.trim_start();
    let sep = trimmed.find("://")?;
    let scheme = &trimmed[..sep];
    let is_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    is_scheme.then_some(url.len() - trimmed.len() + sep + 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_split_out_of_a_url() {
        assert_eq!(
            split_userinfo("http://alice:s3cret@influxdb:8086"),
            ("http://influxdb:8086".to_owned(), Some("alice:s3cret"))
        );
        assert_eq!(
            split_userinfo("tls://tok@host:4443"),
            ("tls://host:4443".to_owned(), Some("tok"))
        );
        assert_eq!(
            split_userinfo("a:p@ss/w@rd@host:4222"),
            ("host:4222".to_owned(), Some("a:p@ss/w@rd"))
        );
        assert_eq!(
            split_userinfo("http://127.0.0.1:8086"),
            ("http://127.0.0.1:8086".to_owned(), None)
        );
    }

    #[test]
    fn shown_urls_hold_no_credentials() {
        for (urls, shown) in [
            ("http://127.0.0.1:8086", "http://127.0.0.1:8086"),
            ("", ""),
            (
                "http://alice:s3cret@influxdb:8086",
                "http://***@influxdb:8086",
            ),
            ("http://alice@influxdb:8086/", "http://***@influxdb:8086/"),
            ("nats://tok@nats:4222", "nats://***@nats:4222"),
            ("user:pw@nats:4222", "***@nats:4222"),
            (
                "nats://a:b@n1:4222, nats://n2:4222,nats://c:d@n3:4222",
                "nats://***@n1:4222, nats://n2:4222,nats://***@n3:4222",
            ),
            // A password holding '@', '/', ',' or "://" is hidden whole.
            ("http://u:p@s/s,w@host:8086", "http://***@host:8086"),
            ("nats://u:pa,ss@host", "nats://***@host"),
            ("http://u:x://y@host", "http://***@host"),
            // In doubt, more is hidden.
            ("nats://n1,user:pw@n2", "nats://***@n2"),
        ] {
            assert_eq!(redact(urls), shown, "{urls}");
        }
    }
}
