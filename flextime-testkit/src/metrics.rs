//! Reading metrics back in tests, from a snapshot of
//! [`metrics_util::debugging::DebuggingRecorder`].

use metrics::{SharedString, Unit};
use metrics_util::CompositeKey;
use metrics_util::debugging::DebugValue;

/// One series of a debugging recorder's snapshot
/// (`snapshotter.snapshot().into_vec()`).
pub type Series = (CompositeKey, Option<Unit>, Option<SharedString>, DebugValue);

/// What `snapshot` holds for the metric `name` whose labels include every
/// `(key, value)` of `labels` (the first such series), or `None`. Take the
/// snapshot once and query it: a snapshot drains the recorder's histograms.
///
/// ```
/// use metrics_util::debugging::{DebugValue, DebuggingRecorder};
/// use flextime_testkit::metrics::recorded;
///
/// let recorder = DebuggingRecorder::new();
/// let snapshotter = recorder.snapshotter();
/// metrics::with_local_recorder(&recorder, || {
///     metrics::counter!("jobs_total", "queue" => "a", "outcome" => "ok").increment(2);
/// });
/// let snapshot = snapshotter.snapshot().into_vec();
/// assert_eq!(
///     recorded(&snapshot, "jobs_total", &[("outcome", "ok")]),
///     Some(&DebugValue::Counter(2))
/// );
/// assert_eq!(recorded(&snapshot, "jobs_total", &[("queue", "b")]), None);
/// ```
pub fn recorded<'a>(
    snapshot: &'a [Series],
    name: &str,
    labels: &[(&str, &str)],
) -> Option<&'a DebugValue> {
    snapshot
        .iter()
        .find(|(key, ..)| {
            key.key().name() == name
                && labels
                    .iter()
                    .all(|(k, v)| key.key().labels().any(|l| l.key() == *k && l.value() == *v))
        })
        .map(|(_, _, _, value)| value)
}
