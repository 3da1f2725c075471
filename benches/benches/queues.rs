//! flextime-queues against the raw clients on the same broker, in the same
//! run: 1 KiB messages, produce-then-consume throughput (every send
//! confirmed, every message acked, in batches of 100) and the p99 latency of
//! one message's round trip (send, receive, ack). Backends whose
//! `FLEXTIME_TEST_*_URL` is unset are skipped. `FLEXTIME_BENCH_MESSAGES`
//! sets the messages per round (default 2000), `FLEXTIME_BENCH_ROUNDS`
//! the rounds per side (default 3; the rounds run in pairs, Flextime then
//! raw, then raw then Flextime, and so on, and the median of the pairs'
//! ratios is printed too: it cancels a machine whose speed drifts between
//! rounds); `FLEXTIME_BENCH_ONLY` (`redis,kafka`, ...) picks backends;
//! `FLEXTIME_BENCH_QUEUES_SIDE=flextime` (or `raw`) runs one side alone, for
//! profiling it under `perf`. Both Kafka sides fetch with
//! `fetch.wait.max.ms=10` and take 30 latency samples (tansu answers an empty
//! fetch only after the wait).
#![allow(clippy::cast_precision_loss, clippy::items_after_statements)] // rates; local helpers

use std::sync::Arc;
use std::time::{Duration, Instant};

use flextime_benches::median;
use flextime_queues::{Broker, ConsumerOptions, Message, ProducerOptions};
use futures::StreamExt;

const BATCH: usize = 100;
const LATENCY_SAMPLES: usize = 200;
const KAFKA_LATENCY_SAMPLES: usize = 30;

#[derive(Debug, Clone, Copy)]
struct Outcome {
    msgs_per_s: f64,
    p99: Duration,
    /// The produce phase's share of the round (the rest is consuming).
    produce: Duration,
    /// The whole round (produce, then consume).
    total: Duration,
}

fn payload() -> bytes::Bytes {
    bytes::Bytes::from(vec![b'x'; 1024])
}

fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("bench-{name}-{nanos}")
}

fn p99(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples
        .get(samples.len() * 99 / 100)
        .copied()
        .unwrap_or_default()
}

// ------------------------------------------------------------------ flextime

async fn flextime(broker: &Arc<dyn Broker>, n: usize, samples: usize) -> Outcome {
    let topic = unique("ft");
    let mut consumer = broker
        .consumer(ConsumerOptions::new(&topic, topic.clone()).with_prefetch(BATCH * 2))
        .await
        .expect("consumer");
    let producer = broker
        .producer(ProducerOptions::default())
        .await
        .expect("producer");
    // One payload shared by every message, as the raw clients share theirs.
    let body = payload();
    // Warm up (Kafka: the group join) outside the timed part.
    producer
        .send(&topic, Message::new(body.clone()))
        .await
        .expect("send");
    let warm = consumer.next().await.expect("receive").expect("open");
    warm.ack().await.expect("ack");
    let start = Instant::now();
    for chunk in 0..n.div_ceil(BATCH) {
        let count = BATCH.min(n - chunk * BATCH);
        let batch = (0..count).map(|_| Message::new(body.clone())).collect();
        producer.send_batch(&topic, batch).await.expect("send");
    }
    let produced = start.elapsed();
    let mut received = 0;
    while received < n {
        let batch = consumer
            .next_batch(BATCH, Duration::from_secs(10))
            .await
            .expect("receive");
        assert!(!batch.is_empty(), "flextime: messages went missing");
        received += batch.len();
        // Every ack is under way when `ack_all` returns its future (Redis:
        // one `XACK` for the batch).
        flextime_queues::Delivery::ack_all(batch)
            .await
            .expect("ack");
    }
    let total = start.elapsed();
    let msgs_per_s = n as f64 / total.as_secs_f64();
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t = Instant::now();
        producer
            .send(&topic, Message::new(body.clone()))
            .await
            .expect("send");
        let d = consumer.next().await.expect("receive").expect("open");
        d.ack().await.expect("ack");
        times.push(t.elapsed());
    }
    consumer.shutdown().await.expect("shutdown");
    Outcome {
        msgs_per_s,
        p99: p99(times),
        produce: produced,
        total,
    }
}

