//! # flextime-testkit
//!
//! Dev-only helpers for the Flextime integration SDK's tests against real
//! peers (PostgreSQL, MariaDB, Redis, RabbitMQ, Mosquitto, NATS, Kafka via
//! tansu, MongoDB wire via secantusdb, CalDAV via Radicale, SMTP via aiosmtpd
//! and Stoplight Prism mocks of vendor APIs).
//!
//! - [`Peer`] names each peer and the environment variable holding its
//!   address; `scripts/services` starts the peers and writes those variables
//!   to `.flextime-test.env`.
//! - [`require`] / [`require_peer!`] give a test its peer's address, or skip
//!   the test with a `SKIPPED ...` line on stderr when the variable is unset,
//!   or fail it when `FLEXTIME_REQUIRE_SERVICES=1` (set by CI, so that CI can
//!   never pass by skipping).
//! - [`unique_name`] and the conventions in [`isolation`] let tests share one
//!   server and still run in parallel without seeing each other's state.
//!
//! ```
//! // in a #[test] function:
//! fn stores_a_row() {
//!     let url = flextime_testkit::require_peer!(Postgres);
//!     let schema = flextime_testkit::unique_name("stores_a_row");
//!     // connect to `url`, CREATE SCHEMA {schema}, work inside it, DROP it.
//! #   let _ = (url, schema);
//! }
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod isolation;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "prism-form")]
pub mod prism_form;
pub mod server;

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

pub use isolation::unique_name;

/// The variable that turns every skip into a failure (`1`, `true` or `yes`).
pub const REQUIRE_SERVICES_VAR: &str = "FLEXTIME_REQUIRE_SERVICES";

/// The variable holding the path of the `tansu` binary, for creating Kafka
/// topics (tansu does not create topics on first use).
pub const TANSU_BIN_VAR: &str = "FLEXTIME_TEST_TANSU_BIN";

/// The variable holding the Maildir that the SMTP peer delivers into.
pub const SMTP_MAILDIR_VAR: &str = "FLEXTIME_TEST_SMTP_MAILDIR";

/// A vendor HTTP API served by a Stoplight Prism mock from the vendor's own
/// OpenAPI document (see `shared/vendor-specs/README.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Vendor {
    /// Stripe (slimmed spec3 of 2023-09-12; send `Authorization: Bearer`).
    Stripe,
    /// Twilio API v2010 (HTTP Basic auth).
    Twilio,
    /// SendGrid Mail v3 (Bearer auth).
    Sendgrid,
    /// Google Calendar v3 (no `/calendar/v3` prefix: use Prism's root).
    GoogleCalendar,
    /// Notion (2025-09-03 data sources); response schemas are bare objects.
    Notion,
    /// Mixpanel ingestion (derived copy answering `/track` with text `1`).
    Mixpanel,
    /// Postmark server API.
    Postmark,
}

impl Vendor {
    /// Every vendor with a Prism mock.
    pub const ALL: [Vendor; 7] = [
        Vendor::Stripe,
        Vendor::Twilio,
        Vendor::Sendgrid,
        Vendor::GoogleCalendar,
        Vendor::Notion,
        Vendor::Mixpanel,
        Vendor::Postmark,
    ];

    /// The vendor's short name as `scripts/services` spells it
    /// (`prism-<name>`), e.g. `google-calendar`.
    pub fn name(self) -> &'static str {
        match self {
            Vendor::Stripe => "stripe",
            Vendor::Twilio => "twilio",
            Vendor::Sendgrid => "sendgrid",
            Vendor::GoogleCalendar => "google-calendar",
            Vendor::Notion => "notion",
            Vendor::Mixpanel => "mixpanel",
            Vendor::Postmark => "postmark",
        }
    }
}

