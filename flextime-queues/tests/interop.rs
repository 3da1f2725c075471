//! Interop with clients we did not write: what Flextime produces is read by
//! a foreign client (headers included), and the reverse. Python clients
//! (confluent-kafka, pika, nats-py) come from `FLEXTIME_TEST_PYTHON`, set by
//! `scripts/services`; Redis Streams are checked with `redis-cli`.
// Helpers go unused when only some backend features are enabled.
#![allow(dead_code, unused_imports)]

use std::process::Stdio;
use std::time::Duration;

use flextime_queues::{Broker, ConsumerOptions, Delivery, Message, ProducerOptions};
use tokio::io::{AsyncBufReadExt, BufReader};

/// The Python interpreter with the foreign clients, or skip (fail when
/// services are required), like a peer.
fn python(test: &str) -> Option<String> {
    match std::env::var("FLEXTIME_TEST_PYTHON") {
        Ok(p) if !p.trim().is_empty() => Some(p),
        _ if flextime_testkit::services_required() => panic!(
            "{test}: FLEXTIME_TEST_PYTHON is not set and FLEXTIME_REQUIRE_SERVICES=1 forbids skipping (run scripts/services)"
        ),
        _ => {
            eprintln!("SKIPPED {test}: FLEXTIME_TEST_PYTHON is not set (run scripts/services)");
            None
        }
    }
}

/// Run a Python script with arguments; its stdout parsed as JSON.
async fn run_python(python: &str, script: &str, args: &[&str]) -> serde_json::Value {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(python)
            .arg("-c")
            .arg(script)
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("python timed out")
    .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "python failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("python printed {stdout:?}: {e}"))
}

/// Start a Python script that prints `READY` once set up and then one JSON
/// line; returns a handle to await that line.
async fn start_python(
    python: &str,
    script: &str,
    args: &[&str],
) -> tokio::task::JoinHandle<serde_json::Value> {
    let mut child = tokio::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python runs");
    let stdout = child.stdout.take().expect("piped");
    let mut lines = BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("python never got ready")
        .expect("reading python")
        .expect("python exited early");
    assert_eq!(ready.trim(), "READY");
    tokio::spawn(async move {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("python printed nothing in time")
            .expect("reading python")
            .expect("python exited without output");
        let _ = child.wait().await;
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("python printed {line:?}: {e}"))
    })
}

async fn receive(consumer: &mut dyn flextime_queues::Consumer) -> Delivery {
    tokio::time::timeout(Duration::from_secs(30), consumer.next())
        .await
        .expect("no delivery in time")
        .expect("consumer works")
        .expect("consumer open")
}

fn sample() -> Message {
    Message::new(r#"{"booking":42}"#)
        .with_id("interop-1")
        .with_key("room-7")
        .with_header("tenant", "acme")
        .with_header("content-type", "application/json")
}

// ------------------------------------------------------------------ Kafka

#[cfg(feature = "kafka")]
mod kafka {
    use super::*;
    use flextime_queues::kafka::{KafkaBroker, KafkaConfig};

    fn bootstrap(url: &str) -> String {
        url.trim_start_matches("kafka://").to_owned()
    }

    const CONSUME: &str = r#"
import json, sys
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[3], "auto.offset.reset": "earliest"})
c.subscribe([sys.argv[2]])
while True:
    m = c.poll(1.0)
    if m is None:
        continue
    if m.error():
        raise SystemExit(str(m.error()))
    break
headers = {k: v.decode() for k, v in (m.headers() or [])}
print(json.dumps({"key": m.key().decode() if m.key() else None, "headers": headers, "value": m.value().decode(), "timestamp": m.timestamp()[1]}))
c.close()
"#;

    const PRODUCE: &str = r#"