// ------------------------------------------------------------------ raw Redis

async fn raw_redis(url: &str, n: usize) -> Outcome {
    use redis::Value;
    let client = redis::Client::open(url).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let mut reader = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let stream = unique("raw");
    let _: Value = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&stream)
        .arg("bench")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .expect("group");
    let body = payload();
    let produce = |count: usize| {
        let mut pipe = redis::pipe();
        for _ in 0..count {
            pipe.cmd("XADD")
                .arg(&stream)
                .arg("*")
                .arg("payload")
                .arg(body.as_ref());
        }
        pipe
    };
    async fn read(reader: &mut redis::aio::MultiplexedConnection, stream: &str) -> Vec<String> {
        let reply: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("bench")
            .arg("c")
            .arg("COUNT")
            .arg(BATCH)
            .arg("BLOCK")
            .arg(1000)
            .arg("STREAMS")
            .arg(stream)
            .arg(">")
            .query_async(reader)
            .await
            .expect("read");
        let mut ids = Vec::new();
        if let Value::Array(streams) = reply {
            for s in streams {
                if let Value::Array(pair) = s
                    && let Some(Value::Array(entries)) = pair.get(1)
                {
                    for e in entries {
                        if let Value::Array(kv) = e
                            && let Some(Value::BulkString(id)) = kv.first()
                        {
                            ids.push(String::from_utf8_lossy(id).into_owned());
                        }
                    }
                }
            }
        }
        ids
    }
    let start = Instant::now();
    for chunk in 0..n.div_ceil(BATCH) {
        let count = BATCH.min(n - chunk * BATCH);
        let _: Vec<Value> = produce(count).query_async(&mut conn).await.expect("xadd");
    }
    let produced = start.elapsed();
    let mut received = 0;
    while received < n {
        let ids = read(&mut reader, &stream).await;
        assert!(!ids.is_empty(), "raw redis: messages went missing");
        received += ids.len();
        let _: Value = redis::cmd("XACK")
            .arg(&stream)
            .arg("bench")
            .arg(&ids)
            .query_async(&mut conn)
            .await
            .expect("xack");
    }
    let total = start.elapsed();
    let msgs_per_s = n as f64 / total.as_secs_f64();
    let mut samples = Vec::new();
    for _ in 0..LATENCY_SAMPLES {
        let t = Instant::now();
        let _: Vec<Value> = produce(1).query_async(&mut conn).await.expect("xadd");
        let ids = read(&mut reader, &stream).await;
        let _: Value = redis::cmd("XACK")
            .arg(&stream)
            .arg("bench")
            .arg(&ids)
            .query_async(&mut conn)
            .await
            .expect("xack");
        samples.push(t.elapsed());
    }
    Outcome {
        msgs_per_s,
        p99: p99(samples),
        produce: produced,
        total,
    }
}

// ------------------------------------------------------------------ raw lapin