/// A real server that tests talk to, and where its address comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Peer {
    /// PostgreSQL (`postgres://root@127.0.0.1:5432/test`).
    Postgres,
    /// MariaDB / MySQL (`mysql://root@127.0.0.1:3306/test`).
    Mysql,
    /// Redis (`redis://127.0.0.1:6379`).
    Redis,
    /// RabbitMQ over AMQP 0-9-1 (`amqp://guest:guest@127.0.0.1:5672/%2f`).
    Amqp,
    /// Mosquitto MQTT broker (`mqtt://127.0.0.1:1883`).
    Mqtt,
    /// NATS with JetStream (`nats://127.0.0.1:4222`).
    Nats,
    /// Kafka protocol, served by tansu (`kafka://127.0.0.1:9092`).
    Kafka,
    /// MongoDB wire protocol, served by secantusdb (`mongodb://127.0.0.1:27017`).
    Mongodb,
    /// CalDAV, served by Radicale (`http://127.0.0.1:5232`).
    Caldav,
    /// SMTP, served by aiosmtpd into a Maildir (`smtp://127.0.0.1:2525`).
    Smtp,
    /// A Prism mock of a vendor's HTTP API.
    Prism(Vendor),
}

impl Peer {
    /// Every peer, in the order `scripts/services` reports them.
    pub const ALL: [Peer; 17] = [
        Peer::Postgres,
        Peer::Mysql,
        Peer::Redis,
        Peer::Amqp,
        Peer::Mqtt,
        Peer::Nats,
        Peer::Kafka,
        Peer::Mongodb,
        Peer::Caldav,
        Peer::Smtp,
        Peer::Prism(Vendor::Stripe),
        Peer::Prism(Vendor::Twilio),
        Peer::Prism(Vendor::Sendgrid),
        Peer::Prism(Vendor::GoogleCalendar),
        Peer::Prism(Vendor::Notion),
        Peer::Prism(Vendor::Mixpanel),
        Peer::Prism(Vendor::Postmark),
    ];

