//! Email senders: SMTP against the real aiosmtpd server `scripts/services`
//! starts (each message read back from its Maildir and parsed), SendGrid and
//! Postmark requests validated by Prism against the vendors' documents, and
//! their error paths against an in-process peer answering with the shapes
//! the vendors document.
#![cfg(all(feature = "smtp", feature = "sendgrid", feature = "postmark"))]

mod support;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use chrono::{NaiveDate, TimeZone, Utc};
use flextime_connectors::email::postmark::Postmark;
use flextime_connectors::email::sendgrid::SendGrid;
use flextime_connectors::email::smtp::Smtp;
use flextime_connectors::email::{Attachment, EmailMessage, EmailSender, Invitation, Mailbox};
use flextime_connectors::ics::{itip, parse_calendar};
use flextime_connectors::{Capability, Connector};
use flextime_core::schedule::{Attendee, ItemKind, ItemTime, Organizer, ScheduleItem};
use flextime_core::{ErrorKind, Secret};
use flextime_testkit::{Peer, Vendor};
use mailparse::{MailHeaderMap, ParsedMail};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// Shared
// ---------------------------------------------------------------------------

fn booking(attendee: &str) -> ScheduleItem {
    let day = NaiveDate::from_ymd_opt(2030, 5, 6).unwrap();
    let mut item = ScheduleItem::new(
        format!("booking-{attendee}"),
        ItemKind::Booking,
        "Haircut with Ana",
        ItemTime::zoned(day.and_hms_opt(9, 0, 0).unwrap(), chrono_tz::Europe::Paris),
        ItemTime::zoned(day.and_hms_opt(10, 0, 0).unwrap(), chrono_tz::Europe::Paris),
        Utc.with_ymd_and_hms(2030, 4, 1, 8, 0, 0).unwrap(),
    );
    item.attendees.push(Attendee::new(attendee));
    item.sequence = 2;
    item
}

fn desk() -> Organizer {
    Organizer {
        email: "desk@example.com".into(),
        name: Some("Front desk".into()),
    }
}

// ---------------------------------------------------------------------------
// SMTP against aiosmtpd
// ---------------------------------------------------------------------------

/// The test's own recipient address and the SMTP sender, or `None` when
/// the peer is not configured (the test then skips, or fails under
/// `FLEXTIME_REQUIRE_SERVICES=1`).
fn smtp(test: &str) -> Option<(Smtp, String, PathBuf)> {
    let url = flextime_testkit::require(Peer::Smtp, test)?;
    let Some(maildir) = flextime_testkit::smtp_maildir() else {
        assert!(
            !flextime_testkit::services_required(),
            "FLEXTIME_TEST_SMTP_MAILDIR is not set"
        );
        eprintln!("skipped {test}: FLEXTIME_TEST_SMTP_MAILDIR is not set");
        return None;
    };
    let name = flextime_testkit::unique_name(test);
    Some((
        Smtp::from_url(&url).unwrap(),
        format!("{name}@example.test"),
        maildir,
    ))
}

/// Every delivered message whose envelope recipients include `address`
/// (aiosmtpd records them in `X-RcptTo`); their files are removed.
fn delivered_to(maildir: &Path, address: &str) -> Vec<Vec<u8>> {
    let mut found = Vec::new();
    for sub in ["new", "cur"] {
        let Ok(entries) = std::fs::read_dir(maildir.join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(bytes) = std::fs::read(entry.path()) else {
                continue;
            };
            let Ok(parsed) = mailparse::parse_mail(&bytes) else {
                continue;
            };
            let rcpt = parsed
                .headers
                .get_first_value("X-RcptTo")
                .unwrap_or_default();
            if rcpt
                .split(',')
                .any(|r| r.trim().eq_ignore_ascii_case(address))
            {
                let _ = std::fs::remove_file(entry.path());
                found.push(bytes);
            }
        }
    }
    found
}

fn only_one(maildir: &Path, address: &str) -> Vec<u8> {
    let mut all = delivered_to(maildir, address);
    assert_eq!(all.len(), 1, "one message for {address}");
    all.remove(0)
}

fn parts<'a>(mail: &'a ParsedMail<'a>, out: &mut Vec<&'a ParsedMail<'a>>) {
    out.push(mail);
    for sub in &mail.subparts {
        parts(sub, out);
    }
}

fn find<'a>(mail: &'a ParsedMail<'a>, mimetype: &str) -> Option<&'a ParsedMail<'a>> {
    let mut all = Vec::new();
    parts(mail, &mut all);
    all.into_iter().find(|p| p.ctype.mimetype == mimetype)
}

