//! Proves each test peer answers at its protocol level, with raw `std::net`
//! exchanges (no client crates). A peer whose URL is unset is skipped, or
//! fails the test under `FLEXTIME_REQUIRE_SERVICES=1`: in CI these tests are
//! the proof that `scripts/services` did its job.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use flextime_testkit::{Peer, Vendor, peer_socket_addr, require_peer, unique_name};

const IO_TIMEOUT: Duration = Duration::from_secs(15);

fn connect(peer: Peer, url: &str) -> TcpStream {
    let addr = peer_socket_addr(peer, url)
        .unwrap_or_else(|| panic!("{peer}: cannot read host:port from {url}"));
    let stream =
        TcpStream::connect(&addr).unwrap_or_else(|e| panic!("{peer}: connect {addr}: {e}"));
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

fn read_exact(stream: &mut TcpStream, n: usize, what: &str) -> Vec<u8> {
    let mut buf = vec![0; n];
    stream
        .read_exact(&mut buf)
        .unwrap_or_else(|e| panic!("{what}: reading {n} bytes: {e}"));
    buf
}

fn be_i32(bytes: &[u8]) -> i32 {
    i32::from_be_bytes(bytes[..4].try_into().unwrap())
}

fn le_i32(bytes: &[u8]) -> i32 {
    i32::from_le_bytes(bytes[..4].try_into().unwrap())
}

#[test]
fn postgres_answers_ssl_request() {
    let url = require_peer!(Postgres);
    let mut s = connect(Peer::Postgres, &url);
    // SSLRequest: length 8, code 80877103. The server answers one byte.
    let mut msg = 8_i32.to_be_bytes().to_vec();
    msg.extend_from_slice(&80_877_103_i32.to_be_bytes());
    s.write_all(&msg).unwrap();
    let answer = read_exact(&mut s, 1, "postgres")[0];
    assert!(
        answer == b'N' || answer == b'S',
        "postgres answered {answer:#x} to SSLRequest"
    );
}

#[test]
fn mysql_sends_its_greeting() {
    let url = require_peer!(Mysql);
    let mut s = connect(Peer::Mysql, &url);
    let header = read_exact(&mut s, 4, "mysql");
    let len = usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
    let body = read_exact(&mut s, len, "mysql greeting");
    assert_eq!(
        body[0],
        10,
        "mysql: protocol version {} (0xff = error packet: {:?})",
        body[0],
        String::from_utf8_lossy(&body)
    );
    let version_end = body[1..].iter().position(|&b| b == 0).unwrap();
    let version = String::from_utf8_lossy(&body[1..=version_end]);
    assert!(
        version.chars().next().is_some_and(|c| c.is_ascii_digit()),
        "mysql server version {version:?}"
    );
}

#[test]
fn redis_pongs() {
    let url = require_peer!(Redis);
    let mut s = connect(Peer::Redis, &url);
    s.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
    let mut line = String::new();
    BufReader::new(&mut s).read_line(&mut line).unwrap();
    assert_eq!(line, "+PONG\r\n");
}

#[test]
fn amqp_starts_a_connection() {
    let url = require_peer!(Amqp);
    let mut s = connect(Peer::Amqp, &url);
    s.write_all(b"AMQP\x00\x00\x09\x01").unwrap();
    // Frame header: type 1 (method), channel 0, size; then class 10 method 10 (connection.start).
    let header = read_exact(&mut s, 7, "amqp");
    assert_eq!(
        header[0], 1,
        "amqp: frame type {} (a protocol header back means version mismatch)",
        header[0]
    );
    assert_eq!(&header[1..3], &[0, 0], "amqp: channel");
    let method = read_exact(&mut s, 4, "amqp method");
    assert_eq!(method, [0, 10, 0, 10], "amqp: expected connection.start");
}

#[test]
fn mqtt_accepts_a_connect() {
    let url = require_peer!(Mqtt);
    let mut s = connect(Peer::Mqtt, &url);
    let client_id = unique_name("probe");
    let id_len = u8::try_from(client_id.len()).unwrap();
    // MQTT 3.1.1 CONNECT, clean session, keepalive 10 s.
    let mut packet = vec![
        0x10,
        10 + 2 + id_len,
        0,
        4,
        b'M',
        b'Q',
        b'T',
        b'T',
        4,
        0x02,
        0,
        10,
        0,
        id_len,
    ];
    packet.extend_from_slice(client_id.as_bytes());
    s.write_all(&packet).unwrap();
    let connack = read_exact(&mut s, 4, "mqtt");
    assert_eq!(
        connack,
        [0x20, 0x02, 0x00, 0x00],
        "mqtt: CONNACK with return code 0"
    );
    s.write_all(&[0xe0, 0x00]).unwrap(); // DISCONNECT
}

#[test]
fn nats_has_jetstream() {
    let url = require_peer!(Nats);
    let s = connect(Peer::Nats, &url);
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut info = String::new();
    reader.read_line(&mut info).unwrap();
    assert!(info.starts_with("INFO {"), "nats: first line {info:?}");
    assert!(
        info.contains(r#""jetstream":true"#),
        "nats: JetStream is not enabled: {info}"
    );
    (&s).write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n")
        .unwrap();
    let mut pong = String::new();
    reader.read_line(&mut pong).unwrap();
    assert_eq!(pong, "PONG\r\n");
}

#[test]
fn kafka_answers_api_versions() {
    let url = require_peer!(Kafka);
    let mut s = connect(Peer::Kafka, &url);
    // ApiVersions v0: api_key 18, version 0, correlation id, client id.
    let client_id = b"flextime-testkit";
    let mut body = Vec::new();
    body.extend_from_slice(&18_i16.to_be_bytes());
    body.extend_from_slice(&0_i16.to_be_bytes());
    body.extend_from_slice(&4242_i32.to_be_bytes());
    body.extend_from_slice(&i16::try_from(client_id.len()).unwrap().to_be_bytes());
    body.extend_from_slice(client_id);
    let mut msg = i32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    msg.extend_from_slice(&body);
    s.write_all(&msg).unwrap();
    let size = usize::try_from(be_i32(&read_exact(&mut s, 4, "kafka"))).unwrap();
    let response = read_exact(&mut s, size, "kafka ApiVersions response");
    assert_eq!(be_i32(&response[0..4]), 4242, "kafka: correlation id");
    let error_code = i16::from_be_bytes([response[4], response[5]]);
    assert_eq!(error_code, 0, "kafka: ApiVersions error code");
    let count = be_i32(&response[6..10]);
    assert!(count > 0, "kafka: no API versions listed");
    // Each entry: api_key, min, max (int16 each). Produce (0) and Fetch (1) must be there.
    let keys: Vec<i16> = response[10..]
        .chunks_exact(6)
        .take(usize::try_from(count).unwrap())
        .map(|c| i16::from_be_bytes([c[0], c[1]]))
        .collect();
    assert!(
        keys.contains(&0) && keys.contains(&1),
        "kafka: api keys {keys:?}"
    );
}

#[test]
fn kafka_topics_can_be_created() {
    let url = require_peer!(Kafka);
    let topic = unique_name("probe");
    flextime_testkit::create_kafka_topic(&url, &topic, 1).unwrap();
}

/// A BSON document `{hello: 1, $db: "admin"}`.
fn bson_hello() -> Vec<u8> {
    let mut doc = Vec::new();
    doc.push(0x10); // int32
    doc.extend_from_slice(b"hello\0");
    doc.extend_from_slice(&1_i32.to_le_bytes());
    doc.push(0x02); // string
    doc.extend_from_slice(b"$db\0");
    doc.extend_from_slice(&6_i32.to_le_bytes());
    doc.extend_from_slice(b"admin\0");
    doc.push(0);
    let mut out = i32::try_from(doc.len() + 4).unwrap().to_le_bytes().to_vec();
    out.extend_from_slice(&doc);
    out
}

#[test]
fn mongodb_answers_hello() {
    let url = require_peer!(Mongodb);
    let mut s = connect(Peer::Mongodb, &url);
    let doc = bson_hello();
    // OP_MSG: header (length, request id, response to, opcode 2013), flags, section kind 0.
    let len = 16 + 4 + 1 + doc.len();
    let mut msg = Vec::with_capacity(len);
    msg.extend_from_slice(&i32::try_from(len).unwrap().to_le_bytes());
    msg.extend_from_slice(&7_i32.to_le_bytes());
    msg.extend_from_slice(&0_i32.to_le_bytes());
    msg.extend_from_slice(&2013_i32.to_le_bytes());
    msg.extend_from_slice(&0_u32.to_le_bytes());
    msg.push(0);
    msg.extend_from_slice(&doc);
    s.write_all(&msg).unwrap();
    let header = read_exact(&mut s, 16, "mongodb");
    let total = usize::try_from(le_i32(&header[0..4])).unwrap();
    assert_eq!(le_i32(&header[8..12]), 7, "mongodb: responseTo");
    assert_eq!(le_i32(&header[12..16]), 2013, "mongodb: opcode");
    let body = read_exact(&mut s, total - 16, "mongodb reply");
    // {ok: 1.0} as a BSON double element.
    let mut ok = vec![0x01];
    ok.extend_from_slice(b"ok\0");
    ok.extend_from_slice(&1.0_f64.to_le_bytes());
    assert!(
        body.windows(ok.len()).any(|w| w == ok.as_slice()),
        "mongodb: hello did not answer ok: 1"
    );
    assert!(
        body.windows(17).any(|w| w == b"isWritablePrimary"),
        "mongodb: hello reply lacks isWritablePrimary"
    );
}

/// Sends one HTTP/1.1 request and returns the status code and the headers
/// (lowercased names).
fn http(
    peer: Peer,
    url: &str,
    request_line: &str,
    extra: &str,
    body: &str,
) -> (u16, Vec<(String, String)>) {
    let mut s = connect(peer, url);
    let addr = peer_socket_addr(peer, url).unwrap();
    let request = format!(
        "{request_line} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n{extra}\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).unwrap();
    let mut reader = BufReader::new(s);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    let code = status
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{peer}: not an HTTP status line: {status:?}"));
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    (code, headers)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn caldav_offers_calendar_access() {
    let url = require_peer!(Caldav);
    let (code, headers) = http(Peer::Caldav, &url, "OPTIONS /", "", "");
    assert_eq!(code, 200, "caldav: OPTIONS / status");
    let dav = header(&headers, "dav").unwrap_or_default();
    assert!(
        dav.contains("calendar-access"),
        "caldav: DAV header {dav:?}"
    );
}

#[test]
fn smtp_accepts_and_delivers_a_message() {
    let url = require_peer!(Smtp);
    let s = connect(Peer::Smtp, &url);
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut writer = s;
    let mut expect = |code: &str, what: &str| {
        // Multi-line replies: "250-..." continue, "250 ..." ends.
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            assert!(line.starts_with(code), "smtp: after {what}: {line:?}");
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
    };
    expect("220", "connect");
    let rcpt = format!("{}@example.test", unique_name("probe"));
    for (cmd, code) in [
        ("EHLO flextime-testkit".to_owned(), "250"),
        ("MAIL FROM:<testkit@example.test>".to_owned(), "250"),
        (format!("RCPT TO:<{rcpt}>"), "250"),
        ("DATA".to_owned(), "354"),
    ] {
        writer.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
        expect(code, &cmd);
    }
    writer
        .write_all(
            format!(
                "From: testkit@example.test\r\nTo: {rcpt}\r\nSubject: probe\r\n\r\nhello\r\n.\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    expect("250", "end of DATA");
    writer.write_all(b"QUIT\r\n").unwrap();
    expect("221", "QUIT");

    // The message is now a file in the Maildir's new/ (when the script recorded it).
    if let Some(maildir) = flextime_testkit::smtp_maildir() {
        let found = std::fs::read_dir(maildir.join("new"))
            .unwrap()
            .filter_map(Result::ok)
            .any(|entry| {
                std::fs::read_to_string(entry.path()).is_ok_and(|text| text.contains(&rcpt))
            });
        assert!(found, "smtp: no message to {rcpt} in {}", maildir.display());
    }
}

fn prism_answers(vendor: Vendor) {
    let url = require_peer!(expr = Peer::Prism(vendor));
    let (code, _) = http(Peer::Prism(vendor), &url, "GET /", "", "");
    assert!(
        (100..600).contains(&code),
        "prism-{}: status {code}",
        vendor.name()
    );
}

#[test]
fn prism_stripe_validates_the_contract() {
    let url = require_peer!(Prism(Stripe));
    let auth = "Authorization: Bearer sk_test_flextime\r\nContent-Type: application/x-www-form-urlencoded\r\n";
    let (ok, _) = http(
        Peer::Prism(Vendor::Stripe),
        &url,
        "POST /v1/payment_intents",
        auth,
        "amount=100&currency=usd",
    );
    assert_eq!(ok, 200, "prism-stripe: a valid PaymentIntent");
    let (bad, headers) = http(
        Peer::Prism(Vendor::Stripe),
        &url,
        "POST /v1/payment_intents",
        auth,
        "amount=100",
    );
    assert_eq!(bad, 422, "prism-stripe: a PaymentIntent without currency");
    let violations = header(&headers, "sl-violations").unwrap_or_default();
    assert!(
        violations.contains("currency"),
        "prism-stripe: sl-violations {violations:?}"
    );
}

#[test]
fn prism_twilio_answers() {
    prism_answers(Vendor::Twilio);
}

#[test]
fn prism_sendgrid_answers() {
    prism_answers(Vendor::Sendgrid);
}

#[test]
fn prism_google_calendar_answers() {
    prism_answers(Vendor::GoogleCalendar);
}

#[test]
fn prism_notion_answers() {
    prism_answers(Vendor::Notion);
}

#[test]
fn prism_mixpanel_answers() {
    prism_answers(Vendor::Mixpanel);
}

#[test]
fn prism_postmark_answers() {
    prism_answers(Vendor::Postmark);
}