import json, sys
from confluent_kafka import Producer
p = Producer({"bootstrap.servers": sys.argv[1], "enable.idempotence": True})
p.produce(sys.argv[2], key=b"k-py", value=b'{"from":"python"}', headers=[("h", b"v"), ("ce_type", b"booking.created")])
p.flush(30)
print(json.dumps({"ok": True}))
"#;

    #[tokio::test]
    async fn flextime_to_confluent_kafka() {
        let url = flextime_testkit::require_peer!(Kafka);
        let Some(py) = python("flextime_to_confluent_kafka") else {
            return;
        };
        let broker = KafkaBroker::new(KafkaConfig::from_url(&url).unwrap()).unwrap();
        let topic = flextime_testkit::unique_name("interop-kafka-out");
        let producer = broker.producer(ProducerOptions::default()).await.unwrap();
        let sent = sample();
        producer.send(&topic, sent.clone()).await.unwrap();
        let got = run_python(&py, CONSUME, &[&bootstrap(&url), &topic, "py"]).await;
        assert_eq!(got["key"], "room-7");
        assert_eq!(got["value"], r#"{"booking":42}"#);
        assert_eq!(got["headers"]["tenant"], "acme");
        assert_eq!(got["headers"]["x-flextime-id"], "interop-1");
        assert_eq!(got["timestamp"], sent.timestamp.timestamp_millis());
    }

    #[tokio::test]
    async fn confluent_kafka_to_flextime() {
        let url = flextime_testkit::require_peer!(Kafka);
        let Some(py) = python("confluent_kafka_to_flextime") else {
            return;
        };
        let broker = KafkaBroker::new(KafkaConfig::from_url(&url).unwrap()).unwrap();
        let topic = flextime_testkit::unique_name("interop-kafka-in");
        let mut consumer = broker
            .consumer(ConsumerOptions::new(&topic, "g"))
            .await
            .unwrap();
        run_python(&py, PRODUCE, &[&bootstrap(&url), &topic]).await;
        let d = receive(consumer.as_mut()).await;
        let m = d.message();
        assert_eq!(&m.payload[..], br#"{"from":"python"}"#);
        assert_eq!(m.key.as_deref(), Some("k-py"));
        assert_eq!(m.header("h"), Some("v"));
        assert_eq!(m.attempt, 1);
        assert!(m.id.starts_with(&format!("{topic}/")), "{}", m.id);
        d.ack().await.unwrap();
        consumer.shutdown().await.unwrap();
    }
}

// ------------------------------------------------------------------ Redis

#[cfg(feature = "redis")]
mod redis {
    use super::*;
    use flextime_queues::redis::{RedisBroker, RedisConfig};

    async fn redis_cli(url: &str, args: &[&str]) -> String {
        let output = tokio::process::Command::new("redis-cli")
            .arg("-u")
            .arg(url)
            .args(args)
            .output()
            .await
            .expect("redis-cli runs");
        assert!(output.status.success(), "redis-cli failed");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    #[tokio::test]
    async fn flextime_to_redis_cli() {
        let url = flextime_testkit::require_peer!(Redis);
        let broker = RedisBroker::connect(RedisConfig::from_url(&url).unwrap())
            .await
            .unwrap();
        let topic = flextime_testkit::unique_name("interop-redis-out");
        let producer = broker.producer(ProducerOptions::default()).await.unwrap();
        producer.send(&topic, sample()).await.unwrap();
        let out = redis_cli(&url, &["XRANGE", &topic, "-", "+"]).await;
        let lines: Vec<&str> = out.lines().collect();
        let field = |name: &str| {
            lines
                .iter()
                .position(|l| *l == name)
                .and_then(|i| lines.get(i + 1).copied())
        };
        assert_eq!(field("id"), Some("interop-1"), "{out}");
        assert_eq!(field("key"), Some("room-7"), "{out}");
        assert_eq!(field("h:tenant"), Some("acme"), "{out}");
        assert_eq!(field("payload"), Some(r#"{"booking":42}"#), "{out}");
    }

    #[tokio::test]
    async fn redis_cli_to_flextime() {
        let url = flextime_testkit::require_peer!(Redis);
        let broker = RedisBroker::connect(RedisConfig::from_url(&url).unwrap())
            .await
            .unwrap();
        let topic = flextime_testkit::unique_name("interop-redis-in");
        let mut consumer = broker
            .consumer(ConsumerOptions::new(&topic, "g"))
            .await
            .unwrap();
        let before = chrono::Utc::now();
        redis_cli(
            &url,
            &[
                "XADD",
                &topic,
                "*",
                "payload",
                "from redis-cli",
                "key",
                "k1",
                "h:trace",
                "t-1",
            ],
        )
        .await;
        let d = receive(consumer.as_mut()).await;
        let m = d.message();
        assert_eq!(&m.payload[..], b"from redis-cli");
        assert_eq!(m.key.as_deref(), Some("k1"));
        assert_eq!(m.header("trace"), Some("t-1"));
        assert_eq!(m.attempt, 1);
        // No `id` or `ts` field: a fresh id, and the time of receipt.
        assert!(!m.id.is_empty());
        assert!(
            (before..=chrono::Utc::now()).contains(&m.timestamp),
            "{} is not the time of receipt",
            m.timestamp
        );
        d.ack().await.unwrap();
        consumer.shutdown().await.unwrap();
    }
}

// ------------------------------------------------------------------ RabbitMQ

#[cfg(feature = "rabbitmq")]
mod rabbitmq {
    use super::*;
    use flextime_queues::rabbitmq::{RabbitBroker, RabbitConfig};

    const CONSUME: &str = r#"
import json, sys, pika
conn = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))
ch = conn.channel()
ch.exchange_declare(sys.argv[2], exchange_type="fanout", durable=True)
q = sys.argv[2] + ".pika"
ch.queue_declare(q, auto_delete=True)
ch.queue_bind(q, sys.argv[2])
print("READY", flush=True)
for method, props, body in ch.consume(q, inactivity_timeout=30):
    if method is None:
        raise SystemExit("nothing arrived")
    ch.basic_ack(method.delivery_tag)
    print(json.dumps({"body": body.decode(), "message_id": props.message_id, "content_type": props.content_type,
                      "routing_key": method.routing_key,
                      "headers": {k: (v.decode() if isinstance(v, bytes) else v) for k, v in (props.headers or {}).items()}}), flush=True)
    break
conn.close()
"#;

    const PRODUCE: &str = r#"
import json, sys, pika
conn = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))
ch = conn.channel()
ch.confirm_delivery()
ch.basic_publish(sys.argv[2], "k-py", b"from pika",
                 pika.BasicProperties(message_id="py-1", headers={"h": "v"}, delivery_mode=2), mandatory=True)
conn.close()
print(json.dumps({"ok": True}))
"#;

    #[tokio::test]
    async fn flextime_to_pika() {
        let url = flextime_testkit::require_peer!(Amqp);
        let Some(py) = python("flextime_to_pika") else {
            return;
        };
        let broker = RabbitBroker::connect(
            RabbitConfig::from_url(&url)
                .unwrap()
                .with_queue_expires(Duration::from_secs(600)),
        )
        .await
        .unwrap();
        let topic = flextime_testkit::unique_name("interop-amqp-out");
        let producer = broker.producer(ProducerOptions::default()).await.unwrap();
        let pika = start_python(&py, CONSUME, &[&url, &topic]).await;
        let envelope = flextime_queues::Envelope::new("/rooms", "booking.created")
            .with_id("evt-1")
            .with_data_json(serde_json::json!({"booking": 42}));
        let sent = Message::from_envelope(&envelope)
            .with_key("room-7")
            .with_header("tenant", "acme");
        producer.send(&topic, sent).await.unwrap();
        let got = pika.await.unwrap();
        assert_eq!(got["body"], r#"{"booking":42}"#);
        assert_eq!(got["message_id"], "evt-1");
        assert_eq!(got["content_type"], "application/json");
        assert_eq!(got["routing_key"], "room-7");
        assert_eq!(got["headers"]["tenant"], "acme");
        assert_eq!(got["headers"]["cloudEvents:type"], "booking.created");
        assert_eq!(got["headers"]["cloudEvents:source"], "/rooms");
    }

    #[tokio::test]
    async fn pika_to_flextime() {
        let url = flextime_testkit::require_peer!(Amqp);
        let Some(py) = python("pika_to_flextime") else {
            return;
        };
        let broker = RabbitBroker::connect(
            RabbitConfig::from_url(&url)
                .unwrap()
                .with_queue_expires(Duration::from_secs(600)),
        )
        .await
        .unwrap();
        let topic = flextime_testkit::unique_name("interop-amqp-in");
        let mut consumer = broker
            .consumer(ConsumerOptions::new(&topic, "g"))
            .await
            .unwrap();
        run_python(&py, PRODUCE, &[&url, &topic]).await;
        let d = receive(consumer.as_mut()).await;
        let m = d.message();
        assert_eq!(&m.payload[..], b"from pika");
        assert_eq!(m.id, "py-1");
        assert_eq!(m.key.as_deref(), Some("k-py"));
        assert_eq!(m.header("h"), Some("v"));
        assert_eq!(m.attempt, 1);
        d.ack().await.unwrap();
        consumer.shutdown().await.unwrap();
    }
}

// ------------------------------------------------------------------ NATS

#[cfg(feature = "nats")]
mod nats {
    use super::*;
    use flextime_queues::nats::{NatsBroker, NatsConfig};

    const CONSUME: &str = r#"
import asyncio, json, sys, nats
async def main():
    nc = await nats.connect(sys.argv[1])
    js = nc.jetstream()
    sub = await js.pull_subscribe(sys.argv[2], durable="py")
    msgs = await sub.fetch(1, timeout=30)
    m = msgs[0]
    await m.ack()
    print(json.dumps({"data": m.data.decode(), "headers": dict(m.headers or {}), "delivered": m.metadata.num_delivered}))
    await nc.close()
asyncio.run(main())
"#;

    const PRODUCE: &str = r#"
import asyncio, json, sys, nats
async def main():
    nc = await nats.connect(sys.argv[1])
    js = nc.jetstream()
    ack = await js.publish(sys.argv[2], b"from nats-py", headers={"h": "v", "Nats-Msg-Id": "py-1"})
    print(json.dumps({"seq": ack.seq}))
    await nc.close()
asyncio.run(main())
"#;

    #[tokio::test]
    async fn flextime_to_nats_py() {
        let url = flextime_testkit::require_peer!(Nats);
        let Some(py) = python("flextime_to_nats_py") else {
            return;
        };
        let broker = NatsBroker::connect(NatsConfig::from_url(&url).unwrap())
            .await
            .unwrap();
        let topic = flextime_testkit::unique_name("interop-nats-out");
        let producer = broker.producer(ProducerOptions::default()).await.unwrap();
        producer.send(&topic, sample()).await.unwrap();
        let got = run_python(&py, CONSUME, &[&url, &topic]).await;
        assert_eq!(got["data"], r#"{"booking":42}"#);
        assert_eq!(got["headers"]["tenant"], "acme");
        assert_eq!(got["headers"]["Nats-Msg-Id"], "interop-1");
        assert_eq!(got["headers"]["x-flextime-key"], "room-7");
        assert_eq!(got["delivered"], 1);
    }

    #[tokio::test]
    async fn nats_py_to_flextime() {
        let url = flextime_testkit::require_peer!(Nats);
        let Some(py) = python("nats_py_to_flextime") else {
            return;
        };
        let broker = NatsBroker::connect(NatsConfig::from_url(&url).unwrap())
            .await
            .unwrap();
        let topic = flextime_testkit::unique_name("interop-nats-in");
        let mut consumer = broker
            .consumer(ConsumerOptions::new(&topic, "g"))
            .await
            .unwrap();
        run_python(&py, PRODUCE, &[&url, &topic]).await;
        let d = receive(consumer.as_mut()).await;
        let m = d.message();
        assert_eq!(&m.payload[..], b"from nats-py");
        assert_eq!(m.id, "py-1");
        assert_eq!(m.header("h"), Some("v"));
        assert_eq!(m.attempt, 1);
        d.ack().await.unwrap();
        consumer.shutdown().await.unwrap();
    }
}