#[tokio::test]
async fn smtp_delivers_plain_text_with_cc_bcc_and_reply_to() {
    let Some((smtp, to, maildir)) = smtp("smtp_plain") else {
        return;
    };
    let hidden = to.replace('@', "_bcc@");
    let msg = EmailMessage::new("Flextime <bookings@example.com>", "Your booking")
        .to(Mailbox::named("Ana Lima", to.as_str()))
        .cc("copy@example.test")
        .bcc(hidden.as_str())
        .reply_to("help@example.com")
        .header("X-Flextime-Booking", "b-42")
        .text("See you on Monday at 09:00.\nBring nothing.");
    smtp.check().await.unwrap();
    assert_eq!(smtp.capabilities(), [Capability::Email]);
    let receipt = smtp.send(&msg).await.unwrap();
    assert_eq!(receipt.provider, "smtp");
    assert_eq!(receipt.recipients.len(), 3);
    assert!(
        receipt.detail.as_deref().unwrap().starts_with("250"),
        "{receipt:?}"
    );

    let raw = only_one(&maildir, &to);
    let mail = mailparse::parse_mail(&raw).unwrap();
    let h = &mail.headers;
    assert_eq!(h.get_first_value("Subject").unwrap(), "Your booking");
    assert_eq!(
        h.get_first_value("From").unwrap(),
        "Flextime <bookings@example.com>"
    );
    assert!(h.get_first_value("To").unwrap().contains(&to));
    assert_eq!(h.get_first_value("Cc").unwrap(), "copy@example.test");
    assert_eq!(h.get_first_value("Reply-To").unwrap(), "help@example.com");
    assert_eq!(h.get_first_value("X-Flextime-Booking").unwrap(), "b-42");
    assert!(h.get_first_value("Bcc").is_none(), "Bcc is never a header");
    assert!(
        h.get_first_value("X-RcptTo").unwrap().contains(&hidden),
        "the Bcc address is in the envelope"
    );
    assert_eq!(
        h.get_first_value("Message-ID").unwrap(),
        format!("<{}>", receipt.message_id.unwrap())
    );
    assert_eq!(mail.ctype.mimetype, "text/plain");
    assert_eq!(
        mail.get_body().unwrap().trim_end(),
        "See you on Monday at 09:00.\nBring nothing."
    );
    let _ = delivered_to(&maildir, "copy@example.test");
}

#[tokio::test]
async fn smtp_delivers_html_and_text_as_alternatives() {
    let Some((smtp, to, maildir)) = smtp("smtp_html") else {
        return;
    };
    let msg = EmailMessage::new("bookings@example.com", "Confirmed")
        .to(to.as_str())
        .text("Confirmed.")
        .html("<p>Confirmed <b>today</b>.</p>");
    smtp.send(&msg).await.unwrap();
    let raw = only_one(&maildir, &to);
    let mail = mailparse::parse_mail(&raw).unwrap();
    assert_eq!(mail.ctype.mimetype, "multipart/alternative");
    let kinds: Vec<&str> = mail
        .subparts
        .iter()
        .map(|p| p.ctype.mimetype.as_str())
        .collect();
    assert_eq!(kinds, ["text/plain", "text/html"]);
    assert_eq!(
        mail.subparts[0].get_body().unwrap().trim_end(),
        "Confirmed."
    );
    assert_eq!(
        mail.subparts[1].get_body().unwrap().trim_end(),
        "<p>Confirmed <b>today</b>.</p>"
    );
}

#[tokio::test]
async fn smtp_delivers_attachments_byte_for_byte() {
    let Some((smtp, to, maildir)) = smtp("smtp_attachment") else {
        return;
    };
    let pdf: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let msg = EmailMessage::new("bookings@example.com", "Your invoice")
        .to(to.as_str())
        .text("Attached.")
        .attach(Attachment::new(
            "invoice 42.pdf",
            "application/pdf",
            pdf.clone(),
        ));
    smtp.send(&msg).await.unwrap();
    let raw = only_one(&maildir, &to);
    let mail = mailparse::parse_mail(&raw).unwrap();
    assert_eq!(mail.ctype.mimetype, "multipart/mixed");
    let file = find(&mail, "application/pdf").unwrap();
    let disposition = file.get_content_disposition();
    assert_eq!(
        disposition.disposition,
        mailparse::DispositionType::Attachment
    );
    assert_eq!(
        disposition.params.get("filename").map(String::as_str),
        Some("invoice 42.pdf")
    );
    assert_eq!(file.get_body_raw().unwrap(), pdf);
}

