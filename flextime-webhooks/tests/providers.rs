//! Known-answer tests from each provider's own documentation, plus sign ->
//! verify round trips and the refusals every scheme must produce.

use std::sync::Arc;

use flextime_webhooks::verify::{
    Encoding, GenericHmac, GitHub, HmacAlgorithm, Notion, Rejection, Shopify, Slack, Stripe,
    Tolerance, Twilio, Verifier, WebhookRequest,
};
use http::{HeaderMap, Method, Uri};

fn req<'a>(uri: &'a Uri, headers: &'a HeaderMap, body: &'a [u8]) -> WebhookRequest<'a> {
    WebhookRequest {
        method: &Method::POST,
        uri,
        headers,
        body,
    }
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    h
}

/// GitHub's "Validating webhook deliveries" example: secret "It's a Secret
/// to Everybody", payload "Hello, World!".
#[test]
fn github_documented_example() {
    let v = GitHub::new(["It's a Secret to Everybody".into()]).unwrap();
    let expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    assert_eq!(v.sign(b"Hello, World!"), expected);
    let h = headers(&[
        ("X-Hub-Signature-256", expected),
        ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ("X-GitHub-Event", "issues"),
    ]);
    let uri = Uri::from_static("/hooks/github");
    let out = v.verify(&req(&uri, &h, b"Hello, World!"), 0).unwrap();
    assert_eq!(
        out.idempotency_key.as_deref(),
        Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")
    );
    assert_eq!(out.event_type.as_deref(), Some("issues"));
    assert_eq!(
        v.verify(&req(&uri, &h, b"Hello, World?"), 0).unwrap_err(),
        Rejection::SignatureMismatch
    );
}

/// Slack's "Verifying requests from Slack" worked example.
#[test]
fn slack_documented_example() {
    let secret = "8f742231b10e8888abcd99yyyzzz85a5";
    let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    let expected = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
    let v = Slack::new([secret.into()], Tolerance::DEFAULT).unwrap();
    assert_eq!(v.sign(1_531_420_618, body.as_bytes()), expected);
    let h = headers(&[
        ("X-Slack-Request-Timestamp", "1531420618"),
        ("X-Slack-Signature", expected),
    ]);
    let uri = Uri::from_static("/hooks/slack");
    assert!(
        v.verify(&req(&uri, &h, body.as_bytes()), 1_531_420_618 + 60)
            .is_ok()
    );
    assert_eq!(
        v.verify(&req(&uri, &h, body.as_bytes()), 1_531_420_618 + 301)
            .unwrap_err(),
        Rejection::TimestampTooOld
    );
}

/// Twilio's "Webhooks security" example: auth token 12345, the documented
/// URL and form parameters.
#[test]
fn twilio_documented_example() {
    let params = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+12349013030"),
        ("Digits", "1234"),
        ("From", "+12349013030"),
        ("To", "+18005551212"),
    ];
    let expected = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";
    let v = Twilio::new(["12345".into()], "https://mycompany.com/myapp.php").unwrap();
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    assert_eq!(
        v.sign("https://mycompany.com/myapp.php?foo=1&bar=2", &owned),
        expected
    );
    // The form body in another order: the signature sorts parameters.
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().rev())
        .finish();
    let h = headers(&[
        ("X-Twilio-Signature", expected),
        ("I-Twilio-Idempotency-Token", "idem-1"),
    ]);
    // Behind a proxy the request arrives at another host and path; only the
    // query string is taken from it.
    let uri = Uri::from_static("/internal/twilio?foo=1&bar=2");
    let out = v.verify(&req(&uri, &h, body.as_bytes()), 0).unwrap();
    assert_eq!(out.idempotency_key.as_deref(), Some("idem-1"));
    // The same signature made over the URL with :443 also verifies.
    let with_port = Twilio::new(["12345".into()], "https://mycompany.com:443/myapp.php").unwrap();
    assert!(with_port.verify(&req(&uri, &h, body.as_bytes()), 0).is_ok());
    let tampered = body.replace("1234", "9999");
    assert_eq!(
        v.verify(&req(&uri, &h, tampered.as_bytes()), 0)
            .unwrap_err(),
        Rejection::SignatureMismatch
    );
}

