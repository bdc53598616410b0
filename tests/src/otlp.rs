//! An in-test OpenTelemetry collector: an OTLP/HTTP receiver of traces in
//! the JSON encoding (`POST /v1/traces`, `ExportTraceServiceRequest` as
//! OTLP's JSON mapping: ids as hex strings, enums as integers), written from
//! the OTLP specification, keeping every span it is sent.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::Value;

/// One received span.
#[derive(Clone, Debug)]
pub struct Span {
    /// `service.name` of the resource that sent it.
    pub service: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    /// OTLP `SpanKind`: 1 internal, 2 server, 3 client.
    pub kind: u64,
    /// The span's attributes, values as text.
    pub attributes: Vec<(String, String)>,
}

impl Span {
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

type Spans = Arc<Mutex<Vec<Span>>>;

pub struct Receiver {
    pub port: u16,
    spans: Spans,
    requests: Arc<Mutex<u64>>,
    task: tokio::task::JoinHandle<()>,
}

fn text(value: &Value) -> String {
    // AnyValue: {"stringValue": ...} | {"intValue": "..."} | {"boolValue": ...} | ...
    match value.as_object().and_then(|o| o.values().next()) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

fn attributes(list: &Value) -> Vec<(String, String)> {
    list.as_array()
        .map(|items| {
            items
                .iter()
                .map(|kv| {
                    (
                        kv["key"].as_str().unwrap_or_default().to_string(),
                        text(&kv["value"]),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn traces(
    State((spans, requests)): State<(Spans, Arc<Mutex<u64>>)>,
    body: axum::body::Bytes,
) -> (StatusCode, &'static str) {
    *requests.lock().unwrap() += 1;
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "{}");
    };
    let mut received = Vec::new();
    for resource_spans in request["resourceSpans"].as_array().into_iter().flatten() {
        let resource = attributes(&resource_spans["resource"]["attributes"]);
        let service = resource
            .iter()
            .find(|(k, _)| k == "service.name")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        for scope in resource_spans["scopeSpans"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for span in scope["spans"].as_array().into_iter().flatten() {
                let id = |name: &str| span[name].as_str().unwrap_or_default().to_lowercase();
                received.push(Span {
                    service: service.clone(),
                    trace_id: id("traceId"),
                    span_id: id("spanId"),
                    parent_span_id: id("parentSpanId"),
                    name: span["name"].as_str().unwrap_or_default().to_string(),
                    kind: span["kind"].as_u64().unwrap_or_default(),
                    attributes: attributes(&span["attributes"]),
                });
            }
        }
    }
    spans.lock().unwrap().extend(received);
    (StatusCode::OK, "{}")
}

impl Receiver {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let spans = Spans::default();
        let requests = Arc::new(Mutex::new(0));
        let app = Router::new()
            .route("/v1/traces", post(traces))
            .with_state((spans.clone(), requests.clone()));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            port,
            spans,
            requests,
            task,
        }
    }

    /// `OTEL_EXPORTER_OTLP_ENDPOINT` for a gateway exporting here.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }

    /// Export requests received so far.
    pub fn requests(&self) -> u64 {
        *self.requests.lock().unwrap()
    }

    /// Waits until `done` holds over the spans received; panics after `within`.
    pub async fn wait_for(&self, within: Duration, what: &str, done: impl Fn(&[Span]) -> bool) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if done(&self.spans()) {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                let summary: Vec<String> = self
                    .spans()
                    .iter()
                    .map(|s| {
                        format!(
                            "{} {} {} {}",
                            s.service, s.trace_id, s.name, s.parent_span_id
                        )
                    })
                    .collect();
                panic!(
                    "the collector never saw {what}; it has:\n{}",
                    summary.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
