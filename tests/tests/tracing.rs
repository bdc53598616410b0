//! OpenTelemetry across gateways: two gateway processes export their spans
//! over OTLP/HTTP (JSON) to an in-test collector while they run a SATP
//! transfer; the trace context the client sent on `POST /v1/transfers`
//! travels in HTTP headers and inside the signed SATP messages, so every
//! span of the transfer, on both gateways, is in that one trace.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::Duration;

use ledger_core::{Hashlock, TxBody};
use lockgate_e2e::otlp::{Receiver, Span};
use lockgate_e2e::satp::*;
use lockgate_e2e::*;

/// The trace and span of the client calling `POST /v1/transfers`.
const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const CALLER: &str = "b7ad6b7169203331";

fn in_trace<'a>(spans: &'a [Span], service: &'a str) -> impl Iterator<Item = &'a Span> + 'a {
    spans
        .iter()
        .filter(move |s| s.trace_id == TRACE && s.service == service)
}

fn has(spans: &[Span], service: &str, name: &str) -> bool {
    in_trace(spans, service).any(|s| s.name == name)
}

fn has_prefix(spans: &[Span], service: &str, prefix: &str) -> bool {
    in_trace(spans, service).any(|s| s.name.starts_with(prefix))
}

/// Spans of `child_service` whose parent is a span of `parent_service`
/// named `parent_name`: the context crossed from one process to the other.
fn crossings(
    spans: &[Span],
    parent_service: &str,
    parent_name: &str,
    child_service: &str,
) -> usize {
    let parents: HashSet<&str> = in_trace(spans, parent_service)
        .filter(|s| s.name.starts_with(parent_name))
        .map(|s| s.span_id.as_str())
        .collect();
    in_trace(spans, child_service)
        .filter(|s| parents.contains(s.parent_span_id.as_str()))
        .count()
}

#[tokio::test]
async fn one_trace_follows_a_satp_transfer_across_both_gateways() {
    let collector = Receiver::start().await;
    let endpoint = collector.endpoint();
    let vars = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let net = Net::new().await;
    let pb = net.b.start(&vars).await;
    let pa = net.a.start(&vars).await;
    // The service names default to the gateway ids.
    let (a, b) = ("gw-a", "gw-b");
    net.issue(&pa, &pb).await;

    let preimage = [0x17u8; 32];
    let hashlock = Hashlock::of_preimage(&preimage);
    let traceparent = format!("00-{TRACE}-{CALLER}-01");
    let created = net
        .create_with_headers(&pa, hashlock, &[("traceparent", &traceparent)])
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    net.lock(&pa, &created, hashlock).await;
    net.claim_and_complete(&pa, &pb, &id, preimage, 0).await;

    collector
        .wait_for(
            Duration::from_secs(20),
            "both gateways' spans of the transfer in the client's trace",
            |spans| {
                // A: the request, under the client's span; its engine steps,
                // SATP sends, store and adapter calls.
                in_trace(spans, a).any(|s| {
                    s.name == "POST /v1/transfers" && s.parent_span_id == CALLER && s.kind == 2
                }) && has(spans, a, "transfer.step")
                    && in_trace(spans, a).any(|s| s.name == "satp.send" && s.kind == 3)
                    && has_prefix(spans, a, "store.")
                    && has_prefix(spans, a, "adapter.")
                    // B: the SATP requests and messages, its own engine steps
                    // (B's side of the transfer keeps the trace), its store
                    // and adapter calls.
                    && has(spans, b, "POST /v1/satp/messages")
                    && has(spans, b, "satp.receive")
                    && has(spans, b, "transfer.step")
                    && has_prefix(spans, b, "store.")
                    && has_prefix(spans, b, "adapter.")
                    // Parent links across the processes, both ways: B's
                    // requests under A's sends, and A's ledger API answering
                    // B's adapter (B reads alice's lock on A's ledger).
                    && crossings(spans, a, "satp.send", b) > 0
                    && crossings(spans, b, "adapter.", a) > 0
                    // The message that completes the transfer arrived.
                    && in_trace(spans, b).any(|s| {
                        s.name == "satp.receive"
                            && s.attribute("satp.message_type") == Some("commit-transfer-complete-msg")
                    })
            },
        )
        .await;

    // Nothing of this transfer went into another trace: every SATP message
    // B received, every SATP request and every engine step on either side.
    let spans = collector.spans();
    for (service, name) in [
        (b, "satp.receive"),
        (b, "POST /v1/satp/messages"),
        (a, "satp.send"),
        (a, "transfer.step"),
        (b, "transfer.step"),
    ] {
        let stray: Vec<&Span> = spans
            .iter()
            .filter(|s| s.service == service && s.name == name && s.trace_id != TRACE)
            .collect();
        assert!(
            stray.is_empty(),
            "{service} {name} outside the trace: {stray:?}"
        );
    }
    // Every message type of the session was received in the trace.
    let received: HashSet<&str> = in_trace(&spans, b)
        .filter(|s| s.name == "satp.receive")
        .filter_map(|s| s.attribute("satp.message_type"))
        .collect();
    for message in [
        "transfer-proposal-msg",
        "transfer-commence-msg",
        "lock-assert-msg",
        "commit-prepare-msg",
        "commit-final-msg",
        "commit-transfer-complete-msg",
    ] {
        assert!(received.contains(message), "{message} not in {received:?}");
    }
    // Both the HTTP header and the signed message carried the context: the
    // stored envelopes on B name A's spans of the trace.
    let pool = net.b.db.pool().await;
    let envelopes: Vec<(String,)> =
        sqlx::query_as("SELECT envelope FROM satp_messages WHERE sender = 'client' ORDER BY seq")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    assert!(!envelopes.is_empty());
    for (text,) in envelopes {
        let envelope: adapters::satp::envelope::Envelope = serde_json::from_str(&text).unwrap();
        let carried = adapters::satp::envelope::traceparent(&envelope).expect("a traceparent");
        assert!(carried.starts_with(&format!("00-{TRACE}-")), "{carried}");
    }
}

