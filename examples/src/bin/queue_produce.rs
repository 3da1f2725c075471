//! Send messages to a topic on any supported broker.
//!
//! ```sh
//! queue_produce --url redis://127.0.0.1:6379 --topic bookings --count 3
//! echo '{"key":"room-1","headers":{"h":"v"},"payload":{"id":7}}' | queue_produce --url ... --topic bookings
//! ```
//!
//! Each stdin line is a JSON object with `payload` (any JSON) and optional
//! `id`, `key` and `headers`, or any other JSON value, which is sent as the
//! payload. Prints one line per confirmed message.

use std::io::BufRead;

use clap::Parser;
use flextime_queues::{Message, ProducerOptions};

#[derive(Parser)]
#[command(about = "Send messages to a Flextime queue topic")]
struct Args {
    /// Broker URL (memory://, redis://, amqp://, nats://; kafka:// with the `kafka` feature).
    #[arg(long)]
    url: String,
    /// Topic to send to.
    #[arg(long)]
    topic: String,
    /// Send this many generated messages (`{"n": i}`) instead of reading stdin.
    #[arg(long)]
    count: Option<u32>,
}

fn message_from_line(line: &str) -> Result<Message, String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let serde_json::Value::Object(map) = &value else {
        return Message::json(&value).map_err(|e| e.to_string());
    };
    let Some(payload) = map.get("payload") else {
        return Message::json(&value).map_err(|e| e.to_string());
    };
    let mut message = Message::json(payload).map_err(|e| e.to_string())?;
    if let Some(id) = map.get("id").and_then(|v| v.as_str()) {
        message = message.with_id(id);
    }
    if let Some(key) = map.get("key").and_then(|v| v.as_str()) {
        message = message.with_key(key);
    }
    if let Some(serde_json::Value::Object(headers)) = map.get("headers") {
        for (name, value) in headers {
            let value = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned);
            message = message.with_header(name, value);
        }
    }
    Ok(message)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("queue_produce: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<(), String> {
    let broker = flextime_queues::connect(&args.url)
        .await
        .map_err(|e| e.to_string())?;
    let producer = broker
        .producer(ProducerOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let mut messages = Vec::new();
    if let Some(count) = args.count {
        for n in 0..count {
            messages
                .push(Message::json(&serde_json::json!({ "n": n })).map_err(|e| e.to_string())?);
        }
    } else {
        for (i, line) in std::io::stdin().lock().lines().enumerate() {
            let line = line.map_err(|e| format!("stdin: {e}"))?;
            if line.trim().is_empty() {
                continue;
            }
            messages.push(message_from_line(&line).map_err(|e| format!("line {}: {e}", i + 1))?);
        }
    }
    for message in messages {
        let id = message.id.clone();
        producer
            .send(&args.topic, message)
            .await
            .map_err(|e| e.to_string())?;
        println!("{}", serde_json::json!({ "sent": id }));
    }
    producer.close().await.map_err(|e| e.to_string())
}
