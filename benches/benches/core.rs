//! flextime-core against plain serde_json on the same inputs.
//!
//! - parsing a structured-mode CloudEvent into an `Envelope` vs into a
//!   `serde_json::Value`;
//! - emitting structured JSON from an `Envelope` vs serialising the same
//!   event from a `serde_json::Value`;
//! - applying a declarative field mapping vs the same edits written by hand.

use flextime_benches::{compare, keep};
use flextime_core::Envelope;
use flextime_core::transform::FieldMapping;
use serde_json::{Value, json};

fn main() {
    println!(
        "flextime-core benchmarks ({} cores)",
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    let event = json!({
        "specversion": "1.0",
        "id": "0192d1f0-8a4e-7c3b-9f61-2f0e5d1a7b9c",
        "source": "https://flextime.example/bookings",
        "type": "booking.confirmed",
        "subject": "booking/123",
        "time": "2026-11-25T10:00:00Z",
        "datacontenttype": "application/json",
        "tenant": "acme",
        "data": {
            "booking_id": "123",
            "title": "Consultation",
            "start": "2026-12-01T09:00:00+01:00",
            "end": "2026-12-01T10:00:00+01:00",
            "attendees": [{"email": "a@example.com"}, {"email": "b@example.com"}]
        }
    });
    let bytes = serde_json::to_vec(&event).expect("serialize");

    compare(
        "envelope parse (structured JSON)",
        20_000,
        || keep(Envelope::from_json_slice(&bytes).expect("parse")),
        || keep(serde_json::from_slice::<Value>(&bytes).expect("parse")),
    );

    let envelope = Envelope::from_json_slice(&bytes).expect("parse");
    compare(
        "envelope emit (structured JSON)",
        20_000,
        || keep(envelope.to_json_bytes().expect("emit")),
        || keep(serde_json::to_vec(&event).expect("serialize")),
    );

    let mapping = FieldMapping::from_toml_str(
        r#"
        [[rule]]
        op = "rename"
        from = "title"
        to = "summary"
        [[rule]]
        op = "default"
        to = "status"
        value = "confirmed"
        [[rule]]
        op = "drop"
        field = "attendees"
        "#,
    )
    .expect("mapping");
    let data = event["data"].clone();
    compare(
        "field mapping (3 rules) vs hand-written",
        50_000,
        || keep(mapping.apply(data.clone()).expect("apply")),
        || {
            let mut d = data.clone();
            if let Some(obj) = d.as_object_mut() {
                if let Some(t) = obj.remove("title") {
                    obj.insert("summary".into(), t);
                }
                obj.entry("status").or_insert(json!("confirmed"));
                obj.remove("attendees");
            }
            keep(d);
        },
    );
}
