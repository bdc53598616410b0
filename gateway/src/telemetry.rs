//! Tracing: the log on stderr and, when an OTLP endpoint is configured,
//! the export of the spans to an OpenTelemetry collector; and the W3C trace
//! context (`traceparent`) read from and written to HTTP requests and SATP
//! messages, so one trace follows a transfer across gateways.
//!
//! - **The log** follows `RUST_LOG` (default `info`), as always. Without
//!   export its filter is global; with export each layer has its own
//!   filter, and tracing-subscriber's per-layer filtering can then drop
//!   an event that follows an `enabled` check nobody acted on (sqlx makes
//!   one after every statement; tokio-rs/tracing#2519), so a log filter
//!   naming targets may miss lines while export is on.
//! - **Export** is off unless `telemetry.otlp_endpoint`,
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is
//!   set (and `OTEL_SDK_DISABLED` is not `true`). Spans go out over OTLP/HTTP
//!   in batches from a background thread, `http/protobuf` by default or
//!   `http/json` with `OTEL_EXPORTER_OTLP_PROTOCOL=http/json` (`grpc` is not
//!   built in: refused at start-up, as is any other value). A collector that is down or slow costs
//!   nothing but the dropped spans: requests never wait for the export, and
//!   the gateway starts and runs the same; the log says so with a `WARN`
//!   from `opentelemetry-otlp` per failed export (the SDK's
//!   `BatchSpanProcessor.ExportError` line repeating it is filtered out).
//! - **Sampling**: every span is recorded (`AlwaysOn`), so a caller's
//!   `traceparent` flags cannot switch tracing off for what it starts;
//!   `OTEL_TRACES_SAMPLER` (with `OTEL_TRACES_SAMPLER_ARG`) chooses another
//!   sampler. The caller does choose the trace id: that is what
//!   propagation is for. Which spans go out follows
//!   `telemetry.filter` (`LOCKGATE_TRACE_FILTER`), separately from the log's
//!   filter: the store, adapter and protocol spans are at `debug` level and
//!   are exported by default without appearing in the log.
//! - **Spans**: one per HTTP request (named `METHOD /route/{template}`,
//!   server kind, with the status), per store call (`store.<method>`), per
//!   ledger adapter call (`adapter.<method>`, with the chain id), per transfer
//!   engine step (`transfer.step`), per SATP exchange (`satp.send`, client
//!   kind, with the message type) and per SATP message received
//!   (`satp.receive`). A store call's span outside any other span (the
//!   background loops' polling) is not exported.
//! - **Context in**: a request's `traceparent` header (W3C Trace Context
//!   level 1) makes its span a child of the caller's. A SATP message's
//!   `traceparent` protected-header parameter (signed with the message; see
//!   docs/satp.md) makes `satp.receive` a child of the sender's step.
//! - **Context out**: SATP requests carry `traceparent` in the HTTP header
//!   and in the message's protected header. A transfer keeps the context of
//!   the request that created it (`transfers.trace_parent`, stored), so every
//!   later step, on either gateway and after a restart, joins that one trace.

use std::collections::HashMap;

use anyhow::Context as _;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::TelemetryConfig;

/// The name of the W3C trace context header and SATP header parameter.
pub const TRACEPARENT: &str = "traceparent";

/// Keeps the export running; flushes and stops it when dropped (at the end
/// of `lockgate serve`).
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            // Sends what is queued; a collector that is gone only loses it.
            let _ = provider.shutdown();
        }
    }
}

fn log_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

fn log_layer<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::filter::FilterExt as _;
    // A collector that cannot be reached is not the gateway's error: the
    // exporter's warning that spans were lost says it, the SDK's ERROR line
    // repeating it is left out.
    let not_export_errors = tracing_subscriber::filter::filter_fn(|meta| {
        !(meta.target() == "opentelemetry_sdk" && meta.name() == "BatchSpanProcessor.ExportError")
    });
    use tracing_subscriber::Layer as _;
    fmt_layer().with_filter(log_filter().and(not_export_errors))
}

/// The log's lines: to stderr, in colour on a terminal.
fn fmt_layer<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
}

/// The log only (the commands other than `serve`, and `serve` without
/// export). The filter is global, not attached to the log layer:
/// tracing-subscriber's per-layer filters carry each decision from
/// `enabled` to the event in a thread-local, and a caller that asks
/// `enabled` and then emits nothing (sqlx does, after every statement, to
/// decide whether to log it) leaves a stale "disabled" there that swallows
/// the next event of that thread (tokio-rs/tracing#2519, open). With
/// `RUST_LOG=lockgate=debug` the log lost most of the store's lines that
/// way; a global filter keeps no such state.
pub fn init_log() {
    let _ = tracing_subscriber::registry()
        .with(log_filter())
        .with(fmt_layer())
        .try_init();
}

fn env_set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
}