#[tokio::test]
async fn smtp_encodes_a_unicode_subject_and_body() {
    let Some((smtp, to, maildir)) = smtp("smtp_unicode") else {
        return;
    };
    let subject = "Réservation confirmée ✓ 予約 — Zürich";
    let msg = EmailMessage::new(
        Mailbox::named("Flextime Café", "bookings@example.com"),
        subject,
    )
    .to(to.as_str())
    .text("À bientôt ! 🙂");
    smtp.send(&msg).await.unwrap();
    let raw = only_one(&maildir, &to);
    assert!(raw.is_ascii(), "headers and body are transfer-encoded");
    let mail = mailparse::parse_mail(&raw).unwrap();
    assert_eq!(mail.headers.get_first_value("Subject").unwrap(), subject);
    assert!(
        mail.headers
            .get_first_value("From")
            .unwrap()
            .contains("Flextime Café")
    );
    assert_eq!(mail.get_body().unwrap().trim_end(), "À bientôt ! 🙂");
}

/// The text/calendar part of an invitation email, checked for layout, and
/// its parsed calendar.
fn calendar_of(raw: &[u8], method: &str) -> flextime_connectors::ics::Calendar {
    let mail = mailparse::parse_mail(raw).unwrap();
    assert_eq!(mail.ctype.mimetype, "multipart/mixed");
    assert_eq!(mail.subparts[0].ctype.mimetype, "multipart/alternative");
    let alt: Vec<&str> = mail.subparts[0]
        .subparts
        .iter()
        .map(|p| p.ctype.mimetype.as_str())
        .collect();
    assert_eq!(alt, ["text/plain", "text/calendar"], "calendar last");
    let cal = &mail.subparts[0].subparts[1];
    assert_eq!(
        cal.ctype.params.get("method").map(String::as_str),
        Some(method)
    );
    assert_eq!(cal.ctype.charset, "utf-8");
    let file = find(&mail, "application/ics").expect("an .ics attachment");
    let text = cal.get_body().unwrap();
    assert_eq!(
        String::from_utf8(file.get_body_raw().unwrap()).unwrap(),
        text,
        "the attachment is the same calendar"
    );
    parse_calendar(&text).unwrap()
}

#[tokio::test]
async fn smtp_invitation_request_then_cancel() {
    let Some((smtp, to, maildir)) = smtp("smtp_invite") else {
        return;
    };
    let item = booking(&to);
    let request = EmailMessage::new("desk@example.com", "Invitation: Haircut")
        .to(to.as_str())
        .text("You are invited.")
        .invitation(Invitation::request(&item, &desk()).unwrap());
    smtp.send(&request).await.unwrap();
    let cal = calendar_of(&only_one(&maildir, &to), "REQUEST");
    assert_eq!(cal.method(), Some(itip::Method::Request));
    let ev = cal.vevents().next().unwrap();
    assert_eq!(ev.property("UID").unwrap().value, item.id);
    assert_eq!(ev.property("SEQUENCE").unwrap().value, "2");
    assert_eq!(
        ev.property("ORGANIZER").unwrap().value,
        "mailto:desk@example.com"
    );
    let attendee = ev.property("ATTENDEE").unwrap();
    assert_eq!(attendee.value, format!("mailto:{to}"));
    assert_eq!(attendee.param("RSVP"), Some("TRUE"));
    assert_eq!(attendee.param("PARTSTAT"), Some("NEEDS-ACTION"));
    let back = cal.events().unwrap().remove(0);
    assert_eq!(back.start, item.start);
    assert_eq!(back.title, item.title);

    let mut sent = item.clone();
    sent.organizer = Some(desk());
    let cancel = EmailMessage::new("desk@example.com", "Cancelled: Haircut")
        .to(to.as_str())
        .text("Cancelled.")
        .invitation(Invitation::cancel(&sent).unwrap());
    smtp.send(&cancel).await.unwrap();
    let cal = calendar_of(&only_one(&maildir, &to), "CANCEL");
    assert_eq!(cal.method(), Some(itip::Method::Cancel));
    let ev = cal.vevents().next().unwrap();
    assert_eq!(ev.property("UID").unwrap().value, item.id);
    assert_eq!(ev.property("SEQUENCE").unwrap().value, "3");
    assert_eq!(ev.property("STATUS").unwrap().value, "CANCELLED");
    assert_eq!(
        ev.property("ATTENDEE").unwrap().value,
        format!("mailto:{to}")
    );
}