    /// The environment variable holding the peer's URL, e.g.
    /// `FLEXTIME_TEST_POSTGRES_URL` or `FLEXTIME_TEST_PRISM_STRIPE_URL`.
    ///
    /// ```
    /// use flextime_testkit::{Peer, Vendor};
    /// assert_eq!(Peer::Redis.env_var(), "FLEXTIME_TEST_REDIS_URL");
    /// assert_eq!(
    ///     Peer::Prism(Vendor::GoogleCalendar).env_var(),
    ///     "FLEXTIME_TEST_PRISM_GOOGLE_CALENDAR_URL"
    /// );
    /// ```
    pub fn env_var(self) -> &'static str {
        match self {
            Peer::Postgres => "FLEXTIME_TEST_POSTGRES_URL",
            Peer::Mysql => "FLEXTIME_TEST_MYSQL_URL",
            Peer::Redis => "FLEXTIME_TEST_REDIS_URL",
            Peer::Amqp => "FLEXTIME_TEST_AMQP_URL",
            Peer::Mqtt => "FLEXTIME_TEST_MQTT_URL",
            Peer::Nats => "FLEXTIME_TEST_NATS_URL",
            Peer::Kafka => "FLEXTIME_TEST_KAFKA_URL",
            Peer::Mongodb => "FLEXTIME_TEST_MONGODB_URL",
            Peer::Caldav => "FLEXTIME_TEST_CALDAV_URL",
            Peer::Smtp => "FLEXTIME_TEST_SMTP_URL",
            Peer::Prism(Vendor::Stripe) => "FLEXTIME_TEST_PRISM_STRIPE_URL",
            Peer::Prism(Vendor::Twilio) => "FLEXTIME_TEST_PRISM_TWILIO_URL",
            Peer::Prism(Vendor::Sendgrid) => "FLEXTIME_TEST_PRISM_SENDGRID_URL",
            Peer::Prism(Vendor::GoogleCalendar) => "FLEXTIME_TEST_PRISM_GOOGLE_CALENDAR_URL",
            Peer::Prism(Vendor::Notion) => "FLEXTIME_TEST_PRISM_NOTION_URL",
            Peer::Prism(Vendor::Mixpanel) => "FLEXTIME_TEST_PRISM_MIXPANEL_URL",
            Peer::Prism(Vendor::Postmark) => "FLEXTIME_TEST_PRISM_POSTMARK_URL",
        }
    }

    /// The peer's name as `scripts/services` accepts it (`postgres`,
    /// `kafka`, `prism-stripe`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Peer::Postgres => "postgres",
            Peer::Mysql => "mysql",
            Peer::Redis => "redis",
            Peer::Amqp => "amqp",
            Peer::Mqtt => "mqtt",
            Peer::Nats => "nats",
            Peer::Kafka => "kafka",
            Peer::Mongodb => "mongodb",
            Peer::Caldav => "caldav",
            Peer::Smtp => "smtp",
            Peer::Prism(Vendor::Stripe) => "prism-stripe",
            Peer::Prism(Vendor::Twilio) => "prism-twilio",
            Peer::Prism(Vendor::Sendgrid) => "prism-sendgrid",
            Peer::Prism(Vendor::GoogleCalendar) => "prism-google-calendar",
            Peer::Prism(Vendor::Notion) => "prism-notion",
            Peer::Prism(Vendor::Mixpanel) => "prism-mixpanel",
            Peer::Prism(Vendor::Postmark) => "prism-postmark",
        }
    }

    /// The TCP port the peer's protocol uses when its URL names none.
    pub fn default_port(self) -> u16 {
        match self {
            Peer::Postgres => 5432,
            Peer::Mysql => 3306,
            Peer::Redis => 6379,
            Peer::Amqp => 5672,
            Peer::Mqtt => 1883,
            Peer::Nats => 4222,
            Peer::Kafka => 9092,
            Peer::Mongodb => 27017,
            Peer::Caldav | Peer::Prism(_) => 80,
            Peer::Smtp => 25,
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Reads a variable from the process environment; empty counts as unset.
fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The peer's URL from its `FLEXTIME_TEST_*_URL` variable, or `None` when
/// the variable is unset or empty.
pub fn peer_url(peer: Peer) -> Option<String> {
    process_env(peer.env_var())
}

/// Whether `FLEXTIME_REQUIRE_SERVICES` asks for every peer to be present.
pub fn services_required() -> bool {
    is_truthy(process_env(REQUIRE_SERVICES_VAR).as_deref())
}

fn is_truthy(value: Option<&str>) -> bool {
    value.is_some_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

/// What a test should do about a peer: the outcome of [`decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The peer's address is known: run the test against it.
    Run(String),
    /// The address is unset and services are optional: skip, saying this.
    Skip(String),
    /// The address is unset but services are required: fail, saying this.
    Fail(String),
}

/// Decides whether `test` runs against `peer`, with `lookup` standing for
/// the environment (so the logic can be tested without touching it).
///
/// ```
/// use flextime_testkit::{decide, Decision, Peer};
/// let env = |name: &str| (name == "FLEXTIME_TEST_REDIS_URL").then(|| "redis://x".to_owned());
/// assert_eq!(decide(Peer::Redis, "t", env), Decision::Run("redis://x".into()));
/// assert!(matches!(decide(Peer::Nats, "t", env), Decision::Skip(_)));
/// ```
pub fn decide(peer: Peer, test: &str, lookup: impl Fn(&str) -> Option<String>) -> Decision {
    decide_var(peer.env_var(), test, lookup)
}

/// [`decide`] for any variable a test needs (a peer URL, a tool's path).
pub fn decide_var(var: &str, test: &str, lookup: impl Fn(&str) -> Option<String>) -> Decision {
    if let Some(url) = lookup(var).filter(|v| !v.trim().is_empty()) {
        return Decision::Run(url);
    }
    if is_truthy(lookup(REQUIRE_SERVICES_VAR).as_deref()) {
        Decision::Fail(format!(
            "{test}: {var} is not set and {REQUIRE_SERVICES_VAR}=1 forbids skipping \
             (run scripts/services, then source .flextime-test.env)"
        ))
    } else {
        Decision::Skip(format!(
            "SKIPPED {test}: {var} is not set (run scripts/services)"
        ))
    }
}

/// [`require`] with an injected environment lookup: prints the skip line to
/// stderr and returns `None`, or panics when services are required.
#[track_caller]
pub fn require_in(
    peer: Peer,
    test: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    match decide(peer, test, lookup) {
        Decision::Run(url) => Some(url),
        Decision::Skip(message) => {
            eprintln!("{message}");
            None
        }
        Decision::Fail(message) => panic!("{message}"),
    }
}

/// The peer's URL for `test`, or `None` (after printing
/// `SKIPPED <test>: FLEXTIME_TEST_X_URL is not set (run scripts/services)` to
/// stderr) so the test can return early.
///
/// # Panics
///
/// When the URL is unset and `FLEXTIME_REQUIRE_SERVICES=1`.
///
/// ```no_run
/// use flextime_testkit::{require, Peer};
/// let Some(url) = require(Peer::Redis, "my_test") else { return };
/// # let _ = url;
/// ```
#[track_caller]
pub fn require(peer: Peer, test: &str) -> Option<String> {
    require_in(peer, test, process_env)
}

/// The variable naming the Python interpreter (a virtualenv made by
/// `scripts/services`) that has the foreign clients and provider SDKs the
/// interop tests run: standardwebhooks, slack_sdk, twilio, stripe, ...
pub const PYTHON_VAR: &str = "FLEXTIME_TEST_PYTHON";

/// The interop tests' Python interpreter, or `None` after printing the skip
/// line (panics instead when services are required), like [`require`].
#[track_caller]
pub fn require_python(test: &str) -> Option<PathBuf> {
    match decide_var(PYTHON_VAR, test, process_env) {
        Decision::Run(path) => Some(PathBuf::from(path)),
        Decision::Skip(message) => {
            eprintln!("{message}");
            None
        }
        Decision::Fail(message) => panic!("{message}"),
    }
}

/// The name of the running test: libtest names each test's thread after the
/// test; `fallback` (usually `module_path!()`) is used elsewhere.
pub fn current_test_name(fallback: &str) -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => name.to_owned(),
        _ => fallback.to_owned(),
    }
}

