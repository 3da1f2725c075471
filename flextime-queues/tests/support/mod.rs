//! Shared by the backends' test files: the broker-restart check on a
//! private server the test owns (never the shared peer other tests use).
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use flextime_queues::Error;
use flextime_queues::conformance::Suite;
use flextime_testkit::server::PrivateServer;

/// Starts `server`'s process off the async runtime.
pub async fn start(
    name: &'static str,
    port: u16,
    launch: impl Fn(&std::path::Path) -> std::process::Command + Send + Sync + 'static,
) -> PrivateServer {
    tokio::task::spawn_blocking(move || PrivateServer::start(name, port, launch))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("starting a private {name}: {e}"))
}

/// Runs [`Suite::broker_restart_loses_nothing`], killing and restarting
/// `server` (same port, same data directory) in the middle.
pub async fn restart_check(suite: &Suite, server: PrivateServer) {
    let server = Arc::new(Mutex::new(server));
    suite
        .broker_restart_loses_nothing(|| {
            let server = Arc::clone(&server);
            async move {
                tokio::task::spawn_blocking(move || server.lock().unwrap().restart())
                    .await
                    .map_err(|e| Error::internal(e.to_string()))?
                    .map_err(|e| Error::unavailable(format!("restarting the broker: {e}")))
            }
        })
        .await
        .unwrap();
}