#[tokio::test]
async fn smtp_batch_reports_a_result_per_message() {
    let Some((smtp, to, maildir)) = smtp("smtp_batch") else {
        return;
    };
    let second = to.replace('@', "_2@");
    let messages = [
        EmailMessage::new("desk@example.com", "One")
            .to(to.as_str())
            .text("1"),
        EmailMessage::new("desk@example.com", "Two")
            .to("not an address")
            .text("2"),
        EmailMessage::new("desk@example.com", "Three")
            .to(second.as_str())
            .text("3"),
    ];
    let results = smtp.send_batch(&messages).await.unwrap();
    assert_eq!(results.len(), 3);
    assert!(results[0].is_ok(), "{:?}", results[0]);
    let bad = results[1].as_ref().unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::InvalidInput);
    assert!(bad.to_string().contains("to[0]"), "{bad}");
    assert!(results[2].is_ok(), "{:?}", results[2]);
    let one = mailparse::parse_mail(&only_one(&maildir, &to))
        .unwrap()
        .headers
        .get_first_value("Subject");
    assert_eq!(one.as_deref(), Some("One"));
    assert_eq!(delivered_to(&maildir, &second).len(), 1);
}

#[tokio::test]
async fn smtp_server_down_is_unavailable() {
    // A port nothing listens on: bound, then released.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let smtp = Smtp::builder(&format!("smtp://user:s3cret-pw@127.0.0.1:{port}"))
        .unwrap()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let msg = EmailMessage::new("desk@example.com", "Hi")
        .to("ana@example.test")
        .text("x");
    let err = smtp.send(&msg).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_retryable());
    assert_eq!(
        smtp.check().await.unwrap_err().kind(),
        ErrorKind::Unavailable
    );
    assert!(!err.to_string().contains("s3cret-pw"), "{err}");
    let err = smtp.send_batch(&[msg.clone(), msg]).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Unavailable,
        "nothing was sent: {err}"
    );
    // Invalid input is refused before any connection is tried.
    let bad = EmailMessage::new("desk@example.com", "Hi")
        .to("x")
        .text("x");
    assert_eq!(
        smtp.send(&bad).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}

/// A private aiosmtpd run from a Python script (the shared one takes no
/// credentials and speaks no TLS). The script gets the port as its first
/// argument, prints `ready` once listening and stops when stdin closes; the
/// process is killed when this is dropped.
struct PrivateSmtp {
    child: std::process::Child,
    port: u16,
}

/// Requires AUTH (user `flextime`, password `s3cret-pw`), without TLS so the
/// test can run without certificates.
const AUTH_SERVER: &str = r#"
import sys
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Sink
from aiosmtpd.smtp import AuthResult, LoginPassword

