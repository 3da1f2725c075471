// Shared by the fuzz target (fuzz/fuzz_targets/verify_headers.rs) and the
// corpus regression test (tests/fuzz_corpus.rs).

use arbitrary::Arbitrary;
use flextime_webhooks::verify::{
    GenericHmac, GitHub, Notion, Shopify, Slack, StandardWebhooks, Stripe, Tolerance, Twilio,
    Verifier, WebhookRequest,
};

/// One fuzz input.
#[derive(Debug, Arbitrary)]
pub struct Input {
    scheme: u8,
    values: [String; 3],
    query: String,
    body: Vec<u8>,
    now: i64,
}

const NAMES: &[&[&str]] = &[
    &["webhook-id", "webhook-timestamp", "webhook-signature"],
    &["svix-id", "svix-timestamp", "svix-signature"],
    &["stripe-signature", "x-unused", "x-unused-2"],
    &["x-slack-request-timestamp", "x-slack-signature", "x-unused"],
    &["x-hub-signature-256", "x-github-delivery", "x-github-event"],
    &[
        "x-twilio-signature",
        "i-twilio-idempotency-token",
        "x-unused",
    ],
    &[
        "x-shopify-hmac-sha256",
        "x-shopify-topic",
        "x-shopify-webhook-id",
    ],
    &["x-notion-signature", "x-unused", "x-unused-2"],
    &["x-sig", "x-ts", "x-id"],
];

/// Decode `data` as libFuzzer does and run every check on it.
pub fn check(data: &[u8]) {
    let Ok(input) = Input::arbitrary_take_rest(arbitrary::Unstructured::new(data)) else {
        return;
    };
    let verifiers: Vec<Box<dyn Verifier>> = vec![
        Box::new(
            StandardWebhooks::new(
                ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()],
                Tolerance::DEFAULT,
            )
            .unwrap(),
        ),
        Box::new(
            StandardWebhooks::new(
                ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()],
                Tolerance::DISABLED,
            )
            .unwrap(),
        ),
        Box::new(Stripe::new(["whsec_x".into()], Tolerance::DEFAULT).unwrap()),
        Box::new(Slack::new(["s".into()], Tolerance::DEFAULT).unwrap()),
        Box::new(GitHub::new(["s".into()]).unwrap()),
        Box::new(Twilio::new(["s".into()], "https://example.com/t").unwrap()),
        Box::new(Shopify::new(["s".into()]).unwrap()),
        Box::new(Notion::new(["s".into()]).unwrap()),
        Box::new(
            GenericHmac::new("x-sig", vec!["s".into()])
                .unwrap()
                .with_prefix("sha256=")
                .with_id_header("x-id")
                .with_timestamp("x-ts", "{id}.{timestamp}.{body}", Tolerance::DEFAULT)
                .unwrap(),
        ),
    ];
    let which = usize::from(input.scheme) % verifiers.len();
    let names = NAMES[which];
    let mut headers = http::HeaderMap::new();
    for (name, value) in names.iter().zip(&input.values) {
        if let Ok(v) = http::HeaderValue::from_str(value) {
            headers.insert(*name, v);
        }
    }
    let uri: http::Uri = format!("/t?{}", input.query)
        .parse()
        .unwrap_or_else(|_| http::Uri::from_static("/t"));
    let request = WebhookRequest {
        method: &http::Method::POST,
        uri: &uri,
        headers: &headers,
        body: &input.body,
    };
    // A forged request is one whose signature we did not make: random
    // inputs essentially never hit a valid HMAC, so acceptance means a bug.
    assert!(
        verifiers[which].verify(&request, input.now).is_err(),
        "accepted an unsigned request: {input:?}"
    );
}