/// The log, and the export when configured. `default_service` names the
/// service when neither `OTEL_SERVICE_NAME` nor `telemetry.service_name`
/// does.
pub fn init(config: &TelemetryConfig, default_service: &str) -> anyhow::Result<Telemetry> {
    let from_env =
        env_set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") || env_set("OTEL_EXPORTER_OTLP_ENDPOINT");
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    if disabled || (!from_env && config.otlp_endpoint.is_none()) {
        init_log();
        return Ok(Telemetry::default());
    }
    use tracing_subscriber::filter::FilterExt as _;
    let export_filter = EnvFilter::try_new(&config.filter)
        .with_context(|| format!("telemetry.filter {:?} is not a valid filter", config.filter))?
        .and(not_a_root_store_call());
    use opentelemetry_otlp::WithExportConfig as _;
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol()?);
    if !from_env && let Some(base) = &config.otlp_endpoint {
        builder = builder.with_endpoint(format!("{}/v1/traces", base.trim_end_matches('/')));
    }
    let exporter = builder
        .build()
        .context("configuring the OTLP span exporter")?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    if !env_set("OTEL_SERVICE_NAME") {
        resource = resource.with_service_name(
            config
                .service_name
                .clone()
                .unwrap_or_else(|| default_service.to_string()),
        );
    }
    let mut provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build());
    if !env_set("OTEL_TRACES_SAMPLER") {
        // Every span is recorded, whatever the caller's `traceparent` flags
        // say: a client must not switch off the tracing of the transfers it
        // creates, here and at the peers they reach (the SDK's default,
        // parent-based sampling, would let it). `OTEL_TRACES_SAMPLER`
        // chooses otherwise.
        provider = provider.with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOn);
    }
    let provider = provider.build();
    let tracer = provider.tracer("lockgate");
    tracing_subscriber::registry()
        .with(log_layer())
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(export_filter),
        )
        .try_init()
        .context("installing the tracing subscriber")?;
    Ok(Telemetry {
        provider: Some(provider),
    })
}

/// Leaves out of the export a store call's span that is not inside another
/// span: the background loops' polling (the transfer engine's tick every
/// 200 ms, the producer's commits) would otherwise be a trace each.
fn not_a_root_store_call<S>() -> impl tracing_subscriber::layer::Filter<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::filter::DynFilterFn::new(|meta, cx| {
        !(meta.is_span() && meta.name() == "store" && cx.lookup_current().is_none())
    })
}

/// The OTLP protocol: `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, else
/// `OTEL_EXPORTER_OTLP_PROTOCOL`, else `http/protobuf` (the OTLP default).
/// Anything else, `grpc` included, is refused: the exporter would otherwise
/// fall back silently to another protocol than the one asked for.
fn protocol() -> anyhow::Result<opentelemetry_otlp::Protocol> {
    let (name, value) = [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ]
    .into_iter()
    .find_map(|name| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(|v| (name, v))
    })
    .unwrap_or(("default", "http/protobuf".into()));
    match value.trim() {
        "http/protobuf" => Ok(opentelemetry_otlp::Protocol::HttpBinary),
        "http/json" => Ok(opentelemetry_otlp::Protocol::HttpJson),
        other => anyhow::bail!(
            "{name}={other:?}: this build exports over OTLP/HTTP only (http/protobuf or http/json)"
        ),
    }
}