def check(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and data.login == b"flextime" and data.password == b"s3cret-pw"
    return AuthResult(success=ok, handled=False)

c = Controller(Sink(), hostname="127.0.0.1", port=int(sys.argv[1]), authenticator=check,
               auth_required=True, auth_require_tls=False)
c.start()
print("ready", flush=True)
sys.stdin.read()
c.stop()
"#;

/// STARTTLS required (`starttls`) or implicit TLS (`implicit`) with the
/// certificate and key given.
const TLS_SERVER: &str = r#"
import sys, ssl
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Sink

port, mode, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
if mode == "starttls":
    c = Controller(Sink(), hostname="127.0.0.1", port=port, tls_context=ctx, require_starttls=True)
else:
    c = Controller(Sink(), hostname="127.0.0.1", port=port, ssl_context=ctx)
c.start()
print("ready", flush=True)
sys.stdin.read()
c.stop()
"#;

impl PrivateSmtp {
    fn start(script: &str, args: &[&str]) -> Self {
        use std::io::BufRead as _;
        let port = flextime_testkit::server::free_port().unwrap();
        let mut child = std::process::Command::new("/usr/bin/python3")
            .args(["-c", script, &port.to_string()])
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the private aiosmtpd did not start");
        Self { child, port }
    }
}

impl Drop for PrivateSmtp {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A self-signed server certificate for 127.0.0.1 (not a CA, as rustls
/// wants of a server certificate): `(cert.pem, key.pem)` in `dir`.
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success(), "openssl could not make a certificate");
    (cert, key)
}

#[tokio::test]
async fn smtp_starttls_and_implicit_tls_verify_the_server() {
    if flextime_testkit::require(Peer::Smtp, "smtp_tls").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let pem = std::fs::read(&cert).unwrap();
    let msg = EmailMessage::new("desk@example.com", "Over TLS")
        .to("ana@example.test")
        .text("x");
    for (mode, scheme) in [("starttls", "smtp+starttls"), ("implicit", "smtps")] {
        let server = PrivateSmtp::start(
            TLS_SERVER,
            &[mode, cert.to_str().unwrap(), key.to_str().unwrap()],
        );
        let url = format!("{scheme}://127.0.0.1:{}", server.port);
        let trusted = Smtp::builder(&url)
            .unwrap()
            .add_root_certificate_pem(&pem)
            .build()
            .unwrap();
        let receipt = trusted.send(&msg).await.unwrap();
        assert!(receipt.detail.unwrap().starts_with("250"), "{mode}");
        // Only the Mozilla roots: the self-signed certificate is refused.
        let err = Smtp::from_url(&url).unwrap().send(&msg).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{mode}: {err}");
        if mode == "starttls" {
            // The plain scheme against a server that requires STARTTLS:
            // 530 "must issue a STARTTLS command first", nothing sent.
            let plain = format!("smtp://127.0.0.1:{}", server.port);
            let err = Smtp::from_url(&plain)
                .unwrap()
                .send(&msg)
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
        }
    }
}

#[tokio::test]
async fn smtp_authenticates_and_refused_credentials_are_unauthorized() {
    if flextime_testkit::require(Peer::Smtp, "smtp_auth").is_none() {
        return;
    }
    let server = PrivateSmtp::start(AUTH_SERVER, &[]);
    let msg = EmailMessage::new("desk@example.com", "Hi")
        .to("ana@example.test")
        .text("x");
    let url = format!("smtp://flextime:s3cret-pw@127.0.0.1:{}", server.port);
    let smtp = Smtp::from_url(&url).unwrap();
    assert!(!format!("{smtp:?}").contains("s3cret-pw"));
    let receipt = smtp.send(&msg).await.unwrap();
    assert!(receipt.detail.unwrap().starts_with("250"));

    let wrong = Smtp::builder(&format!("smtp://127.0.0.1:{}", server.port))
        .unwrap()
        .credentials("flextime", Secret::new("wrong-pw"))
        .build()
        .unwrap();
    let err = wrong.send(&msg).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    assert!(!err.to_string().contains("wrong-pw"), "{err}");

    let anonymous = Smtp::from_url(&format!("smtp://127.0.0.1:{}", server.port)).unwrap();
    let err = anonymous.send(&msg).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
}

// ---------------------------------------------------------------------------
// Prism contract tests
// ---------------------------------------------------------------------------

fn full_message(to: &str) -> EmailMessage {
    let item = booking(to);
    EmailMessage::new(
        Mailbox::named("Flextime", "bookings@example.com"),
        "Invitation: Haircut",
    )
    .to(Mailbox::named("Ana Lima", to))
    .cc("copy@example.com")
    .bcc("audit@example.com")
    .reply_to("help@example.com")
    .text("You are invited.")
    .html("<p>You are invited.</p>")
    .header("X-Flextime-Booking", "b-42")
    .attach(Attachment::new(
        "terms.txt",
        "text/plain",
        b"Be on time.".to_vec(),
    ))
    .invitation(Invitation::request(&item, &desk()).unwrap())
    .metadata("booking_id", "b-42")
}

fn assert_no_violations(seen: &support::Recorded, expected: usize) {
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), expected, "{seen:?}");
    let bad: Vec<_> = seen.iter().filter(|(_, v)| v.is_some()).collect();
    assert!(bad.is_empty(), "Prism reported violations: {bad:?}");
}

#[tokio::test]
async fn sendgrid_mail_send_passes_prism_validation() {
    let Some(url) = flextime_testkit::require(Peer::Prism(Vendor::Sendgrid), "sendgrid_prism")
    else {
        return;
    };
    let (observer, seen) = support::prism_recorder();
    let sg = SendGrid::new(&url, &Secret::new("SG.prism"), |h| h.observe(observer)).unwrap();
    let receipt = sg.send(&full_message("ana@example.com")).await.unwrap();
    assert_eq!(receipt.provider, "sendgrid");
    assert_eq!(receipt.detail.as_deref(), Some("202 Accepted"));
    let plain = EmailMessage::new("bookings@example.com", "Reminder")
        .to("bo@example.com")
        .text("Tomorrow.");
    let results = sg
        .send_batch(&[plain.clone(), plain.html("<p>Tomorrow.</p>")])
        .await
        .unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_no_violations(&seen, 3);
}

#[tokio::test]
async fn postmark_email_and_batch_pass_prism_validation() {
    let Some(url) = flextime_testkit::require(Peer::Prism(Vendor::Postmark), "postmark_prism")
    else {
        return;
    };
    let (observer, seen) = support::prism_recorder();
    let pm = Postmark::new(&url, &Secret::new("pm-prism"), |h| h.observe(observer)).unwrap();
    let receipt = pm.send(&full_message("ana@example.com")).await.unwrap();
    assert_eq!(receipt.provider, "postmark");
    assert!(receipt.message_id.is_some());
    let plain = EmailMessage::new("bookings@example.com", "Reminder")
        .to("bo@example.com")
        .text("Tomorrow.");
    let results = pm
        .send_batch(&[full_message("cy@example.com"), plain])
        .await
        .unwrap();
    assert_eq!(results.len(), 2);
    assert!(results[0].is_ok(), "{:?}", results[0]);
    pm.check().await.unwrap();
    // Prism's example answer holds one entry whatever the batch size: the
    // second message's outcome is unknown, and said so.
    if let Err(e) = &results[1] {
        assert_eq!(e.kind(), ErrorKind::Permanent);
        assert!(e.to_string().contains("no entry"), "{e}");
    }
    assert_no_violations(&seen, 3);
}