async fn raw_lapin(url: &str, n: usize) -> Outcome {
    use lapin::options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    };
    use lapin::types::{AMQPValue, FieldTable, LongString};
    let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .expect("amqp");
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    let exchange = unique("raw");
    let queue = format!("{exchange}.bench");
    ch.exchange_declare(
        &exchange,
        lapin::ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("exchange");
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from(b"quorum".to_vec())),
    );
    // as the flextime side (queue_expires_ms): bench queues expire
    args.insert("x-expires".into(), AMQPValue::LongLongInt(600_000));
    ch.queue_declare(
        &queue,
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args,
    )
    .await
    .expect("queue");
    ch.queue_bind(
        &queue,
        &exchange,
        "",
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");
    let consume_ch = conn.create_channel().await.expect("channel");
    consume_ch
        .basic_qos(
            u16::try_from(BATCH * 2).unwrap_or(200),
            BasicQosOptions::default(),
        )
        .await
        .expect("qos");
    let mut consumer = consume_ch
        .basic_consume(
            &queue,
            "bench",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let body = payload();
    let props = lapin::BasicProperties::default().with_delivery_mode(2);
    let publish = |count: usize| {
        let ch = ch.clone();
        let body = body.clone();
        let props = props.clone();
        let exchange = exchange.clone();
        async move {
            let mut confirms = Vec::with_capacity(count);
            for _ in 0..count {
                confirms.push(
                    ch.basic_publish(
                        &exchange,
                        "",
                        BasicPublishOptions {
                            mandatory: true,
                            ..Default::default()
                        },
                        &body,
                        props.clone(),
                    )
                    .await
                    .expect("publish"),
                );
            }
            for c in confirms {
                c.await.expect("confirm");
            }
        }
    };
    let start = Instant::now();
    for chunk in 0..n.div_ceil(BATCH) {
        publish(BATCH.min(n - chunk * BATCH)).await;
    }
    let produced = start.elapsed();
    for _ in 0..n {
        let d = consumer.next().await.expect("open").expect("delivery");
        d.acker.ack(BasicAckOptions::default()).await.expect("ack");
    }
    let total = start.elapsed();
    let msgs_per_s = n as f64 / total.as_secs_f64();
    let mut samples = Vec::new();
    for _ in 0..LATENCY_SAMPLES {
        let t = Instant::now();
        publish(1).await;
        let d = consumer.next().await.expect("open").expect("delivery");
        d.acker.ack(BasicAckOptions::default()).await.expect("ack");
        samples.push(t.elapsed());
    }
    let _ = conn.close(200, "done").await;
    Outcome {
        msgs_per_s,
        p99: p99(samples),
        produce: produced,
        total,
    }
}

// ------------------------------------------------------------------ raw async-nats

async fn raw_nats(url: &str, n: usize) -> Outcome {
    use async_nats::jetstream::{self, consumer::pull, stream};
    let client = async_nats::connect(url).await.expect("nats");
    let js = jetstream::new(client);
    let subject = unique("raw");
    let st = js
        .get_or_create_stream(stream::Config {
            name: subject.clone(),
            subjects: vec![subject.clone()],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .expect("stream");
    let consumer = st
        .get_or_create_consumer(
            "bench",
            pull::Config {
                durable_name: Some("bench".into()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ..Default::default()
            },
        )
        .await
        .expect("consumer");
    let mut messages = consumer.messages().await.expect("messages");
    let body = payload();
    let publish = |count: usize| {
        let js = js.clone();
        let subject = subject.clone();
        let body = body.clone();
        async move {
            let mut acks = Vec::with_capacity(count);
            for _ in 0..count {
                acks.push(
                    js.publish(subject.clone(), body.clone())
                        .await
                        .expect("publish"),
                );
            }
            for a in acks {
                a.await.expect("ack");
            }
        }
    };
    let start = Instant::now();
    for chunk in 0..n.div_ceil(BATCH) {
        publish(BATCH.min(n - chunk * BATCH)).await;
    }
    let produced = start.elapsed();
    let mut received = 0;
    while received < n {
        let mut batch = Vec::with_capacity(BATCH);
        while batch.len() < BATCH && received + batch.len() < n {
            batch.push(messages.next().await.expect("open").expect("message"));
        }
        received += batch.len();
        for r in
            futures::future::join_all(batch.iter().map(async_nats::jetstream::Message::double_ack))
                .await
        {
            r.expect("ack");
        }
    }
    let total = start.elapsed();
    let msgs_per_s = n as f64 / total.as_secs_f64();
    let mut samples = Vec::new();
    for _ in 0..LATENCY_SAMPLES {
        let t = Instant::now();
        publish(1).await;
        let m = messages.next().await.expect("open").expect("message");
        m.double_ack().await.expect("ack");
        samples.push(t.elapsed());
    }
    Outcome {
        msgs_per_s,
        p99: p99(samples),
        produce: produced,
        total,
    }
}

// ------------------------------------------------------------------ raw rdkafka

async fn raw_kafka(brokers: &str, n: usize) -> Outcome {
    use rdkafka::ClientConfig;
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let topic = unique("raw");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin");
    admin
        .create_topics(
            [&NewTopic::new(&topic, 3, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("create topic");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .create()
        .expect("producer");
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", &topic)
        .set("fetch.wait.max.ms", "10")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let body = payload();
    let publish = |count: usize| {
        let producer = producer.clone();
        let topic = topic.clone();
        let body = body.clone();
        async move {
            let mut reports = Vec::with_capacity(count);
            for _ in 0..count {
                reports.push(
                    producer
                        .send_result(FutureRecord::<(), _>::to(&topic).payload(body.as_ref()))
                        .map_err(|(e, _)| e)
                        .expect("enqueue"),
                );
            }
            for r in reports {
                r.await.expect("report").expect("delivered");
            }
        }
    };
    // Warm up (the group join) outside the timed part, as on the Flextime side.
    publish(1).await;
    let warm = consumer.recv().await.expect("record");
    consumer
        .commit_message(&warm, CommitMode::Async)
        .expect("commit");
    drop(warm);
    let start = Instant::now();
    for chunk in 0..n.div_ceil(BATCH) {
        publish(BATCH.min(n - chunk * BATCH)).await;
    }
    let produced = start.elapsed();
    for i in 0..n {
        let m = consumer.recv().await.expect("record");
        if i % BATCH == BATCH - 1 || i == n - 1 {
            consumer
                .commit_message(&m, CommitMode::Async)
                .expect("commit");
        }
    }
    let total = start.elapsed();
    let msgs_per_s = n as f64 / total.as_secs_f64();
    let mut samples = Vec::new();
    for _ in 0..KAFKA_LATENCY_SAMPLES {
        let t = Instant::now();
        publish(1).await;
        let m = consumer.recv().await.expect("record");
        consumer
            .commit_message(&m, CommitMode::Async)
            .expect("commit");
        samples.push(t.elapsed());
    }
    Outcome {
        msgs_per_s,
        p99: p99(samples),
        produce: produced,
        total,
    }
}

// ------------------------------------------------------------------ driver

fn line(name: &str, ours: Outcome, raw: Option<Outcome>) {
    match raw {
        Some(raw) => println!(
            "queues/{name:<9} flextime {:>8.0} msg/s p99 {:>7.2} ms   raw {:>8.0} msg/s p99 {:>7.2} ms   ratio (flextime/raw throughput) {:.2}",
            ours.msgs_per_s,
            ours.p99.as_secs_f64() * 1e3,
            raw.msgs_per_s,
            raw.p99.as_secs_f64() * 1e3,
            ours.msgs_per_s / raw.msgs_per_s
        ),
        None => println!(
            "queues/{name:<9} flextime {:>8.0} msg/s p99 {:>7.2} ms   (no raw client)",
            ours.msgs_per_s,
            ours.p99.as_secs_f64() * 1e3
        ),
    }
    println!("queues/{name:<9} flextime: {}", phases(&ours));
    if let Some(raw) = raw {
        println!("queues/{name:<9} raw:      {}", phases(&raw));
    }
}

fn combine(samples: &[Outcome]) -> Outcome {
    Outcome {
        msgs_per_s: median(samples.iter().map(|o| o.msgs_per_s).collect()),
        p99: secs_median(samples, |o| o.p99),
        produce: secs_median(samples, |o| o.produce),
        total: secs_median(samples, |o| o.total),
    }
}

fn secs_median(samples: &[Outcome], of: impl Fn(&Outcome) -> Duration) -> Duration {
    Duration::from_secs_f64(median(
        samples.iter().map(|o| of(o).as_secs_f64()).collect(),
    ))
}

/// `produce X ms + consume Y ms`: where a round's time went (medians).
fn phases(o: &Outcome) -> String {
    format!(
        "produce {:.1} ms + consume {:.1} ms",
        o.produce.as_secs_f64() * 1e3,
        o.total.saturating_sub(o.produce).as_secs_f64() * 1e3
    )
}

async fn bench<R, F>(name: &str, broker: Arc<dyn Broker>, n: usize, samples: usize, raw: R)
where
    R: Fn() -> F,
    F: std::future::Future<Output = Outcome>,
{
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    match std::env::var("FLEXTIME_BENCH_QUEUES_SIDE").as_deref() {
        Ok("flextime") => {
            for _ in 0..rounds() {
                ours.push(flextime(&broker, n, samples).await);
            }
            line(name, combine(&ours), None);
            return;
        }
        Ok("raw") => {
            for _ in 0..rounds() {
                theirs.push(raw().await);
            }
            let raw = combine(&theirs);
            println!(
                "queues/{name:<9} raw {:>8.0} msg/s p99 {:>7.2} ms   {}",
                raw.msgs_per_s,
                raw.p99.as_secs_f64() * 1e3,
                phases(&raw)
            );
            return;
        }
        _ => {}
    }
    for round in 0..rounds() {
        // The side going first alternates, so neither always runs on the
        // broker state the other left behind.
        if round % 2 == 1 {
            theirs.push(raw().await);
        }
        ours.push(flextime(&broker, n, samples).await);
        if round % 2 == 0 {
            theirs.push(raw().await);
        }
    }
    line(name, combine(&ours), Some(combine(&theirs)));
    let paired: Vec<f64> = ours
        .iter()
        .zip(&theirs)
        .map(|(o, t)| o.msgs_per_s / t.msgs_per_s)
        .collect();
    println!(
        "queues/{name:<9} paired rounds (flextime/raw): {}",
        flextime_benches::paired_ratios(&paired)
    );
}

/// Rounds per side: `FLEXTIME_BENCH_ROUNDS`, default 3.
fn rounds() -> usize {
    std::env::var("FLEXTIME_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&r| r > 0)
        .unwrap_or(3)
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("FLEXTIME_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    println!(
        "flextime-queues benchmarks: {n} x 1 KiB per round, {} rounds, median ({} cores)",
        rounds(),
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    let only = std::env::var("FLEXTIME_BENCH_ONLY").unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only.split(',').any(|o| o.trim() == name);
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());

    if wanted("memory") {
        // A round sends all its messages before consuming them: the
        // broker's bound (default 10,000) must hold them, or send waits for
        // a consumer that has not started.
        let memory = flextime_queues::connect(&format!("memory://?capacity={}", n + 1))
            .await
            .expect("memory");
        let mut ours = Vec::new();
        for _ in 0..rounds() {
            ours.push(flextime(&memory, n, LATENCY_SAMPLES).await);
        }
        line("memory", combine(&ours), None);
    }

    if !wanted("redis") {
    } else if let Some(url) = env("FLEXTIME_TEST_REDIS_URL") {
        let broker = flextime_queues::connect(&url).await.expect("redis");
        bench("redis", broker, n, LATENCY_SAMPLES, || raw_redis(&url, n)).await;
    } else {
        println!("queues/redis     skipped: FLEXTIME_TEST_REDIS_URL is not set");
    }
    if !wanted("rabbitmq") {
    } else if let Some(url) = env("FLEXTIME_TEST_AMQP_URL") {
        // the bench's queues expire ten minutes after their last use
        let broker = flextime_queues::connect(&format!("{url}?queue_expires_ms=600000"))
            .await
            .expect("rabbitmq");
        bench("rabbitmq", broker, n, LATENCY_SAMPLES, || {
            raw_lapin(&url, n)
        })
        .await;
    } else {
        println!("queues/rabbitmq  skipped: FLEXTIME_TEST_AMQP_URL is not set");
    }
    if !wanted("nats") {
    } else if let Some(url) = env("FLEXTIME_TEST_NATS_URL") {
        let broker = flextime_queues::connect(&url).await.expect("nats");
        bench("nats", broker, n, LATENCY_SAMPLES, || raw_nats(&url, n)).await;
    } else {
        println!("queues/nats      skipped: FLEXTIME_TEST_NATS_URL is not set");
    }
    if !wanted("kafka") {
    } else if let Some(url) = env("FLEXTIME_TEST_KAFKA_URL") {
        let brokers = url.trim_start_matches("kafka://").to_owned();
        let mut config = flextime_queues::kafka::KafkaConfig::new(brokers.clone());
        config.extra.insert("fetch.wait.max.ms".into(), "10".into());
        let broker: Arc<dyn Broker> =
            Arc::new(flextime_queues::kafka::KafkaBroker::new(config).expect("kafka"));
        bench("kafka", broker, n, KAFKA_LATENCY_SAMPLES, || {
            raw_kafka(&brokers, n)
        })
        .await;
    } else {
        println!("queues/kafka     skipped: FLEXTIME_TEST_KAFKA_URL is not set");
    }
}
