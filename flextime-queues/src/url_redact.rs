//! Keeping passwords in broker URLs out of logs and errors.

/// `url` with its password (if any) replaced by `***`; input that does not
/// parse as a URL is returned with everything between `://` and `@` hidden.
///
/// ```
/// use flextime_queues::redact_url;
/// assert_eq!(redact_url("amqp://guest:secret@host:5672/%2f"), "amqp://guest:***@host:5672/%2f");
/// assert_eq!(redact_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
/// ```
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() && parsed.set_password(Some("***")).is_ok() {
                return parsed.to_string();
            }
            if parsed.password().is_none() {
                return url.to_owned();
            }
            fallback(url)
        }
        Err(_) => fallback(url),
    }
}

fn fallback(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(start), Some(at)) if at > start => format!("{}***{}", &url[..start + 3], &url[at..]),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_passwords() {
        assert_eq!(redact_url("redis://:pw@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(redact_url("nats://u:p@h"), "nats://u:***@h");
        assert_eq!(redact_url("not a url"), "not a url");
        assert_eq!(redact_url("x://a:b@c d"), "x://***@c d");
    }
}
