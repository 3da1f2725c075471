//! Signature verification per scheme, 1 KiB and 64 KiB bodies, next to the
//! `svix` crate verifying the same Standard Webhooks message on the same run.
//! Every ratio is svix's time / our time (above 1.0: we are faster).

use std::sync::Arc;

use flextime_benches::{compare, keep};
use flextime_webhooks::verify::{
    GitHub, Notion, Shopify, Slack, StandardWebhooks, Stripe, Tolerance, Verifier, WebhookRequest,
};
use http::{HeaderMap, Method, Uri};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn headers(pairs: &[(&str, String)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(
            http::HeaderName::from_bytes(k.as_bytes()).expect("header name"),
            v.parse().expect("header value"),
        );
    }
    h
}

fn main() {
    println!("flextime-webhooks verification benchmarks");
    let svix = svix::webhooks::Webhook::new(SECRET).expect("svix secret");
    for size in [1024usize, 64 * 1024] {
        let body: Vec<u8> = format!(
            r#"{{"type":"invoice.paid","pad":"{}"}}"#,
            "x".repeat(size.saturating_sub(32))
        )
        .into_bytes();
        let now = chrono_now();
        let sw = StandardWebhooks::new([SECRET.into()], Tolerance::DEFAULT).expect("secret");
        let sw_headers = headers(&[
            ("webhook-id", "msg_bench".into()),
            ("webhook-timestamp", now.to_string()),
            ("webhook-signature", sw.sign("msg_bench", now, &body)),
        ]);
        let svix_headers = headers(&[
            ("svix-id", "msg_bench".into()),
            ("svix-timestamp", now.to_string()),
            ("svix-signature", sw.sign("msg_bench", now, &body)),
        ]);
        svix.verify(&body, &svix_headers)
            .expect("svix accepts the message");

        let stripe = Stripe::new(["whsec_stripe".into()], Tolerance::DEFAULT).expect("secret");
        let slack = Slack::new(["slack".into()], Tolerance::DEFAULT).expect("secret");
        let github = GitHub::new(["gh".into()]).expect("secret");
        let shopify = Shopify::new(["sh".into()]).expect("secret");
        let notion = Notion::new(["no".into()]).expect("secret");
        let cases: Vec<(&str, Arc<dyn Verifier>, HeaderMap)> = vec![
            (
                "standard-webhooks",
                Arc::new(sw.clone()),
                sw_headers.clone(),
            ),
            (
                "stripe",
                Arc::new(stripe.clone()),
                headers(&[("stripe-signature", stripe.sign(now, &body))]),
            ),
            (
                "slack",
                Arc::new(slack.clone()),
                headers(&[
                    ("x-slack-request-timestamp", now.to_string()),
                    ("x-slack-signature", slack.sign(now, &body)),
                ]),
            ),
            (
                "github",
                Arc::new(github.clone()),
                headers(&[("x-hub-signature-256", github.sign(&body))]),
            ),
            (
                "shopify",
                Arc::new(shopify.clone()),
                headers(&[("x-shopify-hmac-sha256", shopify.sign(&body))]),
            ),
            (
                "notion",
                Arc::new(notion.clone()),
                headers(&[("x-notion-signature", notion.sign(&body))]),
            ),
        ];
        let uri = Uri::from_static("/hooks");
        let iters = if size > 4096 { 2_000 } else { 20_000 };
        for (name, verifier, h) in &cases {
            let req = WebhookRequest {
                method: &Method::POST,
                uri: &uri,
                headers: h,
                body: &body,
            };
            verifier.verify(&req, now).expect("valid");
            compare(
                &format!("{name} {} KiB vs svix", size / 1024),
                iters,
                || keep(verifier.verify(&req, now).is_ok()),
                || keep(svix.verify(&body, &svix_headers).is_ok()),
            );
        }
    }
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}
