//! The catalogue of metric names and the tracing conventions every Flextime
//! crate follows.
//!
//! Metrics go through the [`metrics`] facade: install any recorder
//! (Prometheus, StatsD, OpenTelemetry) in the host application and every
//! crate reports into it. All names start with `flextime_`; counters end in
//! `_total`, durations are histograms in seconds ending in `_seconds`.
//! [`describe_metrics`] registers a description and unit for each.
//!
//! Install the recorder before building Flextime components: hot paths
//! register their metric handles once (the webhook dispatcher, when an
//! endpoint is added or loaded), and a handle registered while no recorder
//! is installed stays a no-op.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `flextime_retries_total` | counter | `kind` | retries made by [`crate::resilience::RetryPolicy`], by error kind |
//! | `flextime_rate_limited_total` | counter | `limiter` | requests refused by a client-side rate limiter |
//! | `flextime_breaker_transitions_total` | counter | `breaker`, `to` | circuit breaker state changes |
//! | `flextime_health_status` | gauge | `check` | 0 healthy, 1 degraded, 2 unhealthy |
//! | `flextime_webhooks_received_total` | counter | `source` | inbound webhook requests |
//! | `flextime_webhooks_rejected_total` | counter | `source`, `reason` | inbound requests refused |
//! | `flextime_webhooks_duplicates_total` | counter | `source` | inbound deliveries seen before |
//! | `flextime_webhooks_handoff_seconds` | histogram | `source` | time to put an event in durable hands |
//! | `flextime_webhooks_in_flight` | gauge | `source` | requests being processed |
//! | `flextime_deliveries_total` | counter | `endpoint`, `outcome` | outbound webhook attempts |
//! | `flextime_delivery_seconds` | histogram | `endpoint` | outbound attempt latency |
//! | `flextime_queue_published_total` | counter | `backend`, `topic` | messages confirmed by a broker |
//! | `flextime_queue_consumed_total` | counter | `backend`, `topic`, `outcome` | deliveries acked, nacked or dead-lettered |
//! | `flextime_db_operations_total` | counter | `backend`, `op`, `outcome` | adapter operations |
//! | `flextime_db_operation_seconds` | histogram | `backend`, `op` | adapter operation latency |
//! | `flextime_connector_requests_total` | counter | `connector`, `status` | HTTP requests to vendors |
//! | `flextime_connector_request_seconds` | histogram | `connector` | vendor request latency |
//! | `flextime_sync_changes_total` | counter | `pipeline`, `outcome` | changes applied, stale, conflicting or rejected |
//! | `flextime_sync_lag_seconds` | gauge | `pipeline` | age of the newest change applied |
//!
//! ## Tracing conventions
//!
//! - One span per unit of work, named `<crate>.<operation>` in snake case:
//!   `webhooks.receive`, `webhooks.deliver`, `queues.publish`,
//!   `queues.consume`, `db.<op>`, `connector.request`, `sync.batch`.
//! - Span fields use these names when they apply: `source`, `endpoint`,
//!   `event_id`, `event_type`, `idempotency_key`, `topic`, `backend`,
//!   `collection`, `record_id`, `pipeline`, `attempt`, `status`.
//! - Never record a secret, a full request body or a header that carries
//!   credentials; wrap credentials in [`crate::Secret`], which prints as
//!   `[REDACTED]`.
//! - Errors are recorded once, where they are handled, with `error = %err`.

/// Retries made by a retry policy. Labels: `kind`.
pub const RETRIES: &str = "flextime_retries_total";
/// Requests refused by a client-side rate limiter. Labels: `limiter`.
pub const RATE_LIMITED: &str = "flextime_rate_limited_total";
/// Circuit breaker state changes. Labels: `breaker`, `to`.
pub const BREAKER_TRANSITIONS: &str = "flextime_breaker_transitions_total";
/// Health of each check (0 healthy, 1 degraded, 2 unhealthy). Labels: `check`.
pub const HEALTH_STATUS: &str = "flextime_health_status";
/// Inbound webhook requests. Labels: `source`.
pub const WEBHOOKS_RECEIVED: &str = "flextime_webhooks_received_total";
/// Inbound webhook requests refused. Labels: `source`, `reason`.
pub const WEBHOOKS_REJECTED: &str = "flextime_webhooks_rejected_total";
/// Inbound webhook deliveries seen before. Labels: `source`.
pub const WEBHOOKS_DUPLICATES: &str = "flextime_webhooks_duplicates_total";
/// Seconds to hand an inbound event to durable storage. Labels: `source`.
pub const WEBHOOKS_HANDOFF_SECONDS: &str = "flextime_webhooks_handoff_seconds";
/// Inbound webhook requests in flight. Labels: `source`.
pub const WEBHOOKS_IN_FLIGHT: &str = "flextime_webhooks_in_flight";
/// Outbound webhook attempts. Labels: `endpoint`, `outcome`.
pub const DELIVERIES: &str = "flextime_deliveries_total";
/// Outbound webhook attempt latency. Labels: `endpoint`.
pub const DELIVERY_SECONDS: &str = "flextime_delivery_seconds";
/// Messages confirmed by a broker. Labels: `backend`, `topic`.
pub const QUEUE_PUBLISHED: &str = "flextime_queue_published_total";
/// Deliveries settled by consumers. Labels: `backend`, `topic`, `outcome`.
pub const QUEUE_CONSUMED: &str = "flextime_queue_consumed_total";
/// Database adapter operations. Labels: `backend`, `op`, `outcome`.
pub const DB_OPERATIONS: &str = "flextime_db_operations_total";
/// Database adapter operation latency. Labels: `backend`, `op`.
pub const DB_OPERATION_SECONDS: &str = "flextime_db_operation_seconds";
/// HTTP requests to vendor APIs. Labels: `connector`, `status`.
pub const CONNECTOR_REQUESTS: &str = "flextime_connector_requests_total";
/// Vendor request latency. Labels: `connector`.
pub const CONNECTOR_REQUEST_SECONDS: &str = "flextime_connector_request_seconds";
/// Changes processed by sync pipelines. Labels: `pipeline`, `outcome`.
pub const SYNC_CHANGES: &str = "flextime_sync_changes_total";
/// Age of the newest change a pipeline applied. Labels: `pipeline`.
pub const SYNC_LAG_SECONDS: &str = "flextime_sync_lag_seconds";

