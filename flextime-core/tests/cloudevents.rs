//! CloudEvents 1.0 conformance of `flextime_core::envelope`: the spec examples,
//! the error cases, and property tests of every mode's round trip.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bytes::Bytes;
use chrono::{DateTime, FixedOffset, Utc};
use flextime_core::envelope::{
    AmqpMessage, AmqpValue, Data, Envelope, ExtensionValue, KafkaRecord, decode_header_value,
    encode_header_value,
};
use flextime_core::{Error, ErrorKind};
use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use serde_json::{Value, json};

// ----- helpers ------------------------------------------------------------------

fn data_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/cloudevents")
        .join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(data_path(name)).unwrap_or_else(|e| panic!("reading {name}: {e}"))
}

/// Drop `null` members (the JSON format treats them as absent), recursively
/// only at the top level and in batch arrays.
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// Assert that `err` is an `InvalidInput` error whose message names `attr` in backticks.
fn assert_names(err: &Error, attr: &str) {
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(
        err.message().contains(&format!("`{attr}`")),
        "error should name `{attr}`: {err}"
    );
}

fn json_err(value: &Value) -> Error {
    Envelope::from_json_value(value.clone()).expect_err("must be rejected")
}

/// A minimal valid event as JSON, to break one thing at a time.
fn minimal() -> Value {
    json!({
        "specversion": "1.0",
        "id": "1",
        "source": "/s",
        "type": "t"
    })
}

fn with(mut value: Value, key: &str, member: Value) -> Value {
    value[key] = member;
    value
}

fn without(mut value: Value, key: &str) -> Value {
    value.as_object_mut().unwrap().remove(key);
    value
}

/// Parse the spec's HTTP message layout: start line, headers, blank line, body.
fn parse_http(text: &str) -> (HeaderMap, Vec<u8>) {
    let (head, body) = text.split_once("\n\n").expect("blank line after headers");
    let mut headers = HeaderMap::new();
    for line in head.lines().skip(1) {
        let (name, value) = line.split_once(": ").expect("header line");
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    (headers, body.as_bytes().to_vec())
}

/// Parse the spec's Kafka/AMQP message layout: `---- title ----` section
/// markers, `name: value` lines, and a free-form body section.
fn parse_sections(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut sections = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("---") {
            let title = trimmed.trim_matches('-').trim();
            if !title.is_empty() {
                title.clone_into(&mut current);
            }
            continue;
        }
        sections
            .entry(current.clone())
            .or_insert_with(Vec::new)
            .push(line.to_owned());
    }
    sections
}

fn section_pairs(sections: &BTreeMap<String, Vec<String>>, title: &str) -> Vec<(String, String)> {
    sections
        .get(title)
        .map(|lines| {
            lines
                .iter()
                .filter(|l| !l.trim().is_empty())
                .map(|l| {
                    let (n, v) = l.split_once(": ").expect("name: value");
                    (n.trim().to_owned(), v.trim().trim_matches('"').to_owned())
                })
                .collect()
        })
        .unwrap_or_default()
}

fn section_body(sections: &BTreeMap<String, Vec<String>>, title: &str) -> Vec<u8> {
    sections[title].join("\n").trim().as_bytes().to_vec()
}

fn parse_kafka(text: &str) -> KafkaRecord {
    let sections = parse_sections(text);
    let key = section_pairs(&sections, "key")
        .into_iter()
        .find(|(n, _)| n == "Key")
        .map(|(_, v)| v.into_bytes());
    let headers = section_pairs(&sections, "headers")
        .into_iter()
        .map(|(n, v)| (n, v.into_bytes()))
        .collect();
    KafkaRecord {
        key,
        headers,
        value: section_body(&sections, "value"),
    }
}

fn parse_amqp(text: &str) -> AmqpMessage {
    let sections = parse_sections(text);
    let content_type = section_pairs(&sections, "properties")
        .into_iter()
        .find(|(n, _)| n == "content-type")
        .map(|(_, v)| v);
    let application_properties = section_pairs(&sections, "application-properties")
        .into_iter()
        .map(|(n, v)| (n, AmqpValue::String(v)))
        .collect();
    AmqpMessage {
        content_type,
        application_properties,
        body: section_body(&sections, "payload"),
    }
}

/// Every way out and back in that keeps an envelope exactly.
fn assert_structured_round_trip(event: &Envelope) {
    let bytes = event.to_json_bytes().unwrap();
    assert_eq!(&Envelope::from_json_slice(&bytes).unwrap(), event);
    let value = event.to_json_value().unwrap();
    let again = Envelope::from_json_value(value.clone()).unwrap();
    assert_eq!(again.to_json_value().unwrap(), value);
    let via_serde: Envelope = serde_json::from_slice(&serde_json::to_vec(event).unwrap()).unwrap();
    assert_eq!(&via_serde, event);
}

/// What an envelope looks like after untyped headers (HTTP, Kafka): every
/// extension as its canonical string.
fn stringly(event: &Envelope) -> Envelope {
    let mut out = event.clone();
    for (name, value) in event.extensions() {
        out.set_extension(name.clone(), value.clone().into_canonical_string_value())
            .unwrap();
    }
    out
}