/// Gets a peer's URL in a test, or returns from the test when it must skip
/// (panicking instead when `FLEXTIME_REQUIRE_SERVICES=1`).
///
/// - `require_peer!(Postgres)`, `require_peer!(Prism(Stripe))`: return `()`.
/// - `require_peer!(Postgres, Ok(()))`: return that value instead (for tests
///   that return a `Result`).
/// - `require_peer!(expr = peer_value)`: any expression of type [`Peer`].
///
/// ```
/// fn my_test() {
///     let url: String = flextime_testkit::require_peer!(Redis);
///     let stripe = flextime_testkit::require_peer!(Prism(Stripe));
/// #   let _ = (url, stripe);
/// }
/// ```
#[macro_export]
macro_rules! require_peer {
    (expr = $peer:expr, $ret:expr) => {
        match $crate::require($peer, &$crate::current_test_name(module_path!())) {
            ::std::option::Option::Some(url) => url,
            ::std::option::Option::None => return $ret,
        }
    };
    (expr = $peer:expr) => {
        $crate::require_peer!(expr = $peer, ())
    };
    (Prism($vendor:ident), $ret:expr) => {
        $crate::require_peer!(expr = $crate::Peer::Prism($crate::Vendor::$vendor), $ret)
    };
    (Prism($vendor:ident)) => {
        $crate::require_peer!(expr = $crate::Peer::Prism($crate::Vendor::$vendor), ())
    };
    ($peer:ident, $ret:expr) => {
        $crate::require_peer!(expr = $crate::Peer::$peer, $ret)
    };
    ($peer:ident) => {
        $crate::require_peer!(expr = $crate::Peer::$peer, ())
    };
}

/// Host and port of a peer URL (`scheme://[user[:pass]@]host[:port][/...]`),
/// with `default_port` when the URL names none. IPv6 hosts keep no brackets.
///
/// ```
/// use flextime_testkit::host_port;
/// assert_eq!(
///     host_port("amqp://guest:guest@127.0.0.1:5672/%2f", 1),
///     Some(("127.0.0.1".to_owned(), 5672))
/// );
/// assert_eq!(host_port("http://[::1]/x", 80), Some(("::1".to_owned(), 80)));
/// ```
pub fn host_port(url: &str, default_port: u16) -> Option<(String, u16)> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default_port,
    };
    Some((host.to_owned(), port))
}

