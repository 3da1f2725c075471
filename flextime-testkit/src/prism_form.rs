//! A pass-through in front of Prism for form bodies with arrays of objects
//! (feature `prism-form`).
//!
//! Prism 5 cannot validate a form-encoded array of objects: its deepObject
//! deserializer builds the objects, then `parseBrokenJSONArray`
//! (`@stoplight/prism-http/dist/validator/validators/body.js`) concatenates
//! them as text, fails to parse `[object Object]` and answers every such
//! request with a 415 "Cannot deserialize JSON object array in form data
//! request body", validating nothing. Stripe's Checkout Sessions need one
//! (`line_items[0][price_data][unit_amount]=...`).
//!
//! [`serve`] starts a local proxy that forwards every request to Prism
//! unchanged except the pairs of the named array parameters, which it checks
//! itself against the same vendor document ([`check_pairs`]: every key path
//! must exist in the request body schema, integers must be integers,
//! booleans booleans, enums members, lengths within `maxLength`). A problem
//! found is added to the response's `sl-violations` header, where Prism's
//! own findings are, so a test that reads that header sees both.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// Where the vendor documents are: `$FLEXTIME_VENDOR_SPECS`, else
/// `../shared/vendor-specs` beside the workspace.
pub fn vendor_specs_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("FLEXTIME_VENDOR_SPECS") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vendor-specs")
}

