//! Consume a topic as a member of a consumer group and print each message
//! as one JSON line: `{"id", "key", "headers", "payload", "attempt"}`.
//!
//! ```sh
//! queue_consume --url redis://127.0.0.1:6379 --topic bookings --group billing --max 3
//! ```
//!
//! The payload is printed as JSON when it is JSON, as a string otherwise.
//! Every printed message is acked.

use clap::Parser;
use flextime_queues::ConsumerOptions;

#[derive(Parser)]
#[command(about = "Consume a Flextime queue topic")]
struct Args {
    /// Broker URL (memory://, redis://, amqp://, nats://; kafka:// with the `kafka` feature).
    #[arg(long)]
    url: String,
    /// Topic to consume.
    #[arg(long)]
    topic: String,
    /// Consumer group.
    #[arg(long)]
    group: String,
    /// Stop after this many messages (default: run until interrupted).
    #[arg(long)]
    max: Option<u64>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("queue_consume: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<(), String> {
    let broker = flextime_queues::connect(&args.url)
        .await
        .map_err(|e| e.to_string())?;
    let mut consumer = broker
        .consumer(ConsumerOptions::new(&args.topic, &args.group))
        .await
        .map_err(|e| e.to_string())?;
    let mut seen = 0u64;
    while args.max.is_none_or(|max| seen < max) {
        let next = tokio::select! {
            next = consumer.next() => next.map_err(|e| e.to_string())?,
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some(delivery) = next else { break };
        let m = delivery.message();
        let payload =
            serde_json::from_slice::<serde_json::Value>(&m.payload).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&m.payload).into_owned())
            });
        println!(
            "{}",
            serde_json::json!({
                "id": m.id,
                "key": m.key,
                "headers": m.headers,
                "payload": payload,
                "attempt": m.attempt,
            })
        );
        delivery.ack().await.map_err(|e| e.to_string())?;
        seen += 1;
    }
    consumer.shutdown().await.map_err(|e| e.to_string())
}