fn time(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

// ----- spec examples: JSON format -------------------------------------------------

fn json_example(name: &str) -> (Value, Envelope) {
    let original: Value = serde_json::from_str(&read(name)).unwrap();
    let event = Envelope::from_json_slice(read(name).as_bytes()).unwrap();
    // emit -> JSON value equal to the original (nulls are absent members)
    assert_eq!(
        event.to_json_value().unwrap(),
        without_nulls(&original),
        "{name}"
    );
    assert_structured_round_trip(&event);
    (original, event)
}

#[test]
fn core_spec_example() {
    let (_, event) = json_example("core-spec-example.json");
    assert_eq!(event.id(), "A234-1234-1234");
    assert_eq!(event.source(), "https://github.com/cloudevents/spec/pull");
    assert_eq!(event.event_type(), "com.github.pull_request.opened");
    assert_eq!(event.subject(), Some("123"));
    assert_eq!(event.time(), Some(time("2018-04-05T17:31:00Z")));
    assert_eq!(event.datacontenttype(), Some("text/xml"));
    assert_eq!(
        event.data(),
        Some(&Data::Text("<much wow=\"xml\"/>".to_owned()))
    );
    assert_eq!(
        event.extension("comexampleextension1"),
        Some(&ExtensionValue::String("value".into()))
    );
    assert_eq!(
        event.extension("comexampleothervalue"),
        Some(&ExtensionValue::Integer(5))
    );
}

#[test]
fn json_format_data_base64_example() {
    let (_, event) = json_example("json-format-data-base64.json");
    let expected = b"\x80\x01\x00\x01\x00\x00\x00\x05hello\x00\x00\x00\x00\x0b";
    assert_eq!(
        event.data(),
        Some(&Data::Binary(Bytes::from_static(expected)))
    );
    assert_eq!(
        event.datacontenttype(),
        Some("application/vnd.apache.thrift.binary")
    );
}

#[test]
fn json_format_data_json_example() {
    #[derive(serde::Deserialize)]
    #[allow(non_snake_case)]
    struct AppInfo {
        appinfoA: String,
        appinfoB: u32,
        appinfoC: bool,
    }
    let (original, event) = json_example("json-format-data-json.json");
    assert_eq!(event.subject(), None, "null subject is absent");
    assert_eq!(event.data(), Some(&Data::Json(original["data"].clone())));
    let info: AppInfo = event.data_as().unwrap();
    assert_eq!(
        (info.appinfoA.as_str(), info.appinfoB, info.appinfoC),
        ("abc", 123, true)
    );
}

#[test]
fn json_format_data_xml_example() {
    let (_, event) = json_example("json-format-data-xml.json");
    assert_eq!(
        event.data(),
        Some(&Data::Text("<much wow=\"xml\"/>".to_owned()))
    );
    assert_eq!(event.extension("unsetextension"), None);
}

#[test]
fn json_batch_example() {
    let text = read("json-format-batch.json");
    let events = Envelope::batch_from_json_slice(text.as_bytes()).unwrap();
    assert_eq!(events.len(), 3);
    assert_eq!(
        events.iter().map(Envelope::id).collect::<Vec<_>>(),
        ["A234-1234-1234", "C234-1234-1234", "D234-1234-1234"]
    );
    assert!(matches!(events[0].data(), Some(Data::Binary(_))));
    assert!(matches!(events[1].data(), Some(Data::Json(_))));
    assert_eq!(events[2].data(), None);
    assert_eq!(events[2].time(), None);
    let emitted = Envelope::batch_to_json_bytes(&events).unwrap();
    let emitted_value: Value = serde_json::from_slice(&emitted).unwrap();
    let original: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(emitted_value, original);
    assert_eq!(Envelope::batch_from_json_slice(&emitted).unwrap(), events);
    assert!(Envelope::batch_from_json_slice(b"[]").unwrap().is_empty());
}

// ----- spec examples: HTTP binding -------------------------------------------------

#[test]
fn http_binary_example() {
    let (headers, body) = parse_http(&read("http-binary.http"));
    let event = Envelope::from_http(&headers, &body).unwrap();
    assert_eq!(event.id(), "1234-1234-1234");
    assert_eq!(event.source(), "/mycontext/subcontext");
    assert_eq!(event.event_type(), "com.example.someevent");
    assert_eq!(event.time(), Some(time("2018-04-05T03:56:24Z")));
    // the percent-encoding example of section 3.1.3.2
    assert_eq!(event.subject(), Some("Euro € 😀"));
    assert_eq!(
        event.datacontenttype(),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(
        event.data(),
        Some(&Data::Json(json!({"appinfoA": "abc", "appinfoB": 123})))
    );
    assert_eq!(
        event.extension("comexampleextension1"),
        Some(&ExtensionValue::String("value".into()))
    );

    let (headers2, body2) = event.to_http_binary();
    assert_eq!(headers2["ce-subject"], "Euro%20%E2%82%AC%20%F0%9F%98%80");
    assert_eq!(headers2["ce-specversion"], "1.0");
    assert_eq!(headers2["content-type"], "application/json; charset=utf-8");
    assert_eq!(Envelope::from_http(&headers2, &body2).unwrap(), event);
    assert_structured_round_trip(&event);
}

#[test]
fn http_binary_response_example() {
    let (headers, body) = parse_http(&read("http-binary-response.http"));
    let event = Envelope::from_http_binary(&headers, &body).unwrap();
    assert_eq!(
        event.data(),
        Some(&Data::Json(json!({"appinfoA": "reply"})))
    );
    let (h, b) = event.to_http_binary();
    assert_eq!(Envelope::from_http_binary(&h, &b).unwrap(), event);
}

#[test]
fn http_structured_example() {
    let (headers, body) = parse_http(&read("http-structured.http"));
    let event = Envelope::from_http(&headers, &body).unwrap();
    assert_eq!(event.id(), "1234-1234-1234");
    assert_eq!(
        event.data(),
        Some(&Data::Json(json!({"appinfoA": "abc", "appinfoB": 123})))
    );
    let (h, b) = event.to_http_structured().unwrap();
    assert_eq!(
        h["content-type"],
        "application/cloudevents+json; charset=utf-8"
    );
    assert_eq!(Envelope::from_http(&h, &b).unwrap(), event);
    // the same event read as binary mode has no ce- headers: not an event
    assert_names(
        &Envelope::from_http_binary(&HeaderMap::new(), &b).unwrap_err(),
        "specversion",
    );
}

#[test]
fn percent_encoding_spec_example() {
    assert_eq!(
        encode_header_value("Euro € 😀"),
        "Euro%20%E2%82%AC%20%F0%9F%98%80"
    );
    assert_eq!(
        decode_header_value(b"Euro%20%E2%82%AC%20%F0%9F%98%80").unwrap(),
        "Euro € 😀"
    );
    assert_eq!(encode_header_value("a\"b%c\td"), "a%22b%25c%09d");
    assert_eq!(decode_header_value(b"%e2%82%ac").unwrap(), "€");
}

// ----- spec examples: Kafka binding ------------------------------------------------

#[test]
fn kafka_binary_example() {
    let record = parse_kafka(&read("kafka-binary.txt"));
    let event = Envelope::from_kafka_record(&record).unwrap();
    assert_eq!(event.id(), "1234-1234-1234");
    assert_eq!(event.source(), "/mycontext/subcontext");
    assert_eq!(event.time(), Some(time("2018-04-05T03:56:24Z")));
    assert_eq!(event.datacontenttype(), Some("application/avro"));
    assert_eq!(
        event.extension("partitionkey"),
        Some(&ExtensionValue::String("mykey".into()))
    );
    assert_eq!(
        event.data(),
        Some(&Data::Binary(Bytes::from(record.value.clone())))
    );

    let out = event.to_kafka_binary();
    assert_eq!(out.key.as_deref(), Some(&b"mykey"[..]));
    assert_eq!(out.header("ce_id"), Some(&b"1234-1234-1234"[..]));
    assert_eq!(out.header("content-type"), Some(&b"application/avro"[..]));
    assert_eq!(out.header("ce_partitionkey"), None, "key is not duplicated");
    assert_eq!(out.value, record.value);
    assert_eq!(Envelope::from_kafka_record(&out).unwrap(), event);
    assert_structured_round_trip(&event);
}

#[test]
fn kafka_structured_example() {
    let record = parse_kafka(&read("kafka-structured.txt"));
    let event = Envelope::from_kafka_record(&record).unwrap();
    assert_eq!(event.data(), Some(&Data::Json(json!({"appinfoA": "abc"}))));
    assert_eq!(
        event
            .extension("partitionkey")
            .and_then(ExtensionValue::as_str),
        Some("mykey")
    );
    let out = event.to_kafka_structured().unwrap();
    assert_eq!(out.key.as_deref(), Some(&b"mykey"[..]));
    assert_eq!(Envelope::from_kafka_record(&out).unwrap(), event);
}

// ----- spec examples: AMQP binding -------------------------------------------------

#[test]
fn amqp_binary_example() {
    let message = parse_amqp(&read("amqp-binary.txt"));
    let event = Envelope::from_amqp(&message).unwrap();
    assert_eq!(event.id(), "1234-1234-1234");
    assert_eq!(event.time(), Some(time("2018-04-05T03:56:24Z")));
    assert_eq!(event.data(), Some(&Data::Json(json!({"appinfoA": "abc"}))));
    // written with the alternative `cloudEvents_` prefix in the data file
    assert_eq!(
        event.extension("comexampleextension1"),
        Some(&ExtensionValue::String("value".into()))
    );
    let out = event.to_amqp_binary();
    assert_eq!(
        out.application_properties
            .get("cloudEvents:comexampleextension1"),
        Some(&AmqpValue::String("value".into()))
    );
    assert!(
        out.application_properties
            .keys()
            .all(|k| k.starts_with("cloudEvents:"))
    );
    assert_eq!(
        out.content_type.as_deref(),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(Envelope::from_amqp(&out).unwrap(), event);
    assert_structured_round_trip(&event);
}

#[test]
fn amqp_structured_example() {
    let message = parse_amqp(&read("amqp-structured.txt"));
    let event = Envelope::from_amqp(&message).unwrap();
    assert_eq!(event.data(), Some(&Data::Json(json!({"appinfoA": "abc"}))));
    let out = event.to_amqp_structured().unwrap();
    assert_eq!(Envelope::from_amqp(&out).unwrap(), event);
}

#[test]
fn amqp_timestamp_time_and_typed_extensions() {
    let mut props = BTreeMap::new();
    props.insert(
        "cloudEvents:specversion".into(),
        AmqpValue::String("1.0".into()),
    );
    props.insert("cloudEvents:id".into(), AmqpValue::String("x".into()));
    props.insert("cloudEvents:source".into(), AmqpValue::String("/s".into()));
    props.insert("cloudEvents:type".into(), AmqpValue::String("t".into()));
    props.insert(
        "cloudEvents:time".into(),
        AmqpValue::Timestamp(1_522_900_584_000),
    );
    props.insert("cloudEvents:count".into(), AmqpValue::Integer(-7));
    props.insert("cloudEvents:flag".into(), AmqpValue::Boolean(true));
    props.insert("unrelated".into(), AmqpValue::String("ignored".into()));
    let event = Envelope::from_amqp_binary(&AmqpMessage {
        content_type: None,
        application_properties: props,
        body: Vec::new(),
    })
    .unwrap();
    assert_eq!(event.time(), Some(time("2018-04-05T03:56:24Z")));
    assert_eq!(event.extension("count"), Some(&ExtensionValue::Integer(-7)));
    assert_eq!(
        event.extension("flag"),
        Some(&ExtensionValue::Boolean(true))
    );
    assert_eq!(event.extensions().len(), 2);
    assert_eq!(event.data(), None);
}

// ----- construction -----------------------------------------------------------

#[test]
fn new_gives_uuid_v7_and_now() {
    let before = Utc::now();
    let event = Envelope::new("/flextime", "com.flextime.test");
    let after = Utc::now();
    let id = uuid::Uuid::parse_str(event.id()).unwrap();
    assert_eq!(id.get_version_num(), 7);
    let t = event.time_utc().unwrap();
    assert!(before <= t && t <= after);
    assert_eq!(event.specversion(), "1.0");
    assert_ne!(Envelope::new("/a", "b").id(), event.id());
    event.validate().unwrap();
}

#[test]
fn builders_and_accessors() {
    let t = time("2024-03-01T09:30:00.123+05:30");
    let event = Envelope::with_required("id-1", "/src", "com.t")
        .with_subject("sub")
        .with_time(t)
        .with_dataschema("https://schemas.example.com/v1")
        .with_data_text("hello", "text/plain")
        .with_extension("tenant", "acme")
        .unwrap()
        .with_extension("n", 42_i64)
        .unwrap()
        .with_extension("ok", false)
        .unwrap();
    assert_eq!(
        event.time().unwrap().offset().local_minus_utc(),
        5 * 3600 + 1800
    );
    let value = event.to_json_value().unwrap();
    assert_eq!(
        value,
        json!({
            "specversion": "1.0", "id": "id-1", "source": "/src", "type": "com.t",
            "subject": "sub", "time": "2024-03-01T09:30:00.123+05:30",
            "dataschema": "https://schemas.example.com/v1",
            "datacontenttype": "text/plain", "data": "hello",
            "tenant": "acme", "n": 42, "ok": false
        })
    );
    assert_structured_round_trip(&event);
    // Offsets are part of equality.
    let utc = event.clone().with_time(t.with_timezone(&Utc));
    assert_ne!(utc, event);
    assert_eq!(utc.time_utc(), event.time_utc());

    // JSON data sets a JSON content type and is sent as application/json.
    let json_event = Envelope::with_required("2", "/s", "t").with_data_json(json!([1, 2]));
    assert_eq!(json_event.datacontenttype(), Some("application/json"));
    let keep = Envelope::with_required("2", "/s", "t")
        .with_datacontenttype("application/vnd.x+json")
        .with_data_json(json!({}));
    assert_eq!(keep.datacontenttype(), Some("application/vnd.x+json"));
    let cleared = json_event.clone().with_data_json(Value::Null);
    assert_eq!(cleared.data(), None);

    // Binary data without a content type stays binary in every mode.
    let mut bin = Envelope::with_required("3", "/s", "t");
    bin = bin.with_data_binary(vec![0_u8, 159, 146, 150], "application/octet-stream");
    let (h, b) = bin.to_http_binary();
    assert_eq!(&b[..], &[0_u8, 159, 146, 150]);
    assert_eq!(Envelope::from_http(&h, &b).unwrap(), bin);

    let mut ext = event.clone();
    assert_eq!(ext.remove_extension("n"), Some(ExtensionValue::Integer(42)));
    assert_eq!(ext.extension("n"), None);
    assert_eq!(ext.take_data(), Some(Data::Text("hello".into())));
}

#[test]
fn json_data_without_content_type_in_binary_mode() {
    let event = Envelope::from_json_value(with(minimal(), "data", json!({"a": 1}))).unwrap();
    assert_eq!(event.datacontenttype(), None);
    let (headers, body) = event.to_http_binary();
    assert_eq!(headers["content-type"], "application/json");
    let back = Envelope::from_http(&headers, &body).unwrap();
    assert_eq!(back.datacontenttype(), Some("application/json"));
    assert_eq!(back.data(), event.data());
}

#[test]
fn extension_value_helpers() {
    assert_eq!(ExtensionValue::from("42").as_integer(), Some(42));
    assert_eq!(ExtensionValue::from("042").as_integer(), None);
    assert_eq!(ExtensionValue::from(7_i32).as_integer(), Some(7));
    assert_eq!(ExtensionValue::from("true").as_bool(), Some(true));
    assert_eq!(ExtensionValue::from(1_i64).as_bool(), None);
    assert_eq!(ExtensionValue::from(false).to_string(), "false");
    assert_eq!(ExtensionValue::from(-3_i64).to_canonical_string(), "-3");
}

#[test]
fn data_as_errors_name_data() {
    let none = Envelope::with_required("e1", "/s", "t");
    assert_names(&none.data_as::<Value>().unwrap_err(), "data");
    let text = none.clone().with_data_text("hi", "text/plain");
    assert_eq!(text.data_as::<String>().unwrap(), "hi");
    let err = text.data_as::<u32>().unwrap_err();
    assert_names(&err, "data");
    assert!(err.message().contains("e1"));
    let bin = none.with_data_binary(&b"{\"n\":1}"[..], "application/octet-stream");
    assert_eq!(bin.data_as::<Value>().unwrap(), json!({"n": 1}));
}

// ----- negative cases -------------------------------------------------------------

#[test]
fn each_missing_required_attribute_is_named() {
    for attr in ["id", "source", "specversion", "type"] {
        assert_names(&json_err(&without(minimal(), attr)), attr);
        assert_names(&json_err(&with(minimal(), attr, Value::Null)), attr);
        let message = json_err(&without(minimal(), attr)).message().to_owned();
        assert_eq!(
            message,
            format!("missing required CloudEvents attribute `{attr}`")
        );

        // HTTP binary
        let event = Envelope::from_json_value(minimal()).unwrap();
        let (mut headers, body) = event.to_http_binary();
        headers.remove(format!("ce-{attr}").as_str());
        assert_names(&Envelope::from_http(&headers, &body).unwrap_err(), attr);

        // Kafka binary
        let mut record = event.to_kafka_binary();
        record.headers.retain(|(n, _)| *n != format!("ce_{attr}"));
        assert_names(&Envelope::from_kafka_record(&record).unwrap_err(), attr);

        // AMQP binary
        let mut message = event.to_amqp_binary();
        message
            .application_properties
            .remove(&format!("cloudEvents:{attr}"));
        assert_names(&Envelope::from_amqp(&message).unwrap_err(), attr);
    }
}

#[test]
fn wrong_specversion_is_named() {
    let err = json_err(&with(minimal(), "specversion", json!("0.3")));
    assert_names(&err, "specversion");
    assert!(err.message().contains("0.3"), "{err}");
    assert_names(
        &json_err(&with(minimal(), "specversion", json!(1.0))),
        "specversion",
    );
    let mut headers = HeaderMap::new();
    for (n, v) in [
        ("ce-specversion", "1.1"),
        ("ce-id", "1"),
        ("ce-source", "/s"),
        ("ce-type", "t"),
    ] {
        headers.insert(n, HeaderValue::from_static(v));
    }
    let err = Envelope::from_http(&headers, b"").unwrap_err();
    assert_names(&err, "specversion");
    assert!(err.message().contains("1.1"));
}

#[test]
fn malformed_attributes_are_named() {
    let cases: Vec<(Value, &str)> = vec![
        (with(minimal(), "time", json!("yesterday")), "time"),
        (with(minimal(), "time", json!("2018-04-05 17:31")), "time"),
        (with(minimal(), "time", json!(1_522_900_584)), "time"),
        (with(minimal(), "id", json!(42)), "id"),
        (with(minimal(), "id", json!("")), "id"),
        (with(minimal(), "id", json!({"a": 1})), "id"),
        (with(minimal(), "source", json!("")), "source"),
        (with(minimal(), "source", json!("has space")), "source"),
        (with(minimal(), "source", json!(true)), "source"),
        (with(minimal(), "type", json!("")), "type"),
        (with(minimal(), "type", json!(["t"])), "type"),
        (with(minimal(), "subject", json!("")), "subject"),
        (
            with(minimal(), "dataschema", json!("relative/path")),
            "dataschema",
        ),
        (
            with(minimal(), "datacontenttype", json!("")),
            "datacontenttype",
        ),
        (
            with(minimal(), "datacontenttype", json!(5)),
            "datacontenttype",
        ),
        (with(minimal(), "comexample", json!(1.5)), "comexample"),
        (
            with(minimal(), "comexample", json!({"nested": true})),
            "comexample",
        ),
        (
            with(minimal(), "data_base64", json!("not base64!")),
            "data_base64",
        ),
        (with(minimal(), "data_base64", json!(12)), "data_base64"),
    ];
    for (value, attr) in cases {
        assert_names(&json_err(&value), attr);
    }
}

#[test]
fn data_and_data_base64_together_are_rejected() {
    let value = with(
        with(minimal(), "data", json!({"a": 1})),
        "data_base64",
        json!("AAEC"),
    );
    let err = json_err(&value);
    assert_names(&err, "data");
    assert_names(&err, "data_base64");
    // a null partner is absent, so these are fine
    assert!(
        Envelope::from_json_value(with(
            with(minimal(), "data", json!(1)),
            "data_base64",
            Value::Null
        ))
        .is_ok()
    );
}

#[test]
fn bad_extension_names_are_named() {
    for name in ["Bad", "with-dash", "under_score", "ünï", "sp ace"] {
        let err = json_err(&with(minimal(), name, json!("v")));
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.message().contains(name), "{err}");
    }
    let event = Envelope::with_required("1", "/s", "t");
    for name in ["UPPER", "a-b", "", "data", "id", "time"] {
        let err = event.clone().with_extension(name, "v").unwrap_err();
        assert_names(&err, name);
    }
    // HTTP header names are case-insensitive, but `_` is not allowed
    let (mut headers, body) = Envelope::from_json_value(minimal())
        .unwrap()
        .to_http_binary();
    headers.insert("ce-bad_name", HeaderValue::from_static("v"));
    assert_names(
        &Envelope::from_http(&headers, &body).unwrap_err(),
        "bad_name",
    );
    // Kafka header names are case-sensitive
    let mut record = Envelope::from_json_value(minimal())
        .unwrap()
        .to_kafka_binary();
    record.headers.push(("ce_Upper".into(), b"v".to_vec()));
    assert_names(&Envelope::from_kafka_record(&record).unwrap_err(), "Upper");
}

#[test]
fn non_object_json_is_rejected() {
    for value in [
        json!([]),
        json!("event"),
        json!(1),
        json!(null),
        json!(true),
    ] {
        let err = json_err(&value);
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.message().contains("JSON object"), "{err}");
    }
    for bytes in [&b""[..], b"{", b"not json", b"\xff\xfe"] {
        assert_eq!(
            Envelope::from_json_slice(bytes).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    }
    let err = Envelope::batch_from_json_slice(b"{}").unwrap_err();
    assert!(err.message().contains("JSON array"), "{err}");
    let batch = json!([minimal(), without(minimal(), "source")]);
    let err = Envelope::batch_from_json_value(batch).unwrap_err();
    assert_names(&err, "source");
    assert!(err.message().contains("[1]"), "{err}");
    let err = serde_json::from_value::<Envelope>(without(minimal(), "type")).unwrap_err();
    assert!(err.to_string().contains("`type`"), "{err}");
}

#[test]
fn invalid_base64_is_named() {
    for bad in ["@@@@", "A===", "QUJD\nREVG", "AAF"] {
        assert_names(
            &json_err(&with(minimal(), "data_base64", json!(bad))),
            "data_base64",
        );
    }
    // padding is optional on read
    let event = Envelope::from_json_value(with(minimal(), "data_base64", json!("AAEC"))).unwrap();
    assert_eq!(
        event.data(),
        Some(&Data::Binary(Bytes::from_static(&[0, 1, 2])))
    );
    let unpadded = Envelope::from_json_value(with(minimal(), "data_base64", json!("AAE"))).unwrap();
    assert_eq!(
        unpadded.data(),
        Some(&Data::Binary(Bytes::from_static(&[0, 1])))
    );
    assert_eq!(unpadded.to_json_value().unwrap()["data_base64"], "AAE=");
}

#[test]
fn bad_http_percent_encoding_is_named() {
    let event = Envelope::from_json_value(minimal()).unwrap();
    for bad in ["100%", "%zz", "%4", "%C3%28"] {
        let (mut headers, body) = event.to_http_binary();
        headers.insert("ce-subject", HeaderValue::from_str(bad).unwrap());
        let err = Envelope::from_http(&headers, &body).unwrap_err();
        assert_names(&err, "subject");
        assert!(err.message().contains("ce-subject"), "{err}");
    }
    let (mut headers, body) = event.to_http_binary();
    headers.insert("ce-id", HeaderValue::from_static("bad%2"));
    assert_names(&Envelope::from_http(&headers, &body).unwrap_err(), "id");
}

#[test]
fn binary_mode_errors() {
    let event = Envelope::from_json_value(minimal()).unwrap();
    // duplicate HTTP header
    let (mut headers, body) = event.to_http_binary();
    headers.append("ce-id", HeaderValue::from_static("2"));
    assert_names(&Envelope::from_http(&headers, &body).unwrap_err(), "id");
    // JSON content type with a body that is not JSON
    let (mut headers, _) = event.to_http_binary();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    assert_names(
        &Envelope::from_http(&headers, b"{nope").unwrap_err(),
        "data",
    );
    // bad time header
    let (mut headers, body) = event.to_http_binary();
    headers.insert("ce-time", HeaderValue::from_static("2018-13-45T00:00:00Z"));
    assert_names(&Envelope::from_http(&headers, &body).unwrap_err(), "time");
    // batch content type in from_http
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/cloudevents-batch+json"),
    );
    assert!(
        Envelope::from_http(&headers, b"[]")
            .unwrap_err()
            .message()
            .contains("batch")
    );
    // structured mode with a broken body
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/cloudevents+json"),
    );
    assert_eq!(
        Envelope::from_http(&headers, b"{}").unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    // Kafka: header not UTF-8, duplicate header
    let mut record = event.to_kafka_binary();
    record.headers.push(("ce_subject".into(), vec![0xff, 0xfe]));
    assert_names(
        &Envelope::from_kafka_record(&record).unwrap_err(),
        "subject",
    );
    let mut record = event.to_kafka_binary();
    record.headers.push(("ce_id".into(), b"again".to_vec()));
    assert_names(&Envelope::from_kafka_record(&record).unwrap_err(), "id");
    // Kafka: a binary key is left alone
    let mut record = event.to_kafka_binary();
    record.key = Some(vec![0xff, 0x00]);
    assert_eq!(
        Envelope::from_kafka_record(&record)
            .unwrap()
            .extension("partitionkey"),
        None
    );
    // AMQP: non-string id, both prefixes for one attribute, bad timestamp
    let mut message = event.to_amqp_binary();
    message
        .application_properties
        .insert("cloudEvents:id".into(), AmqpValue::Integer(1));
    assert_names(&Envelope::from_amqp(&message).unwrap_err(), "id");
    let mut message = event.to_amqp_binary();
    message
        .application_properties
        .insert("cloudEvents_id".into(), AmqpValue::String("1".into()));
    assert_names(&Envelope::from_amqp(&message).unwrap_err(), "id");
    let mut message = event.to_amqp_binary();
    message
        .application_properties
        .insert("cloudEvents:time".into(), AmqpValue::Timestamp(i64::MAX));
    assert_names(&Envelope::from_amqp(&message).unwrap_err(), "time");
    let mut message = event.to_amqp_binary();
    message
        .application_properties
        .insert("cloudEvents:time".into(), AmqpValue::Boolean(true));
    assert_names(&Envelope::from_amqp(&message).unwrap_err(), "time");
}

#[test]
fn emitters_validate() {
    let bad = Envelope::with_required("", "/s", "t");
    assert_names(&bad.to_json_bytes().unwrap_err(), "id");
    assert_names(&bad.validate().unwrap_err(), "id");
    assert!(serde_json::to_vec(&bad).is_err());
    assert_names(
        &Envelope::batch_to_json_bytes(std::slice::from_ref(&bad)).unwrap_err(),
        "id",
    );
    let bad_schema = Envelope::with_required("1", "/s", "t").with_dataschema("not a uri");
    assert_names(&bad_schema.validate().unwrap_err(), "dataschema");
    let far = DateTime::from_timestamp(400_000_000_000, 0).unwrap();
    let bad_time = Envelope::with_required("1", "/s", "t").with_time(far);
    assert_names(&bad_time.to_json_value().unwrap_err(), "time");
    // binary emitters never fail; the reader rejects what is invalid
    let (h, b) = bad.to_http_binary();
    assert_names(&Envelope::from_http(&h, &b).unwrap_err(), "id");
}

// ----- property tests -------------------------------------------------------------

const JSON_TYPES: &[&str] = &[
    "application/json",
    "application/json; charset=utf-8",
    "application/vnd.flextime+json",
    "text/json",
];
const TEXT_TYPES: &[&str] = &[
    "text/plain",
    "text/plain; charset=utf-8",
    "text/xml",
    "application/xml",
    "text/csv",
];
const BINARY_TYPES: &[&str] = &["application/octet-stream", "image/png", "application/avro"];

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "(?s).{1,16}",
        "[ -~]{1,16}",
        Just("a b%20\"q\" é 😀 %".to_owned()),
        Just("100%".to_owned()),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "(?s).{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("(?s).{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .prop_filter("top-level null is no data", |v| !v.is_null())
}

fn data_and_type() -> impl Strategy<Value = (Option<Data>, Option<String>)> {
    fn pick(list: &'static [&'static str]) -> impl Strategy<Value = String> {
        prop::sample::select(list).prop_map(str::to_owned)
    }
    prop_oneof![
        prop::option::of(prop_oneof![
            pick(JSON_TYPES),
            pick(TEXT_TYPES),
            pick(BINARY_TYPES)
        ])
        .prop_map(|ct| (None, ct)),
        (json_value(), pick(JSON_TYPES)).prop_map(|(v, ct)| (Some(Data::Json(v)), Some(ct))),
        ("(?s).{1,32}", pick(TEXT_TYPES)).prop_map(|(t, ct)| (Some(Data::Text(t)), Some(ct))),
        (
            prop::collection::vec(any::<u8>(), 1..48),
            prop::option::of(pick(BINARY_TYPES))
        )
            .prop_map(|(b, ct)| (Some(Data::Binary(Bytes::from(b))), ct)),
    ]
}