/// `host:port` of a peer's URL, for `TcpStream::connect`.
pub fn peer_socket_addr(peer: Peer, url: &str) -> Option<String> {
    let (host, port) = host_port(url, peer.default_port())?;
    Some(if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    })
}

/// Path of the `tansu` binary recorded by `scripts/services`
/// (`FLEXTIME_TEST_TANSU_BIN`), if any.
pub fn tansu_bin() -> Option<PathBuf> {
    process_env(TANSU_BIN_VAR).map(PathBuf::from)
}

/// The Maildir that the SMTP peer writes each message into
/// (`FLEXTIME_TEST_SMTP_MAILDIR`), if recorded.
pub fn smtp_maildir() -> Option<PathBuf> {
    process_env(SMTP_MAILDIR_VAR).map(PathBuf::from)
}

/// Creates a Kafka topic on the tansu broker at `kafka_url` with the tansu
/// binary from [`tansu_bin`] (tansu does not create topics on first use).
///
/// ```no_run
/// let url = flextime_testkit::require_peer!(Kafka);
/// let topic = flextime_testkit::unique_name("orders");
/// flextime_testkit::create_kafka_topic(&url, &topic, 3).unwrap();
/// ```
pub fn create_kafka_topic(kafka_url: &str, topic: &str, partitions: u32) -> std::io::Result<()> {
    use std::io::{Error, ErrorKind};
    let bin = tansu_bin().ok_or_else(|| {
        Error::new(
            ErrorKind::NotFound,
            format!("{TANSU_BIN_VAR} is not set (run scripts/services)"),
        )
    })?;
    let addr = peer_socket_addr(Peer::Kafka, kafka_url).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("not a host:port URL: {kafka_url}"),
        )
    })?;
    let output = std::process::Command::new(&bin)
        .args([
            "topic",
            "create",
            topic,
            "--partitions",
            &partitions.to_string(),
        ])
        .args(["--broker", &format!("tcp://{addr}")])
        .output()?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::other(format!(
            "{} topic create {topic} failed ({}): {}",
            bin.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A number unique within this process (starting at 1), for test names.
pub fn next_sequence() -> u64 {
    COUNTER.fetch_add(1, Ordering::Relaxed) + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name: &str| map.get(name).cloned()
    }

    #[test]
    fn set_url_runs() {
        let lookup = env(&[(
            "FLEXTIME_TEST_POSTGRES_URL",
            "postgres://root@127.0.0.1:5432/test",
        )]);
        assert_eq!(
            decide(Peer::Postgres, "t", &lookup),
            Decision::Run("postgres://root@127.0.0.1:5432/test".into())
        );
    }

    #[test]
    fn set_url_runs_even_when_required() {
        let lookup = env(&[
            ("FLEXTIME_TEST_NATS_URL", "nats://x"),
            (REQUIRE_SERVICES_VAR, "1"),
        ]);
        assert_eq!(require_in(Peer::Nats, "t", lookup), Some("nats://x".into()));
    }

    #[test]
    fn unset_url_skips_with_the_variable_name() {
        let decision = decide(Peer::Kafka, "queues::kafka::roundtrip", env(&[]));
        assert_eq!(
            decision,
            Decision::Skip(
                "SKIPPED queues::kafka::roundtrip: FLEXTIME_TEST_KAFKA_URL is not set (run scripts/services)"
                    .into()
            )
        );
        assert_eq!(require_in(Peer::Kafka, "t", env(&[])), None);
    }

    #[test]
    fn empty_url_counts_as_unset() {
        let lookup = env(&[("FLEXTIME_TEST_REDIS_URL", "  ")]);
        assert!(matches!(
            decide(Peer::Redis, "t", lookup),
            Decision::Skip(_)
        ));
    }

    #[test]
    fn required_services_turn_skips_into_failures() {
        for value in ["1", "true", "YES", " on "] {
            let decision = decide(
                Peer::Mongodb,
                "db::mongo",
                env(&[(REQUIRE_SERVICES_VAR, value)]),
            );
            let Decision::Fail(message) = decision else {
                panic!("{value}: expected Fail, got {decision:?}")
            };
            assert!(message.contains("FLEXTIME_TEST_MONGODB_URL"), "{message}");
            assert!(message.contains("db::mongo"), "{message}");
            assert!(message.contains("scripts/services"), "{message}");
        }
    }

    #[test]
    fn falsy_require_values_still_skip() {
        for value in ["0", "", "false", "no"] {
            let decision = decide(Peer::Smtp, "t", env(&[(REQUIRE_SERVICES_VAR, value)]));
            assert!(
                matches!(decision, Decision::Skip(_)),
                "{value}: {decision:?}"
            );
        }
    }

    #[test]
    #[should_panic(
        expected = "FLEXTIME_TEST_PRISM_STRIPE_URL is not set and FLEXTIME_REQUIRE_SERVICES=1"
    )]
    fn require_in_panics_when_required() {
        let _ = require_in(
            Peer::Prism(Vendor::Stripe),
            "t",
            env(&[(REQUIRE_SERVICES_VAR, "1")]),
        );
    }

    #[test]
    fn env_vars_and_names_are_distinct_and_well_formed() {
        let mut vars = std::collections::HashSet::new();
        let mut names = std::collections::HashSet::new();
        for peer in Peer::ALL {
            let var = peer.env_var();
            assert!(
                var.starts_with("FLEXTIME_TEST_") && var.ends_with("_URL"),
                "{var}"
            );
            assert!(
                var.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'),
                "{var}"
            );
            assert!(vars.insert(var), "duplicate {var}");
            assert!(names.insert(peer.name()), "duplicate {}", peer.name());
            // the variable is derived from the name as scripts/services derives it
            let derived = format!(
                "FLEXTIME_TEST_{}_URL",
                peer.name().to_ascii_uppercase().replace('-', "_")
            );
            assert_eq!(derived, var);
        }
        for vendor in Vendor::ALL {
            assert!(Peer::ALL.contains(&Peer::Prism(vendor)));
        }
    }

    #[test]
    fn host_port_parses_peer_urls() {
        let cases = [
            (
                "postgres://root@127.0.0.1:5432/test",
                1,
                ("127.0.0.1", 5432),
            ),
            (
                "amqp://guest:guest@127.0.0.1:5672/%2f",
                1,
                ("127.0.0.1", 5672),
            ),
            ("redis://127.0.0.1:6379", 1, ("127.0.0.1", 6379)),
            ("http://localhost", 80, ("localhost", 80)),
            ("http://[::1]:4010/v1", 80, ("::1", 4010)),
            ("127.0.0.1:9092", 1, ("127.0.0.1", 9092)),
            (
                "mongodb://u:p@db.example:27018/?tls=false",
                1,
                ("db.example", 27018),
            ),
        ];
        for (url, default, (host, port)) in cases {
            assert_eq!(
                host_port(url, default),
                Some((host.to_owned(), port)),
                "{url}"
            );
        }
        assert_eq!(host_port("http://:80", 1), None);
        assert_eq!(host_port("http://h:notaport", 1), None);
        assert_eq!(
            peer_socket_addr(Peer::Caldav, "http://[::1]"),
            Some("[::1]:80".into())
        );
    }

    #[test]
    fn test_name_comes_from_the_test_thread() {
        let name = current_test_name("fallback");
        assert!(
            name.ends_with("test_name_comes_from_the_test_thread"),
            "{name}"
        );
    }

    #[test]
    fn macro_returns_early_on_skip() {
        fn inner() -> u32 {
            let _url = require_peer!(Prism(Postmark), 7);
            1
        }
        // The macro reads the real environment; only run the skip path when
        // it is certain to skip.
        if peer_url(Peer::Prism(Vendor::Postmark)).is_some() || services_required() {
            return;
        }
        assert_eq!(inner(), 7);
    }
}
