//! Property tests: whatever the body, id and timestamp, signing then
//! verifying succeeds, and flipping any single bit of the body, the id, the
//! timestamp or the signature makes verification fail.

use flextime_webhooks::verify::{
    GitHub, Notion, Shopify, Slack, StandardWebhooks, Stripe, Tolerance, Verifier, WebhookRequest,
};
use http::{HeaderMap, Method, Uri};
use proptest::prelude::*;

const NOW: i64 = 1_700_000_000;

fn verify(v: &dyn Verifier, h: &HeaderMap, body: &[u8]) -> bool {
    let uri = Uri::from_static("/h");
    v.verify(
        &WebhookRequest {
            method: &Method::POST,
            uri: &uri,
            headers: h,
            body,
        },
        NOW,
    )
    .is_ok()
}

fn flip(bytes: &[u8], bit: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let i = bit % (out.len() * 8);
    out[i / 8] ^= 1 << (i % 8);
    out
}

/// Flip a bit of an ASCII header value, keeping it a valid header value.
/// Returns None when the flip would produce an unusable byte.
fn flip_text(text: &str, bit: usize) -> Option<String> {
    let flipped = flip(text.as_bytes(), bit);
    let s = String::from_utf8(flipped).ok()?;
    (s.bytes().all(|b| (0x21..0x7f).contains(&b)) && s != text).then_some(s)
}

fn header(pairs: &[(&str, String)]) -> Option<HeaderMap> {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(
            http::HeaderName::from_bytes(k.as_bytes()).ok()?,
            v.parse().ok()?,
        );
    }
    Some(h)
}

proptest! {
    #[test]
    fn standard_webhooks(body in proptest::collection::vec(any::<u8>(), 0..512),
                         id in "[a-zA-Z0-9_]{1,40}", skew in -299i64..299, bit in any::<usize>()) {
        let v = StandardWebhooks::new(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()], Tolerance::DEFAULT).unwrap();
        let ts = NOW + skew;
        let sig = v.sign(&id, ts, &body);
        let good = header(&[("webhook-id", id.clone()), ("webhook-timestamp", ts.to_string()), ("webhook-signature", sig.clone())]).unwrap();
        prop_assert!(verify(&v, &good, &body));
        if !body.is_empty() {
            prop_assert!(!verify(&v, &good, &flip(&body, bit)));
        }
        if let Some(bad_id) = flip_text(&id, bit) {
            let h = header(&[("webhook-id", bad_id), ("webhook-timestamp", ts.to_string()), ("webhook-signature", sig.clone())]).unwrap();
            prop_assert!(!verify(&v, &h, &body));
        }
        if let Some(bad_ts) = flip_text(&ts.to_string(), bit) {
            let h = header(&[("webhook-id", id.clone()), ("webhook-timestamp", bad_ts), ("webhook-signature", sig.clone())]).unwrap();
            prop_assert!(!verify(&v, &h, &body));
        }
        if let Some(bad_sig) = flip_text(&sig, bit) {
            if let Some(h) = header(&[("webhook-id", id), ("webhook-timestamp", ts.to_string()), ("webhook-signature", bad_sig)]) {
                prop_assert!(!verify(&v, &h, &body));
            }
        }
    }

    #[test]
    fn stripe(body in proptest::collection::vec(any::<u8>(), 1..512), skew in -299i64..299, bit in any::<usize>()) {
        let v = Stripe::new(["whsec_abc".into()], Tolerance::DEFAULT).unwrap();
        let ts = NOW + skew;
        let sig = v.sign(ts, &body);
        let good = header(&[("stripe-signature", sig.clone())]).unwrap();
        prop_assert!(verify(&v, &good, &body));
        prop_assert!(!verify(&v, &good, &flip(&body, bit)));
        if let Some(bad) = flip_text(&sig, bit) {
            if let Some(h) = header(&[("stripe-signature", bad)]) {
                prop_assert!(!verify(&v, &h, &body));
            }
        }
    }

    #[test]
    fn slack(body in proptest::collection::vec(any::<u8>(), 1..512), skew in -299i64..299, bit in any::<usize>()) {
        let v = Slack::new(["slack-secret".into()], Tolerance::DEFAULT).unwrap();
        let ts = NOW + skew;
        let sig = v.sign(ts, &body);
        let good = header(&[("x-slack-request-timestamp", ts.to_string()), ("x-slack-signature", sig.clone())]).unwrap();
        prop_assert!(verify(&v, &good, &body));
        prop_assert!(!verify(&v, &good, &flip(&body, bit)));
        if let Some(bad_ts) = flip_text(&ts.to_string(), bit) {
            let h = header(&[("x-slack-request-timestamp", bad_ts), ("x-slack-signature", sig)]).unwrap();
            prop_assert!(!verify(&v, &h, &body));
        }
    }

    #[test]
    fn body_only_schemes(body in proptest::collection::vec(any::<u8>(), 1..512), bit in any::<usize>()) {
        let github = GitHub::new(["gh".into()]).unwrap();
        let shopify = Shopify::new(["sh".into()]).unwrap();
        let notion = Notion::new(["no".into()]).unwrap();
        let cases: [(&dyn Verifier, &str, String); 3] = [
            (&github, "x-hub-signature-256", github.sign(&body)),
            (&shopify, "x-shopify-hmac-sha256", shopify.sign(&body)),
            (&notion, "x-notion-signature", notion.sign(&body)),
        ];
        for (v, name, sig) in cases {
            let good = header(&[(name, sig.clone())]).unwrap();
            prop_assert!(verify(v, &good, &body), "{}", v.scheme());
            prop_assert!(!verify(v, &good, &flip(&body, bit)), "{}", v.scheme());
            if let Some(bad) = flip_text(&sig, bit) {
                if let Some(h) = header(&[(name, bad)]) {
                    prop_assert!(!verify(v, &h, &body), "{}", v.scheme());
                }
            }
        }
    }

    /// No header value or body makes a verifier panic.
    #[test]
    fn arbitrary_headers_never_panic(value in "\\PC{0,200}", body in proptest::collection::vec(any::<u8>(), 0..64)) {
        let verifiers: Vec<Box<dyn Verifier>> = vec![
            Box::new(StandardWebhooks::new(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()], Tolerance::DEFAULT).unwrap()),
            Box::new(Stripe::new(["s".into()], Tolerance::DEFAULT).unwrap()),
            Box::new(Slack::new(["s".into()], Tolerance::DEFAULT).unwrap()),
            Box::new(GitHub::new(["s".into()]).unwrap()),
            Box::new(Shopify::new(["s".into()]).unwrap()),
            Box::new(Notion::new(["s".into()]).unwrap()),
        ];
        let names = ["webhook-id", "webhook-timestamp", "webhook-signature", "stripe-signature",
            "x-slack-signature", "x-slack-request-timestamp", "x-hub-signature-256",
            "x-shopify-hmac-sha256", "x-notion-signature"];
        if let Ok(hv) = http::HeaderValue::from_str(&value) {
            let mut h = HeaderMap::new();
            for n in names {
                h.insert(n, hv.clone());
            }
            for v in &verifiers {
                let _ = verify(v.as_ref(), &h, &body);
            }
        }
    }
}