#[tokio::test]
async fn without_a_collector_listening_the_gateway_runs_the_same_and_logs_no_error() {
    let db = PgDatabase::new().await;
    let log = tempfile::NamedTempFile::new().unwrap();
    // Nothing listens on this port.
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let env = Env::new(&db.url)
        .with_vars(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("RUST_LOG", "info"),
        ])
        .log_to(log.path().to_path_buf());
    let process = env.start().await;
    let token = env.token().await;
    for nonce in 0..3 {
        let tx = sign(
            &key(1),
            nonce,
            TxBody::RegisterAsset {
                code: format!("EU{}", (b'A' + nonce as u8) as char)
                    .parse()
                    .unwrap(),
                scale: ledger_core::Scale::new(2).unwrap(),
            },
        );
        let (status, body) = process.submit(&token, &tx).await.unwrap();
        assert_eq!(status, 201, "{body}");
    }
    for path in ["/healthz", "/readyz"] {
        assert_eq!(process.get(path, "").await.0, 200, "{path}");
    }
    // The exporter gives up on its first batch (after its retries) and says
    // so; the gateway serves on regardless.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(log.path())
        .unwrap()
        .contains("Export.Failed")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no failed export was logged: {}",
            std::fs::read_to_string(log.path()).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(process.get("/readyz", "").await.0, 200);
    let tx = sign(
        &key(1),
        3,
        TxBody::RegisterAsset {
            code: "EUD".parse().unwrap(),
            scale: ledger_core::Scale::new(2).unwrap(),
        },
    );
    assert_eq!(process.submit(&token, &tx).await.unwrap().0, 201);
    drop(process);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = std::fs::read_to_string(log.path()).unwrap();
    assert!(text.contains("exporting spans over OTLP"), "{text}");
    let errors: Vec<&str> = text.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(errors.is_empty(), "{errors:#?}");
}