// ---------------------------------------------------------------------------
// Error paths against a peer answering as the vendors document
// ---------------------------------------------------------------------------

const SG_KEY: &str = "SG.test-key";
const PM_TOKEN: &str = "pm-test-token";

/// A scripted answer: status, extra headers, body.
type Answer = (u16, Vec<(&'static str, &'static str)>, String);

/// Records requests; answers from a script first, then as the vendor does.
#[derive(Default)]
struct VendorPeer {
    script: VecDeque<Answer>,
    requests: Vec<(String, HeaderMap, Value)>,
}

type Shared = Arc<Mutex<VendorPeer>>;

async fn vendor(State(s): State<Shared>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let mut s = s.lock().unwrap();
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    s.requests
        .push((uri.path().to_owned(), headers.clone(), json.clone()));
    if let Some((status, extra, body)) = s.script.pop_front() {
        let mut resp = (StatusCode::from_u16(status).unwrap(), body).into_response();
        resp.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        for (k, v) in extra {
            resp.headers_mut().insert(k, v.parse().unwrap());
        }
        return resp;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match uri.path() {
        "/v3/mail/send" => {
            if header("authorization") != Some(&format!("Bearer {SG_KEY}")) {
                return (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(json!({"errors": [{"field": null, "message": "The provided authorization grant is invalid, expired, or revoked", "help": null}]})),
                )
                    .into_response();
            }
            let mut resp = StatusCode::ACCEPTED.into_response();
            resp.headers_mut()
                .insert("x-message-id", "sg-msg-1".parse().unwrap());
            resp
        }
        "/email" | "/email/batch" => {
            if header("x-postmark-server-token") != Some(PM_TOKEN) {
                return (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(json!({"ErrorCode": 10, "Message": "The Server Token you provided in the X-Postmark-Server-Token request header was invalid. Please verify that you are using a valid token."})),
                )
                    .into_response();
            }
            let answer = |m: &Value, i: usize| {
                let to = m["To"].as_str().unwrap_or_default();
                if to.contains("inactive") {
                    json!({"ErrorCode": 406, "Message": format!("You tried to send to recipient(s) that have been marked as inactive. Found inactive addresses: {to}.")})
                } else {
                    json!({"To": to, "SubmittedAt": "2030-04-01T08:00:00.000Z", "MessageID": format!("pm-{i}"), "ErrorCode": 0, "Message": "OK"})
                }
            };
            if uri.path() == "/email" {
                axum::Json(answer(&json, 0)).into_response()
            } else {
                let all: Vec<Value> = json
                    .as_array()
                    .map(|a| a.iter().enumerate().map(|(i, m)| answer(m, i)).collect())
                    .unwrap_or_default();
                axum::Json(all).into_response()
            }
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn vendor_peer() -> (String, Shared) {
    let state = Shared::default();
    let base = support::serve(Router::new().fallback(vendor).with_state(state.clone())).await;
    (base, state)
}

fn script(s: &Shared, status: u16, headers: Vec<(&'static str, &'static str)>, body: &str) {
    s.lock()
        .unwrap()
        .script
        .push_back((status, headers, body.to_owned()));
}

fn request_count(s: &Shared) -> usize {
    s.lock().unwrap().requests.len()
}

#[tokio::test]
async fn sendgrid_request_shape() {
    let (base, state) = vendor_peer().await;
    let sg = SendGrid::new(&base, &Secret::new(SG_KEY), |h| {
        h.retry(support::fast_retries(3))
    })
    .unwrap();
    let receipt = sg.send(&full_message("ana@example.com")).await.unwrap();
    assert_eq!(receipt.message_id.as_deref(), Some("sg-msg-1"));
    let body = state.lock().unwrap().requests[0].2.clone();
    assert_eq!(body["content"][0]["type"], "text/plain");
    assert_eq!(body["content"][1]["type"], "text/html");
    let p = &body["personalizations"][0];
    assert_eq!(
        p["to"][0],
        json!({"email": "ana@example.com", "name": "Ana Lima"})
    );
    assert_eq!(p["bcc"][0]["email"], "audit@example.com");
    assert_eq!(p["custom_args"]["booking_id"], "b-42");
    assert_eq!(body["from"]["name"], "Flextime");
    assert_eq!(body["reply_to"]["email"], "help@example.com");
    assert_eq!(body["headers"]["X-Flextime-Booking"], "b-42");
    let invite = &body["attachments"][0];
    assert_eq!(invite["type"], "text/calendar; method=REQUEST");
    assert_eq!(invite["filename"], "invite.ics");
    assert_eq!(invite["disposition"], "inline");
    assert!(
        invite["content_id"]
            .as_str()
            .unwrap()
            .starts_with("request-")
    );
    let ics = base64::engine::general_purpose::STANDARD
        .decode(invite["content"].as_str().unwrap())
        .unwrap();
    let cal = parse_calendar(std::str::from_utf8(&ics).unwrap()).unwrap();
    assert_eq!(cal.method(), Some(itip::Method::Request));
    assert_eq!(body["attachments"][1]["disposition"], "attachment");

    // Bad input never reaches the peer.
    let dup = EmailMessage::new("a@example.com", "s")
        .to("b@example.com")
        .cc("B@example.com")
        .text("t");
    assert_eq!(
        sg.send(&dup).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let bad = EmailMessage::new("a@example.com", "s").to("b@").text("t");
    assert_eq!(
        sg.send(&bad).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(request_count(&state), 1);
}

#[tokio::test]
async fn sendgrid_error_paths() {
    let (base, state) = vendor_peer().await;
    let msg = EmailMessage::new("a@example.com", "s")
        .to("b@example.com")
        .text("t");

    let wrong = SendGrid::new(&base, &Secret::new("SG.wrong-secret"), |h| {
        h.retry(support::fast_retries(3))
    })
    .unwrap();
    let err = wrong.send(&msg).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert!(err.to_string().contains("authorization grant"), "{err}");
    assert!(!err.to_string().contains("wrong-secret"), "{err}");
    let err = wrong
        .send_batch(&[msg.clone(), msg.clone()])
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Unauthorized,
        "the whole batch failed"
    );

    let sg = SendGrid::new(&base, &Secret::new(SG_KEY), |h| {
        h.retry(support::fast_retries(3))
    })
    .unwrap();
    // 429 with Retry-After: not processed, so retried, then accepted.
    script(
        &state,
        429,
        vec![("retry-after", "1")],
        r#"{"errors":[{"field":null,"message":"too many requests"}]}"#,
    );
    let before = request_count(&state);
    sg.send(&msg).await.unwrap();
    assert_eq!(request_count(&state) - before, 2);

    // 5xx: the message may have been queued; never resent automatically.
    script(
        &state,
        500,
        vec![],
        r#"{"errors":[{"message":"internal server error"}]}"#,
    );
    let before = request_count(&state);
    let err = sg.send(&msg).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.is_retryable(), "the caller may decide to resend");
    assert_eq!(request_count(&state) - before, 1, "not retried");
    // The caller's own retry succeeds.
    assert!(sg.send(&msg).await.is_ok());

    // A malformed error body is still a typed error.
    script(
        &state,
        400,
        vec![("content-type", "text/html")],
        "<html>oops",
    );
    let err = sg.send(&msg).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);

    // A batch after a first success: the failure becomes per-message.
    script(&state, 202, vec![], "");
    script(
        &state,
        503,
        vec![],
        r#"{"errors":[{"message":"unavailable"}]}"#,
    );
    let results = sg
        .send_batch(&[msg.clone(), msg.clone(), msg.clone()])
        .await
        .unwrap();
    assert!(results[0].is_ok());
    assert_eq!(
        results[1].as_ref().unwrap_err().kind(),
        ErrorKind::Unavailable
    );
    let third = results[2].as_ref().unwrap_err();
    assert!(third.to_string().contains("not sent"), "{third}");
}

#[tokio::test]
async fn postmark_request_shape_and_batch_results() {
    let (base, state) = vendor_peer().await;
    let pm = Postmark::new(&base, &Secret::new(PM_TOKEN), |h| {
        h.retry(support::fast_retries(3))
    })
    .unwrap();
    let receipt = pm.send(&full_message("ana@example.com")).await.unwrap();
    assert_eq!(receipt.message_id.as_deref(), Some("pm-0"));
    let (path, headers, body) = state.lock().unwrap().requests[0].clone();
    assert_eq!(path, "/email");
    assert_eq!(headers["accept"], "application/json");
    assert_eq!(body["From"], "\"Flextime\" <bookings@example.com>");
    assert_eq!(body["To"], "\"Ana Lima\" <ana@example.com>");
    assert_eq!(body["Bcc"], "audit@example.com");
    assert_eq!(body["TextBody"], "You are invited.");
    assert_eq!(body["HtmlBody"], "<p>You are invited.</p>");
    assert_eq!(body["MessageStream"], "outbound");
    assert_eq!(body["Metadata"]["booking_id"], "b-42");
    assert_eq!(
        body["Headers"][0],
        json!({"Name": "X-Flextime-Booking", "Value": "b-42"})
    );
    assert_eq!(
        body["Attachments"][0]["ContentType"],
        "text/calendar; charset=UTF-8; method=REQUEST"
    );
    assert_eq!(body["Attachments"][0]["Name"], "invite.ics");

    let ok = |to: &str| EmailMessage::new("desk@example.com", "Hi").to(to).text("t");
    let batch = [
        ok("ana@example.com"),
        ok("inactive@example.com"),
        ok("broken"),
        ok("bo@example.com"),
    ];
    let before = request_count(&state);
    let results = pm.send_batch(&batch).await.unwrap();
    assert_eq!(
        request_count(&state) - before,
        1,
        "one /email/batch request"
    );
    let sent = state.lock().unwrap().requests.last().unwrap().2.clone();
    assert_eq!(
        sent.as_array().unwrap().len(),
        3,
        "the invalid one is not sent"
    );
    assert_eq!(results.len(), 4);
    assert_eq!(
        results[0].as_ref().unwrap().message_id.as_deref(),
        Some("pm-0")
    );
    let inactive = results[1].as_ref().unwrap_err();
    assert_eq!(inactive.kind(), ErrorKind::Permanent);
    assert!(inactive.to_string().contains("406"), "{inactive}");
    assert_eq!(
        results[2].as_ref().unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        results[3].as_ref().unwrap().message_id.as_deref(),
        Some("pm-2")
    );

    // 501 messages: two requests (500 + 1), 501 results in order.
    let many: Vec<EmailMessage> = (0..501)
        .map(|i| ok(&format!("user{i}@example.com")))
        .collect();
    let before = request_count(&state);
    let results = pm.send_batch(&many).await.unwrap();
    assert_eq!(request_count(&state) - before, 2);
    assert_eq!(results.len(), 501);
    assert!(results.iter().all(Result::is_ok));
    let last = state.lock().unwrap().requests.last().unwrap().2.clone();
    assert_eq!(last[0]["To"], "user500@example.com");

    // Limits checked before any request.
    let mut crowded = ok("a@example.com");
    for i in 0..50 {
        crowded = crowded.cc(format!("cc{i}@example.com"));
    }
    assert_eq!(
        pm.send(&crowded).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let too_many = vec![ok("a@example.com"); flextime_connectors::email::MAX_BATCH + 1];
    assert_eq!(
        pm.send_batch(&too_many).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(request_count(&state) - before, 2);
}

#[tokio::test]
async fn postmark_error_paths() {
    let (base, state) = vendor_peer().await;
    let msg = EmailMessage::new("a@example.com", "s")
        .to("b@example.com")
        .text("t");

    let wrong = Postmark::new(&base, &Secret::new("pm-wrong-token"), |h| {
        h.retry(support::fast_retries(3))
    })
    .unwrap();
    let err = wrong.send(&msg).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert!(!err.to_string().contains("pm-wrong-token"), "{err}");
    let err = wrong
        .send_batch(std::slice::from_ref(&msg))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);

    let pm = Postmark::new(&base, &Secret::new(PM_TOKEN), |h| {
        h.retry(support::fast_retries(3))
    })
    .unwrap();
    // 429 + Retry-After, then success: retried.
    script(
        &state,
        429,
        vec![("retry-after", "1")],
        r#"{"ErrorCode":429,"Message":"Rate limit exceeded"}"#,
    );
    let before = request_count(&state);
    let results = pm.send_batch(&[msg.clone(), msg.clone()]).await.unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(request_count(&state) - before, 2);

    // 500: not retried (no idempotency key at Postmark); the caller's retry works.
    script(&state, 500, vec![], "");
    let before = request_count(&state);
    assert_eq!(
        pm.send(&msg).await.unwrap_err().kind(),
        ErrorKind::Unavailable
    );
    assert_eq!(request_count(&state) - before, 1);
    assert!(pm.send(&msg).await.is_ok());

    // 422 with Postmark's error object.
    script(
        &state,
        422,
        vec![],
        r#"{"ErrorCode":300,"Message":"Invalid 'To' address: 'b@example.com'."}"#,
    );
    let err = pm.send(&msg).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("Invalid 'To' address"), "{err}");

    // A 200 whose body is not Postmark's: the outcome is unknown, typed
    // Permanent so nothing resends it blindly.
    script(&state, 200, vec![], "<html>proxy page</html>");
    let err = pm.send(&msg).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permanent);
    assert!(err.to_string().contains("may or may not"), "{err}");
    script(&state, 200, vec![], r#"{"not": "an array"}"#);
    let results = pm.send_batch(&[msg.clone(), msg.clone()]).await.unwrap();
    for r in &results {
        assert_eq!(r.as_ref().unwrap_err().kind(), ErrorKind::Permanent);
    }
}