/// Reads a JSON vendor document under [`vendor_specs_dir`].
pub fn load_document(relative: &str) -> Result<Value, String> {
    let path = vendor_specs_dir().join(relative);
    let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// `METHOD /path` of each request with the violations found, if any.
type Log = Arc<Mutex<Vec<(String, Option<String>)>>>;

struct Shim {
    prism: String,
    document: Value,
    arrays: Vec<String>,
    client: reqwest::Client,
    seen: Log,
}

/// A running pass-through: its URL and what went through it.
#[derive(Clone)]
pub struct PassThrough {
    /// The base URL to point a client at instead of Prism's.
    pub url: String,
    seen: Log,
}

impl PassThrough {
    /// Every request so far (`METHOD /path`) with the violations found, by
    /// Prism (its `sl-violations` header, or its problem document) or by the
    /// pass-through.
    pub fn requests(&self) -> Vec<(String, Option<String>)> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Starts the proxy in front of `prism_url`, checking the parameters named
/// in `arrays` against `document` itself (none: a plain recording proxy).
pub async fn serve(
    prism_url: &str,
    document: Value,
    arrays: &[&str],
) -> std::io::Result<PassThrough> {
    let seen: Log = Arc::new(Mutex::new(Vec::new()));
    let shim = Arc::new(Shim {
        prism: prism_url.trim_end_matches('/').to_owned(),
        document,
        arrays: arrays.iter().map(|a| (*a).to_owned()).collect(),
        client: reqwest::Client::new(),
        seen: seen.clone(),
    });
    let router = axum::Router::new().fallback(forward).with_state(shim);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(PassThrough {
        url: format!("http://{addr}"),
        seen,
    })
}

async fn forward(
    State(shim): State<Arc<Shim>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let is_form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    let mut problems = Vec::new();
    let mut forwarded = body.clone();
    if is_form {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(&body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let (checked, kept): (Vec<_>, Vec<_>) = pairs.into_iter().partition(|(k, _)| {
            shim.arrays.iter().any(|a| {
                k.strip_prefix(a.as_str())
                    .is_some_and(|r| r.starts_with('['))
            })
        });
        if !checked.is_empty() {
            match body_schema(&shim.document, &method, uri.path()) {
                Some(schema) => problems.extend(check_pairs(schema, &checked)),
                None => problems.push(format!("no form body schema for {method} {}", uri.path())),
            }
            let mut out = form_urlencoded::Serializer::new(String::new());
            for (k, v) in &kept {
                out.append_pair(k, v);
            }
            forwarded = Bytes::from(out.finish());
        }
    }
    let target = format!(
        "{}{}",
        shim.prism,
        uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let line = format!("{method} {}", uri.path());
    let mut request = shim.client.request(method, target).body(forwarded);
    for (name, value) in &headers {
        if !matches!(name.as_str(), "host" | "content-length") {
            request = request.header(name, value);
        }
    }
    let answer = match request.send().await {
        Ok(answer) => answer,
        Err(e) => return (StatusCode::BAD_GATEWAY, format!("prism: {e}")).into_response(),
    };
    let status = answer.status();
    let mut out_headers = HeaderMap::new();
    for (name, value) in answer.headers() {
        if !matches!(
            name.as_str(),
            "content-length" | "transfer-encoding" | "connection"
        ) {
            out_headers.append(name, value.clone());
        }
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    if !problems.is_empty() {
        let list: Vec<Value> = problems
            .iter()
            .map(|p| serde_json::json!({"location": ["request", "body"], "severity": "Error", "message": p, "source": "flextime-testkit prism_form"}))
            .collect();
        let mut all = out_headers
            .get("sl-violations")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| serde_json::from_str::<Vec<Value>>(v).ok())
            .unwrap_or_default();
        all.extend(list);
        if let Ok(v) = HeaderValue::from_str(&Value::Array(all).to_string()) {
            out_headers.insert("sl-violations", v);
        }
    }
    let problem = out_headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/problem+json"));
    let violations = match out_headers.get("sl-violations") {
        Some(v) => Some(String::from_utf8_lossy(v.as_bytes()).into_owned()),
        None if problem => Some(String::from_utf8_lossy(&bytes).into_owned()),
        None => None,
    };
    shim.seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push((line, violations));
    (status, out_headers, bytes).into_response()
}

/// The `application/x-www-form-urlencoded` request body schema of
/// `method path` in an OpenAPI document (path templates matched segment by
/// segment).
pub fn body_schema<'a>(document: &'a Value, method: &Method, path: &str) -> Option<&'a Value> {
    let paths = document.get("paths")?.as_object()?;
    let wanted: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (_, item) = paths.iter().find(|(template, _)| {
        let parts: Vec<&str> = template.trim_matches('/').split('/').collect();
        parts.len() == wanted.len()
            && parts
                .iter()
                .zip(&wanted)
                .all(|(t, w)| t == w || (t.starts_with('{') && t.ends_with('}')))
    })?;
    item.get(method.as_str().to_ascii_lowercase())?
        .pointer("/requestBody/content/application~1x-www-form-urlencoded/schema")
}

/// Checks bracket-notation pairs (`a[0][b]=v`) against an object schema:
/// every key path must be declared (properties, array items, or
/// `additionalProperties`), and each value must fit its leaf schema. Returns
/// one message per problem.
pub fn check_pairs(schema: &Value, pairs: &[(String, String)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (key, value) in pairs {
        let Some(segments) = split_key(key) else {
            problems.push(format!("{key}: not bracket notation"));
            continue;
        };
        if let Err(p) = check_path(schema, &segments, value) {
            problems.push(format!("{key}: {p}"));
        }
    }
    problems
}

fn split_key(key: &str) -> Option<Vec<&str>> {
    let (head, mut rest) = key.find('[').map_or((key, ""), |i| (&key[..i], &key[i..]));
    let mut segments = vec![head];
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[')?;
        let end = inner.find(']')?;
        segments.push(&inner[..end]);
        rest = &inner[end + 1..];
    }
    Some(segments)
}

fn check_path(schema: &Value, segments: &[&str], value: &str) -> Result<(), String> {
    if let Some(alternatives) = schema.get("anyOf").and_then(Value::as_array) {
        let mut last = String::from("no alternative of anyOf fits");
        for alt in alternatives {
            match check_path(alt, segments, value) {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
        }
        return Err(last);
    }
    let Some((first, rest)) = segments.split_first() else {
        return check_leaf(schema, value);
    };
    let kind = schema.get("type").and_then(Value::as_str);
    let next = match kind {
        Some("array") => {
            if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("array index {first:?} is not a number"));
            }
            schema
                .get("items")
                .ok_or_else(|| "array without items".to_owned())?
        }
        _ => {
            if let Some(p) = schema.get("properties").and_then(|p| p.get(*first)) {
                p
            } else if let Some(extra) = schema.get("additionalProperties").filter(|a| a.is_object())
            {
                extra
            } else {
                return Err(format!("{first:?} is not a declared property"));
            }
        }
    };
    check_path(next, rest, value)
}

fn check_leaf(schema: &Value, value: &str) -> Result<(), String> {
    match schema.get("type").and_then(Value::as_str) {
        Some("integer") if value.parse::<i64>().is_err() => {
            return Err(format!("{value:?} is not an integer"));
        }
        Some("number") if value.parse::<f64>().is_err() => {
            return Err(format!("{value:?} is not a number"));
        }
        Some("boolean") if !matches!(value, "true" | "false") => {
            return Err(format!("{value:?} is not a boolean"));
        }
        Some("object" | "array") => return Err("a container given a scalar value".to_owned()),
        _ => {}
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if !options.iter().any(|o| o.as_str() == Some(value)) {
            return Err(format!("{value:?} is not one of {options:?}"));
        }
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
        if u64::try_from(value.chars().count()).unwrap_or(u64::MAX) > max {
            return Err(format!("longer than maxLength {max}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {"line_items": {"type": "array", "items": {
        "type": "object", "properties": {
            "quantity": {"type": "integer"},
            "price_data": {"type": "object", "properties": {
                "currency": {"type": "string"},
                "tax_behavior": {"type": "string", "enum": ["exclusive", "inclusive"]},
                "product_data": {"type": "object", "properties": {
                    "name": {"type": "string", "maxLength": 5},
                    "metadata": {"type": "object", "additionalProperties": {"type": "string"}}
                }}
            }}
        }}}}})
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn declared_paths_with_fitting_values_pass() {
        let ok = pairs(&[
            ("line_items[0][quantity]", "1"),
            ("line_items[0][price_data][currency]", "eur"),
            ("line_items[1][price_data][tax_behavior]", "inclusive"),
            ("line_items[0][price_data][product_data][name]", "Dep"),
            (
                "line_items[0][price_data][product_data][metadata][any]",
                "x",
            ),
        ]);
        assert!(check_pairs(&schema(), &ok).is_empty());
    }

    #[test]
    fn undeclared_paths_and_bad_values_are_reported() {
        let bad = pairs(&[
            ("line_items[0][quantity]", "1.5"),
            ("line_items[x][quantity]", "1"),
            ("line_items[0][price]", "p"),
            ("line_items[0][price_data][tax_behavior]", "none"),
            ("line_items[0][price_data][product_data][name]", "Deposit"),
            ("line_items[0][price_data]", "x"),
            ("line_items[0", "x"),
        ]);
        assert_eq!(check_pairs(&schema(), &bad).len(), 7);
    }

    #[test]
    fn body_schemas_are_found_by_path_template() {
        let doc = json!({"paths": {"/v1/things/{id}/go": {"post": {"requestBody": {"content": {
            "application/x-www-form-urlencoded": {"schema": {"type": "object"}}}}}}}});
        assert!(body_schema(&doc, &Method::POST, "/v1/things/t_1/go").is_some());
        assert!(body_schema(&doc, &Method::GET, "/v1/things/t_1/go").is_none());
        assert!(body_schema(&doc, &Method::POST, "/v1/things/t_1").is_none());
    }
}
