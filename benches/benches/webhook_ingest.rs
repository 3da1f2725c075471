//! HTTP ingest throughput: the `webhook_receiver` stack (verification,
//! replay check, hand-off to the in-memory channel) next to a bare axum
//! handler that reads the body and answers 200, on the same machine in the
//! same run, with load from `wrk` (Debian package `wrk`). Each request is a
//! distinct, validly signed 1 KiB Standard Webhooks message. Prints both
//! rates and the ratio flextime / bare (target: at least 0.70).

use std::io::Write;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;

use axum::Router;
use axum::routing::post;
use flextime_webhooks::receiver::{ChannelHandOff, Receiver, SourceConfig};
use flextime_webhooks::verify::{StandardWebhooks, Tolerance};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const REQUESTS: usize = 400_000;
const LUA: &str = r#"
local lines = {}
local counter = 0
local i = 0
local body = nil
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end
function init(args)
  local f = assert(io.open(args[1], "r"))
  body = f:read("*l")
  for line in f:lines() do lines[#lines + 1] = line end
  f:close()
  i = (tid or 0) * math.floor(#lines / 4)
end
function request()
  i = i + 1
  if i > #lines then i = 1 end
  local id, ts, sig = lines[i]:match("([^\t]+)\t([^\t]+)\t([^\t]+)")
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["webhook-id"] = id,
    ["webhook-timestamp"] = ts,
    ["webhook-signature"] = sig,
  }, body)
end
"#;

fn rate(output: &str) -> Option<f64> {
    output
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn main() {
    if Command::new("wrk").arg("--version").output().is_err() {
        println!("webhook ingest: skipped, wrk is not installed (apt-get install wrk)");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (bare, ours) = runtime.block_on(async {
        let bare = Router::new().route(
            "/hooks",
            post(|body: axum::body::Bytes| async move {
                (http::StatusCode::OK, body.len().to_string())
            }),
        );
        let sw = StandardWebhooks::new([SECRET.into()], Tolerance::DEFAULT).expect("secret");
        let (handoff, mut events) = ChannelHandOff::new(4096);
        tokio::spawn(async move { while events.recv().await.is_some() {} });
        let ours = Receiver::builder(handoff)
            .source(SourceConfig::new("bench", "/hooks", Arc::new(sw)))
            .build()
            .expect("receiver")
            .router();
        let serve = |app: Router| async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr");
            tokio::spawn(async move {
                axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .await
                .ok();
            });
            addr
        };
        (serve(bare).await, serve(ours).await)
    });

    let dir = std::env::temp_dir().join(format!("flextime-ingest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let script = dir.join("signed.lua");
    std::fs::write(&script, LUA).expect("script");
    let data = dir.join("requests.tsv");
    let sw = StandardWebhooks::new([SECRET.into()], Tolerance::DEFAULT).expect("secret");
    let body = format!(
        r#"{{"type":"booking.created","pad":"{}"}}"#,
        "x".repeat(990)
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&data).expect("data file"));
        writeln!(f, "{body}").expect("write");
        for n in 0..REQUESTS {
            let id = format!("msg_{n:08}");
            writeln!(f, "{id}\t{now}\t{}", sw.sign(&id, now, body.as_bytes())).expect("write");
        }
    }
    let run = |addr: SocketAddr| {
        let out = Command::new("wrk")
            .args(["-t2", "-c32", "-d8s", "-s"])
            .arg(&script)
            .arg(format!("http://{addr}/hooks"))
            .arg("--")
            .arg(&data)
            .output()
            .expect("run wrk");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("Non-2xx") {
            println!("warning: some responses were not 2xx:\n{text}");
        }
        rate(&text).unwrap_or_else(|| panic!("no rate in wrk output:\n{text}"))
    };
    let bare_rate = run(bare);
    let our_rate = run(ours);
    println!(
        "webhook ingest (1 KiB, Standard Webhooks, wrk -t2 -c32)  flextime {our_rate:.0} req/s   bare axum {bare_rate:.0} req/s   ratio (flextime/bare) {:.2}",
        our_rate / bare_rate
    );
    let _ = std::fs::remove_dir_all(&dir);
}
