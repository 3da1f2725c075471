//! [`Transformer`]: turn one change into another (or drop it).

use crate::change::Change;
use crate::error::Result;

/// Turns a change into another, or drops it (`Ok(None)`).
pub trait Transformer: Send + Sync {
    /// Transform one change.
    fn transform(&self, change: Change) -> Result<Option<Change>>;
}

/// The value at a dotted path (`start.tz`, `attendees.0.email`) in a JSON value.
pub fn get_path<'a>(value: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    path.split('.').try_fold(value, |v, seg| match v {
        serde_json::Value::Object(map) => map.get(seg),
        serde_json::Value::Array(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}