/// Every metric: name, unit, description. The table in the module docs and
/// this list are the same catalogue.
pub const CATALOGUE: &[(&str, metrics::Unit, &str)] = &[
    (
        RETRIES,
        metrics::Unit::Count,
        "Retries made by a retry policy",
    ),
    (
        RATE_LIMITED,
        metrics::Unit::Count,
        "Requests refused by a client-side rate limiter",
    ),
    (
        BREAKER_TRANSITIONS,
        metrics::Unit::Count,
        "Circuit breaker state changes",
    ),
    (
        HEALTH_STATUS,
        metrics::Unit::Count,
        "Health per check: 0 healthy, 1 degraded, 2 unhealthy",
    ),
    (
        WEBHOOKS_RECEIVED,
        metrics::Unit::Count,
        "Inbound webhook requests",
    ),
    (
        WEBHOOKS_REJECTED,
        metrics::Unit::Count,
        "Inbound webhook requests refused",
    ),
    (
        WEBHOOKS_DUPLICATES,
        metrics::Unit::Count,
        "Inbound webhook deliveries seen before",
    ),
    (
        WEBHOOKS_HANDOFF_SECONDS,
        metrics::Unit::Seconds,
        "Time to hand an inbound event to durable storage",
    ),
    (
        WEBHOOKS_IN_FLIGHT,
        metrics::Unit::Count,
        "Inbound webhook requests in flight",
    ),
    (
        DELIVERIES,
        metrics::Unit::Count,
        "Outbound webhook attempts",
    ),
    (
        DELIVERY_SECONDS,
        metrics::Unit::Seconds,
        "Outbound webhook attempt latency",
    ),
    (
        QUEUE_PUBLISHED,
        metrics::Unit::Count,
        "Messages confirmed by a broker",
    ),
    (
        QUEUE_CONSUMED,
        metrics::Unit::Count,
        "Deliveries settled by consumers",
    ),
    (
        DB_OPERATIONS,
        metrics::Unit::Count,
        "Database adapter operations",
    ),
    (
        DB_OPERATION_SECONDS,
        metrics::Unit::Seconds,
        "Database adapter operation latency",
    ),
    (
        CONNECTOR_REQUESTS,
        metrics::Unit::Count,
        "HTTP requests to vendor APIs",
    ),
    (
        CONNECTOR_REQUEST_SECONDS,
        metrics::Unit::Seconds,
        "Vendor request latency",
    ),
    (
        SYNC_CHANGES,
        metrics::Unit::Count,
        "Changes processed by sync pipelines",
    ),
    (
        SYNC_LAG_SECONDS,
        metrics::Unit::Seconds,
        "Age of the newest change a pipeline applied",
    ),
];

/// Register the description and unit of every catalogued metric with the
/// installed recorder. Call once after installing it.
pub fn describe_metrics() {
    for (name, unit, description) in CATALOGUE {
        if name.ends_with("_total") {
            metrics::describe_counter!(*name, *unit, *description);
        } else if name.ends_with("_seconds") && *name != SYNC_LAG_SECONDS {
            metrics::describe_histogram!(*name, *unit, *description);
        } else {
            metrics::describe_gauge!(*name, *unit, *description);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_is_documented_and_well_formed() {
        let docs = include_str!("telemetry.rs");
        let mut seen = std::collections::HashSet::new();
        for (name, _, _) in CATALOGUE {
            assert!(name.starts_with("flextime_"), "{name}");
            assert!(seen.insert(*name), "{name} listed twice");
            assert!(
                docs.contains(&format!("| `{name}` |")),
                "{name} missing from the docs table"
            );
        }
    }

    #[test]
    fn describe_registers_every_metric() {
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            describe_metrics();
            metrics::counter!(RETRIES, "kind" => "timeout").increment(2);
        });
        let snapshot = snapshotter.snapshot().into_vec();
        let retries = snapshot
            .iter()
            .find(|(key, ..)| key.key().name() == RETRIES)
            .expect("retries recorded");
        assert_eq!(retries.1, Some(metrics::Unit::Count));
        assert_eq!(retries.3, metrics_util::debugging::DebugValue::Counter(2));
    }
}