/// Twilio JSON bodies: the URL carries bodySHA256 and the signature covers the URL alone.
#[test]
fn twilio_json_body_sha256() {
    use sha2::Digest;
    let body = br#"{"event":"status","sid":"SM1"}"#;
    let sha = hex::encode(sha2::Sha256::digest(body));
    let v = Twilio::new(["tok".into()], "https://example.com/hooks/twilio").unwrap();
    let url = format!("https://example.com/hooks/twilio?bodySHA256={sha}");
    let sig = v.sign(&url, &[]);
    let h = headers(&[("X-Twilio-Signature", &sig)]);
    let uri: Uri = format!("/hooks/twilio?bodySHA256={sha}").parse().unwrap();
    assert!(v.verify(&req(&uri, &h, body), 0).is_ok());
    assert_eq!(
        v.verify(&req(&uri, &h, br#"{"event":"other"}"#), 0)
            .unwrap_err(),
        Rejection::SignatureMismatch
    );
}

#[test]
fn stripe_header_rules() {
    let secret = "whsec_test_secret";
    let v = Stripe::new([secret.into(), "whsec_old".into()], Tolerance::DEFAULT).unwrap();
    let body = br#"{"id":"evt_1","type":"invoice.paid","data":{"object":{}}}"#;
    let ts = 1_700_000_000;
    let header = Stripe::new([secret.into()], Tolerance::DEFAULT)
        .unwrap()
        .sign(ts, body);
    // v0 entries and unknown schemes are ignored; an extra bad v1 does not hurt.
    let full = format!(
        "{header},v1=deadbeef,v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39"
    );
    let h = headers(&[("Stripe-Signature", &full)]);
    let uri = Uri::from_static("/hooks/stripe");
    let out = v.verify(&req(&uri, &h, body), ts + 10).unwrap();
    assert_eq!(out.idempotency_key.as_deref(), Some("evt_1"));
    assert_eq!(out.event_type.as_deref(), Some("invoice.paid"));
    assert_eq!(
        v.verify(&req(&uri, &h, body), ts + 301).unwrap_err(),
        Rejection::TimestampTooOld
    );
    for (value, why) in [
        ("t=abc,v1=00", "bad t"),
        ("v1=00", "no t"),
        (&format!("t={ts}"), "no v1"),
        ("garbage", "no pairs"),
    ] {
        let h = headers(&[("Stripe-Signature", value)]);
        assert!(
            matches!(
                v.verify(&req(&uri, &h, body), ts),
                Err(Rejection::MalformedHeader { .. })
            ),
            "{why}"
        );
    }
    assert_eq!(
        v.verify(&req(&uri, &HeaderMap::new(), body), ts)
            .unwrap_err(),
        Rejection::MissingHeader("stripe-signature".into())
    );
}

#[test]
fn shopify_notion_and_generic_round_trip_and_refuse_tampering() {
    let uri = Uri::from_static("/h");
    let body = br#"{"id":"evt_9","type":"page.created"}"#;

    let shopify = Shopify::new(["shpss_secret".into()]).unwrap();
    let h = headers(&[
        ("X-Shopify-Hmac-Sha256", &shopify.sign(body)),
        ("X-Shopify-Topic", "orders/create"),
        (
            "X-Shopify-Webhook-Id",
            "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        ),
    ]);
    let out = shopify.verify(&req(&uri, &h, body), 0).unwrap();
    assert_eq!(out.event_type.as_deref(), Some("orders/create"));
    assert!(shopify.verify(&req(&uri, &h, b"{}"), 0).is_err());

    let notion = Notion::new(["secret_verification_token".into()]).unwrap();
    let h = headers(&[("X-Notion-Signature", &notion.sign(body))]);
    let out = notion.verify(&req(&uri, &h, body), 0).unwrap();
    assert_eq!(out.idempotency_key.as_deref(), Some("evt_9"));
    assert_eq!(out.event_type.as_deref(), Some("page.created"));
    let h = headers(&[("X-Notion-Signature", "md5=abc")]);
    assert!(matches!(
        notion.verify(&req(&uri, &h, body), 0),
        Err(Rejection::MalformedHeader { .. })
    ));

    let generic = GenericHmac::new("X-Sig", vec!["k".into()])
        .unwrap()
        .with_algorithm(HmacAlgorithm::Sha512)
        .with_encoding(Encoding::Base64)
        .with_prefix("sha512=")
        .with_id_header("X-Id")
        .with_timestamp("X-Ts", "{id}:{timestamp}:{body}", Tolerance::DEFAULT)
        .unwrap();
    let sig = generic.sign(1_000, "abc", body);
    let h = headers(&[("X-Sig", &sig), ("X-Ts", "1000"), ("X-Id", "abc")]);
    let out = generic.verify(&req(&uri, &h, body), 1_100).unwrap();
    assert_eq!(out.idempotency_key.as_deref(), Some("abc"));
    let h2 = headers(&[("X-Sig", &sig), ("X-Ts", "1000"), ("X-Id", "abd")]);
    assert_eq!(
        generic.verify(&req(&uri, &h2, body), 1_100).unwrap_err(),
        Rejection::SignatureMismatch
    );
    assert_eq!(
        generic.verify(&req(&uri, &h, body), 2_000).unwrap_err(),
        Rejection::TimestampTooOld
    );
}

/// Secrets rotate: a signature by either of two active secrets verifies.
#[test]
fn rotation_accepts_any_active_secret() {
    let uri = Uri::from_static("/h");
    let body = b"payload";
    let old = GitHub::new(["old".into()]).unwrap();
    let new = GitHub::new(["new".into()]).unwrap();
    let both: Arc<dyn Verifier> = Arc::new(GitHub::new(["new".into(), "old".into()]).unwrap());
    for signer in [&old, &new] {
        let h = headers(&[("X-Hub-Signature-256", &signer.sign(body))]);
        assert!(both.verify(&req(&uri, &h, body), 0).is_ok());
    }
    let stranger = GitHub::new(["stranger".into()]).unwrap();
    let h = headers(&[("X-Hub-Signature-256", &stranger.sign(body))]);
    assert_eq!(
        both.verify(&req(&uri, &h, body), 0).unwrap_err(),
        Rejection::SignatureMismatch
    );
}

#[test]
fn empty_secrets_and_bad_config_are_typed_errors() {
    assert!(GitHub::new(["".into()]).is_err());
    assert!(Stripe::new(Vec::<flextime_core::Secret>::new(), Tolerance::DEFAULT).is_err());
    assert!(Twilio::new(["t".into()], "not a url").is_err());
    assert!(Twilio::new(["t".into()], "https://x.com/a?b=c").is_err());
    assert!(GenericHmac::new("bad header\n", vec!["k".into()]).is_err());
    assert!(
        GenericHmac::new("x", vec!["k".into()])
            .unwrap()
            .with_template("{timestamp}.{body}")
            .is_err()
    );
}