/// The `traceparent` of the current span, when it belongs to an exported
/// trace.
pub fn current_traceparent() -> Option<String> {
    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    if !span_context.is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Makes `span` a child of the remote span `traceparent` names. Anything
/// malformed is ignored (the span stays where it was): a caller's broken
/// header must not break its request.
pub fn set_remote_parent(span: &tracing::Span, traceparent: &str) {
    let carrier = HashMap::from([(TRACEPARENT.to_string(), traceparent.to_string())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    if context.span().span_context().is_valid() {
        let _ = span.set_parent(context);
    }
}

/// [`set_remote_parent`], unless the current span is already in that
/// trace (a SATP message whose HTTP request carried the same context): then
/// `span` stays the current span's child, nested under the request.
pub fn join_trace(span: &tracing::Span, traceparent: &str) {
    fn trace_id(traceparent: &str) -> Option<&str> {
        traceparent.split('-').nth(1)
    }
    let current = current_traceparent();
    if current.as_deref().and_then(trace_id).is_some()
        && current.as_deref().and_then(trace_id) == trace_id(traceparent)
    {
        return;
    }
    set_remote_parent(span, traceparent);
}

/// A request to a peer, carrying the current trace context in its
/// `traceparent` header.
pub fn traced(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    match current_traceparent() {
        Some(traceparent) => request.header(TRACEPARENT, traceparent),
        None => request,
    }
}

/// Runs `f` with spans that get real OpenTelemetry contexts (as when
/// exporting, all spans recorded) and are sent nowhere.
#[cfg(test)]
pub(crate) fn with_test_tracing(f: impl FnOnce()) {
    let provider = SdkTracerProvider::builder()
        .with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOn)
        .build();
    let subscriber = tracing_subscriber::registry().with(
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("test"))
            .with_filter(tracing_subscriber::filter::LevelFilter::TRACE),
    );
    tracing::subscriber::with_default(subscriber, f);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const REMOTE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    use super::with_test_tracing as with_tracing;

    fn parts(traceparent: &str) -> (String, String) {
        let fields: Vec<&str> = traceparent.split('-').collect();
        assert_eq!(fields.len(), 4, "{traceparent}");
        assert_eq!(fields[0], "00");
        (fields[1].to_string(), fields[2].to_string())
    }

    #[test]
    fn a_remote_parent_continues_its_trace_and_a_malformed_one_is_ignored() {
        with_tracing(|| {
            let span = tracing::info_span!("child");
            set_remote_parent(&span, REMOTE);
            let inside = span.in_scope(current_traceparent).expect("a context");
            let (trace, parent) = parts(&inside);
            assert_eq!(trace, "4bf92f3577b34da6a3ce929d0e0e4736");
            assert_ne!(parent, "00f067aa0ba902b7", "the child's own span id");

            for bad in [
                "",
                "00",
                "00-zz-zz-01",
                "00-00000000000000000000000000000000-0000000000000000-01",
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            ] {
                let span = tracing::info_span!("root");
                set_remote_parent(&span, bad);
                let inside = span.in_scope(current_traceparent).expect("a context");
                assert_ne!(
                    parts(&inside).0,
                    "4bf92f3577b34da6a3ce929d0e0e4736",
                    "{bad:?}"
                );
            }
        });
    }

    /// Keeps every finished span (a simple exporter: at once, in order).
    #[derive(Clone, Debug, Default)]
    struct Collect(std::sync::Arc<std::sync::Mutex<Vec<opentelemetry_sdk::trace::SpanData>>>);

    impl opentelemetry_sdk::trace::SpanExporter for Collect {
        async fn export(
            &self,
            batch: Vec<opentelemetry_sdk::trace::SpanData>,
        ) -> opentelemetry_sdk::error::OTelSdkResult {
            self.0.lock().unwrap().extend(batch);
            Ok(())
        }
    }

    #[test]
    fn a_message_joins_its_senders_trace_unless_the_request_is_already_in_it() {
        let spans = Collect::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(spans.clone())
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            // The request span came with the sender's context (HTTP header).
            let request = tracing::info_span!("request");
            set_remote_parent(&request, REMOTE);
            request.in_scope(|| {
                // The message names the same trace: it stays under the request.
                let same = tracing::info_span!("same");
                join_trace(
                    &same,
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01",
                );
                same.in_scope(|| {});
                drop(same);
                // Another trace in the message than in the header: the
                // message's context wins.
                let other = tracing::info_span!("other");
                join_trace(
                    &other,
                    "00-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-2222222222222222-01",
                );
                other.in_scope(|| {});
                drop(other);
            });
            drop(request);
        });
        let _ = provider.force_flush();
        let finished = spans.0.lock().unwrap().clone();
        let find = |name: &str| {
            finished
                .iter()
                .find(|s| s.name == name)
                .unwrap_or_else(|| panic!("no span {name}: {finished:?}"))
        };
        let (request, same, other) = (find("request"), find("same"), find("other"));
        assert_eq!(
            request.span_context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(request.parent_span_id.to_string(), "00f067aa0ba902b7");
        assert_eq!(
            same.span_context.trace_id(),
            request.span_context.trace_id()
        );
        assert_eq!(
            same.parent_span_id,
            request.span_context.span_id(),
            "under the request"
        );
        assert_eq!(
            other.span_context.trace_id().to_string(),
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        );
        assert_eq!(other.parent_span_id.to_string(), "2222222222222222");
    }

    #[test]
    fn store_calls_are_exported_inside_a_request_or_step_only() {
        let spans = Collect::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(spans.clone())
            .build();
        let subscriber = tracing_subscriber::registry().with(
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("test"))
                .with_filter(not_a_root_store_call()),
        );
        tracing::subscriber::with_default(subscriber, || {
            // The producer's commit: no span around it.
            tracing::debug_span!("store", otel.name = "store.commit_batch_warm").in_scope(|| {});
            let step = tracing::debug_span!("transfer.step");
            step.in_scope(|| {
                tracing::debug_span!("store", otel.name = "store.transfer").in_scope(|| {});
            });
        });
        let _ = provider.force_flush();
        let names: Vec<String> = spans
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.name.to_string())
            .collect();
        assert!(names.contains(&"store.transfer".to_string()), "{names:?}");
        assert!(names.contains(&"transfer.step".to_string()), "{names:?}");
        assert!(
            !names.contains(&"store.commit_batch_warm".to_string()),
            "{names:?}"
        );
    }

    #[test]
    fn without_export_there_is_no_context_to_send() {
        // As `lockgate serve` runs without an endpoint: the log layer only.
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::sink)
                .with_filter(tracing_subscriber::filter::LevelFilter::TRACE),
        );
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("t");
            set_remote_parent(&span, REMOTE);
            assert!(!span.is_none(), "the log still has its span");
            assert_eq!(span.in_scope(current_traceparent), None);
        });
    }
}