fn extension_value() -> impl Strategy<Value = ExtensionValue> {
    prop_oneof![
        "(?s).{0,16}".prop_map(ExtensionValue::String),
        any::<i64>().prop_map(ExtensionValue::Integer),
        any::<bool>().prop_map(ExtensionValue::Boolean),
    ]
}

fn any_time() -> impl Strategy<Value = DateTime<FixedOffset>> {
    (
        0_i64..4_102_444_800,
        0_u32..1_000_000_000,
        -(14 * 60)..=(14 * 60_i32),
    )
        .prop_map(|(secs, nanos, minutes)| {
            let offset = FixedOffset::east_opt(minutes * 60).unwrap();
            DateTime::from_timestamp(secs, nanos)
                .unwrap()
                .with_timezone(&offset)
        })
}

fn any_envelope() -> impl Strategy<Value = Envelope> {
    (
        any_text(),
        "/[^\\s\\p{C}]{0,16}",
        any_text(),
        prop::option::of(any_text()),
        prop::option::of(any_time()),
        prop::option::of("https://example\\.com/[a-z0-9/]{0,10}"),
        prop::collection::btree_map("[a-z0-9]{1,20}", extension_value(), 0..4),
        data_and_type(),
    )
        .prop_map(
            |(id, source, ty, subject, time, schema, exts, (data, ct))| {
                let mut event = Envelope::with_required(id, source, ty);
                if let Some(subject) = subject {
                    event = event.with_subject(subject);
                }
                if let Some(time) = time {
                    event = event.with_time(time);
                }
                if let Some(schema) = schema {
                    event = event.with_dataschema(schema);
                }
                for (name, value) in exts {
                    // reserved names are rejected by with_extension; skip them
                    if let Ok(next) = event.clone().with_extension(name, value) {
                        event = next;
                    }
                }
                event = match data {
                    None => event,
                    Some(Data::Json(v)) => event.with_data_json(v),
                    Some(Data::Text(t)) => event.with_data_text(t, "text/plain"),
                    Some(Data::Binary(b)) => event.with_data_binary(b, "application/octet-stream"),
                };
                match ct {
                    Some(ct) => event.with_datacontenttype(ct),
                    None => Envelope::from_json_value({
                        let mut v = event.to_json_value().unwrap();
                        v.as_object_mut().unwrap().remove("datacontenttype");
                        v
                    })
                    .unwrap_or(event),
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn prop_structured_json_round_trip(event in any_envelope()) {
        prop_assert!(event.validate().is_ok());
        let bytes = event.to_json_bytes().unwrap();
        let back = Envelope::from_json_slice(&bytes).unwrap();
        prop_assert_eq!(&back, &event);
        prop_assert_eq!(back.to_json_value().unwrap(), event.to_json_value().unwrap());
        let via_serde: Envelope = serde_json::from_slice(&serde_json::to_vec(&event).unwrap()).unwrap();
        prop_assert_eq!(&via_serde, &event);
        let batch = Envelope::batch_to_json_bytes(&[event.clone(), back]).unwrap();
        prop_assert_eq!(Envelope::batch_from_json_slice(&batch).unwrap(), vec![event.clone(), event]);
    }

    #[test]
    fn prop_http_binary_round_trip(event in any_envelope()) {
        let (headers, body) = event.to_http_binary();
        for (name, value) in &headers {
            if name.as_str().starts_with("ce-") {
                // percent-encoded values are printable ASCII without space, quote
                prop_assert!(value.as_bytes().iter().all(|b| (0x21..=0x7e).contains(b) && *b != b'"'));
            }
        }
        let back = Envelope::from_http(&headers, &body).unwrap();
        let expected = stringly(&event);
        // JSON data without a content type is sent as application/json
        if event.datacontenttype().is_none() && matches!(event.data(), Some(Data::Json(_))) {
            prop_assert_eq!(back.datacontenttype(), Some("application/json"));
            prop_assert_eq!(back.with_datacontenttype("x/y"), expected.with_datacontenttype("x/y"));
        } else {
            prop_assert_eq!(back, expected);
        }
        let (headers, body) = event.to_http_structured().unwrap();
        prop_assert_eq!(Envelope::from_http(&headers, &body).unwrap(), event);
    }

    #[test]
    fn prop_kafka_binary_round_trip(event in any_envelope()) {
        let record = event.to_kafka_binary();
        let back = Envelope::from_kafka_record(&record).unwrap();
        let expected = stringly(&event);
        if event.datacontenttype().is_none() && matches!(event.data(), Some(Data::Json(_))) {
            prop_assert_eq!(back.with_datacontenttype("x/y"), expected.with_datacontenttype("x/y"));
        } else {
            prop_assert_eq!(back, expected);
        }
        let record = event.to_kafka_structured().unwrap();
        prop_assert_eq!(Envelope::from_kafka_record(&record).unwrap(), stringly_key(&event));
    }

    #[test]
    fn prop_amqp_binary_round_trip(event in any_envelope()) {
        let message = event.to_amqp_binary();
        let back = Envelope::from_amqp(&message).unwrap();
        // AMQP properties are typed: extensions keep their type
        if event.datacontenttype().is_none() && matches!(event.data(), Some(Data::Json(_))) {
            prop_assert_eq!(back.with_datacontenttype("x/y"), event.clone().with_datacontenttype("x/y"));
        } else {
            prop_assert_eq!(back, event.clone());
        }
        let message = event.to_amqp_structured().unwrap();
        prop_assert_eq!(Envelope::from_amqp(&message).unwrap(), event);
    }

    #[test]
    fn prop_header_value_codec(text in "(?s).{0,32}") {
        let encoded = encode_header_value(&text);
        prop_assert!(HeaderValue::from_str(&encoded).is_ok());
        prop_assert_eq!(decode_header_value(encoded.as_bytes()).unwrap(), text);
    }

    #[test]
    fn prop_parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64), text in "(?s).{0,24}") {
        let _ = Envelope::from_json_slice(&bytes);
        let _ = Envelope::batch_from_json_slice(&bytes);
        let _ = decode_header_value(&bytes);
        let mut headers = HeaderMap::new();
        for name in ["ce-specversion", "ce-id", "ce-source", "ce-type", "ce-time", "content-type"] {
            if let Ok(v) = HeaderValue::from_bytes(text.as_bytes()) {
                headers.insert(name, v);
            }
        }
        let _ = Envelope::from_http(&headers, &bytes);
        let kafka_headers: Vec<(String, Vec<u8>)> =
            ["ce_specversion", "ce_id", "ce_time", "content-type"]
                .iter()
                .map(|n| ((*n).to_owned(), bytes.clone()))
                .collect();
        let _ = Envelope::from_kafka(Some(&bytes), &kafka_headers, &bytes);
        let mut amqp = AmqpMessage { content_type: Some(text.clone()), body: bytes.clone(), ..AmqpMessage::default() };
        amqp.application_properties.insert("cloudEvents:time".into(), AmqpValue::String(text.clone()));
        let _ = Envelope::from_amqp(&amqp);
        let _ = Envelope::from_json_value(json!({"specversion": "1.0", "id": text, "source": text, "type": text, "time": text}));
    }
}

/// After a Kafka structured trip, a `partitionkey` extension comes back from
/// the record key, as a string.
fn stringly_key(event: &Envelope) -> Envelope {
    let mut out = event.clone();
    if let Some(value) = event.extension("partitionkey") {
        out.set_extension("partitionkey", value.clone().into_canonical_string_value())
            .unwrap();
    }
    out
}
