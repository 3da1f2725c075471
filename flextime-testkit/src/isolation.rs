//! Per-test isolation on shared servers.
//!
//! Every test shares one server per peer and nextest runs tests in parallel
//! (one process per test), so a test never uses a fixed name: it takes
//! [`unique_name`] and keeps all of its state under it.
//!
//! | peer | what a test owns | how it cleans up |
//! |---|---|---|
//! | PostgreSQL | a schema `CREATE SCHEMA {name}` in database `test`, with `SET search_path TO {name}` on each connection (a database per test only when the test needs one: `CREATE DATABASE` is slow) | `DROP SCHEMA {name} CASCADE` |
//! | MariaDB / MySQL | a database `CREATE DATABASE {name}` (a schema *is* a database there) | `DROP DATABASE {name}` |
//! | Redis | keys under the prefix `{name}:`; never `FLUSHDB`/`FLUSHALL` | `SCAN MATCH {name}:*` then `DEL`, or set a TTL on every key |
//! | RabbitMQ | queues and exchanges named `{name}` / `{name}_dlx` on vhost `/` | delete them, or declare them auto-delete |
//! | MQTT | topics under `{name}/...`, client id `{name}` (a shared client id kicks the other client off) | nothing (no retained messages, or clear them) |
//! | NATS JetStream | a stream `{name}` with subjects `{name}.>`, consumers `{name}_...` | delete the stream |
//! | Kafka (tansu) | a topic `{name}` made with [`crate::create_kafka_topic`] (tansu does not auto-create), consumer group `{name}` | delete the topic; the broker is in-memory anyway |
//! | MongoDB | a database `{name}` | `dropDatabase` |
//! | CalDAV | the principal `/{name}/` (any user name owns its own collection, no password) and calendars under it | `DELETE /{name}/` |
//! | SMTP | recipients `{name}@example.test`; find the messages in the Maildir ([`crate::smtp_maildir`]) by that address | remove the test's files from `new/` |
//! | Prism | nothing: mocks are stateless | nothing |
//!
//! Names are lowercase ASCII letters, digits and `_`, start with a letter and
//! fit in 63 bytes, so one name works as a SQL identifier (PostgreSQL's limit
//! is 63, MySQL's 64), a Redis key prefix, a RabbitMQ queue, a NATS stream
//! (no `.`, `*`, `>` or spaces), a Kafka topic and a MongoDB database name.

use crate::next_sequence;

/// The longest name [`unique_name`] returns (PostgreSQL's identifier limit).
pub const MAX_NAME_LEN: usize = 63;

/// The longest part of the prefix that is kept.
const MAX_PREFIX_LEN: usize = 30;

/// A name no other test (in this process or any other) uses:
/// `{prefix}_{pid}_{sequence}_{random}`, lowercase `a-z0-9_`, starting with
/// a letter, at most [`MAX_NAME_LEN`] bytes.
///
/// The prefix is lowercased, anything outside `a-z0-9_` becomes `_`, it is
/// cut to 30 bytes and gets a leading `t` if it does not start with a letter.
///
/// ```
/// let a = flextime_testkit::unique_name("Orders-Sync");
/// let b = flextime_testkit::unique_name("Orders-Sync");
/// assert_ne!(a, b);
/// assert!(a.starts_with("orders_sync_"));
/// assert!(a.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'));
/// ```
pub fn unique_name(prefix: &str) -> String {
    let mut clean: String = prefix
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '_'
            }
        })
        .take(MAX_PREFIX_LEN)
        .collect();
    if !clean.starts_with(|c: char| c.is_ascii_lowercase()) {
        clean.insert(0, 't');
    }
    let random = to_base36(rand::random::<u64>() & 0xff_ffff_ffff); // 40 bits, <= 8 chars
    // The sequence wraps at 10^9 so the name always fits in 63 bytes.
    let sequence = next_sequence() % 1_000_000_000;
    let name = format!("{clean}_{}_{sequence}_{random}", std::process::id());
    debug_assert!(name.len() <= MAX_NAME_LEN, "{name}");
    name
}

fn to_base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[usize::try_from(n % 36).unwrap_or(0)]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn valid(name: &str) -> bool {
        name.len() <= MAX_NAME_LEN
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
    }

    #[test]
    fn names_are_unique_and_valid() {
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            let name = unique_name("queue");
            assert!(valid(&name), "{name}");
            assert!(seen.insert(name));
        }
    }

    #[test]
    fn names_are_unique_across_threads() {
        let handles: Vec<_> = (0..8)
            .map(|_| std::thread::spawn(|| (0..500).map(|_| unique_name("t")).collect::<Vec<_>>()))
            .collect();
        let mut seen = HashSet::new();
        for handle in handles {
            for name in handle.join().unwrap() {
                assert!(seen.insert(name));
            }
        }
    }

    #[test]
    fn prefixes_are_cleaned() {
        for prefix in [
            "",
            "9lives",
            "Über-Test.x*>y",
            "__",
            &"x".repeat(200),
            "a b\tc\n",
        ] {
            let name = unique_name(prefix);
            assert!(valid(&name), "{prefix:?} -> {name}");
        }
        assert!(unique_name("9lives").starts_with("t9lives_"));
        assert!(unique_name("Orders.Sync").starts_with("orders_sync_"));
        assert!(unique_name(&"x".repeat(200)).starts_with(&format!("{}_", "x".repeat(30))));
    }

    #[test]
    fn longest_name_fits() {
        // 30 prefix + pid (<= 10 digits on 64-bit Linux: pid_max <= 2^22) + u64 counter + 8 random
        let name = format!(
            "{}_{}_{}_{}",
            "x".repeat(30),
            u32::MAX,
            999_999_999,
            to_base36(0xff_ffff_ffff)
        );
        assert!(name.len() <= MAX_NAME_LEN, "{} {name}", name.len());
    }

    #[test]
    fn base36() {
        assert_eq!(to_base36(0), "0");
        assert_eq!(to_base36(35), "z");
        assert_eq!(to_base36(36), "10");
    }
}
