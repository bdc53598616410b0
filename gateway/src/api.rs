//! The HTTP API: routes, handlers, middleware and the OpenAPI document.
//!
//! Conventions (see also `problem.rs` and `auth.rs`):
//! - JSON bodies must be `application/json`, at most
//!   `limits.request_body_bytes_max` bytes, with no unknown fields;
//! - every authenticated write but the records import takes an optional
//!   `Idempotency-Key` (1-255 visible ASCII characters): the first final
//!   answer to a key is stored per tenant and replayed for the same request
//!   (with `Idempotent-Replayed: true`); the same key with a different
//!   request is refused (422 `idempotency-key-reused`). The ledger's
//!   writes, `POST /v1/transfers` and `POST /v1/settlement/records` claim
//!   the key in their handlers ([`once`]), the others through a route layer
//!   given the route's scope ([`idempotent`]);
//! - the same signed transaction submitted again answers like the first time
//!   (its hash is its identity), with or without a key;
//! - lists are paged by an opaque `cursor` and a `limit`;
//! - every response carries `x-request-id` (taken from the request if sent).

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ledger_core::merkle::MerkleTree;
use ledger_core::{
    Address, AssetCode, LockId, Outcome, Rejection, SignedTransaction, TxBody, TxHash, TxKind,
    VerifiedTransaction,
};
use serde::Deserialize;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use utoipa::OpenApi;

use crate::app::App;
use crate::auth::{Caller, Scope};
use crate::dto::SignedTransactionDto;
use crate::problem::{Problem, ProblemMarker};
use crate::sequencer::{Receipt, SequencerError, now_ms};
use crate::store::{IdempotentResponse, LedgerStore, Reservation, StoredTransaction};
use crate::views::*;

type AppState = Arc<App>;

/// The OpenAPI document of the gateway.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Lockgate gateway API",
        description = "REST API of a Lockgate gateway: its built-in ledger (EIP-712 signed transactions, HTLCs, signed blocks, inclusion proofs, export for offline audit). Errors are RFC 9457 problem details (application/problem+json) with stable `type` URIs `urn:lockgate:problem:<slug>`. Amounts, nonces, timelocks and chain ids are decimal strings.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        submit_transaction, submit_batch, get_transaction, get_account, list_assets, register_asset,
        get_asset, list_blocks, get_block, get_htlc, export_chain, list_ledgers,
        crate::transfers::http::create_transfer, crate::transfers::http::get_transfer,
        crate::transfers::http::list_transfers, crate::transfers::http::cancel_transfer, crate::transfers::http::stream_transfers,
        crate::satp::server::receive, crate::satp::recovery::receive, crate::satp::server::identity,
        crate::settlement::http::register_operator, crate::settlement::http::list_operators,
        crate::settlement::http::add_agreement, crate::settlement::http::list_agreements,
        crate::settlement::http::submit_record, crate::settlement::http::list_records,
        crate::settlement::http::get_record, crate::settlement::http::accept_record,
        crate::settlement::http::dispute_record, crate::settlement::http::get_anchor,
        crate::settlement::close::close_period, crate::settlement::close::get_close,
        crate::settlement::close::list_statements, crate::settlement::import::import_records, crate::settlement::close::pay_statement, crate::settlement::http::issue_note, crate::settlement::http::accept_note,
        healthz, readyz, metrics,
    ),
    components(schemas(
        SignedTransactionDto, crate::dto::TxKindDto, crate::dto::AddressText, crate::dto::RegisterAssetMessage,
        crate::dto::PaymentMessage, crate::dto::BurnMessage, crate::dto::HtlcLockMessage,
        crate::dto::HtlcClaimMessage, crate::dto::HtlcRefundMessage, crate::dto::AnchorMessage,
        Problem, ReceiptView, TransactionView, ProofView, BlockHeaderView, BlockView, BlockPage,
        AccountView, BalanceView, AssetView, AssetPage, HtlcView, BatchRequest, BatchView, BatchItemView,
        HealthView, LedgerView, LedgerList,
        crate::transfers::http::CreateTransfer, crate::transfers::http::TransferView,
        crate::transfers::http::TransferEventView, crate::transfers::http::TransferStreamEvent, crate::transfers::http::TransferPage,
        adapters::satp::messages::Message, adapters::satp::messages::TransferInitClaim,
        adapters::satp::messages::Capabilities, adapters::satp::messages::NetworkLockType,
        adapters::satp::envelope::Envelope, crate::satp::problem::SatpError,
        adapters::satp::recovery::RecoveryMessage, adapters::satp::recovery::Compensation,
        crate::settlement::http::OperatorBody, crate::settlement::http::OperatorView,
        crate::settlement::http::OperatorList, crate::settlement::http::AgreementList,
        crate::settlement::http::SubmitRecord, crate::settlement::http::AcceptRecord,
        crate::settlement::http::DisputeRecord, crate::settlement::http::RecordView,
        crate::settlement::http::RecordPage, crate::settlement::http::AnchorView,
        crate::settlement::AgreementBody, crate::settlement::RateBody,
        crate::settlement::ServiceLineBody, crate::settlement::UsageRecordBody,
        crate::settlement::DisputeBody, crate::settlement::NoteBody, crate::settlement::http::IssueNote,
        crate::settlement::close::FxRateBody, crate::settlement::close::CloseBody,
        crate::settlement::close::StatementLineView, crate::settlement::close::PaymentView,
        crate::settlement::close::StatementView, crate::settlement::close::CloseView,
        crate::settlement::close::StatementList, crate::settlement::close::PayStatement, crate::settlement::import::ImportReport,
        crate::settlement::import::RowError,
    )),
    servers((url = "/", description = "This gateway")),
    modifiers(&BearerAuth, &CommonResponses, &StrictSatpMessages),
    tags(
        (name = "ledger", description = "The built-in ledger"),
        (name = "transfers", description = "Cross-ledger transfers between the hosted ledgers, this gateway as connector"),
        (name = "satp", description = "Gateway-to-gateway messages (draft-ietf-satp-core-17), authenticated by pinned identity keys, not tokens"),
        (name = "settlement", description = "Roaming settlement: operators, agreements, EIP-712 signed usage records, acceptance, disputes, anchors on the built-in ledger"),
        (name = "operations", description = "Health, readiness and metrics (no authentication)"),
    ),
)]
pub struct ApiDoc;

struct BearerAuth;

/// Every SATP message variant refuses unknown fields (the parser does too);
/// utoipa does not carry `deny_unknown_fields` into tagged enum variants.
struct StrictSatpMessages;

impl utoipa::Modify for StrictSatpMessages {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::schema::{AdditionalProperties, Schema};
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        if let Some(RefOr::T(Schema::OneOf(one_of))) = components.schemas.get_mut("Message") {
            for item in &mut one_of.items {
                if let RefOr::T(Schema::Object(object)) = item {
                    object.additional_properties =
                        Some(Box::new(AdditionalProperties::FreeForm(false)));
                }
            }
        }
    }
}

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "HS256 JWT with iss, aud, exp, sub, tenant and scope claims (scopes \
                         space-separated) and an optional accounts claim (the addresses the \
                         tenant owns; docs/api.md). Each operation's security requirement \
                         names the scope it needs. Where it lists two: for the settlement \
                         registry's lists either will do; for POST /v1/ledger/transactions \
                         the transaction's primaryType decides (RegisterAsset: \
                         ledger:register-asset, any other: ledger:submit). A batch needs \
                         ledger:submit, and ledger:register-asset too when it holds a \
                         RegisterAsset.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The one write that takes no `Idempotency-Key`: importing a file again
/// is answered record by record instead (docs/settlement.md).
const IMPORT_PATH: &str = "/v1/settlement/records/import";

/// The `Idempotency-Key` request header, as every keyed write declares it.
fn idempotency_key_parameter() -> utoipa::openapi::path::Parameter {
    use utoipa::openapi::Required;
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "Makes the write safe to retry: 1 to 255 visible ASCII characters",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(r"^[!-~]{1,255}$")),
        ))
        .build()
}

/// Adds what every operation shares, so the document matches behaviour
/// without repeating it on each route: the `x-request-id` header on every
/// response; a 500 problem on every operation; for operations behind
/// authentication also 400, 401, 403 (and 404 on reads) and a 503 problem (database unavailable,
/// timeout); on writes with a body 413 and 415; on writes that take an
/// `Idempotency-Key` (every authenticated write but the records import,
/// [`IMPORT_PATH`]) the header parameter, the 409 of a key in use, the 422
/// of one reused with another request and `Idempotent-Replayed` on their
/// answers; 429 `rate-limited` on every operation but the probes and the
/// metrics; `Retry-After` on 409, 429 and 503.
struct CommonResponses;

impl utoipa::Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::header::Header;
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let string_header = |description: &str| {
            let mut header = Header::new(ObjectBuilder::new().schema_type(Type::String));
            header.description = Some(description.to_string());
            RefOr::T(header)
        };
        let problem = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/problem+json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("Problem")))
                            .build(),
                    )
                    .build(),
            )
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                (false, item.get.as_mut()),
                (true, item.post.as_mut()),
                (true, item.put.as_mut()),
                (true, item.delete.as_mut()),
            ];
            for (write, operation) in operations {
                let Some(operation) = operation else { continue };
                // Open operations carry one empty requirement (`security: [{}]`).
                let secured = operation.security.as_ref().is_some_and(|requirements| {
                    requirements.iter().any(|r| {
                        serde_json::to_value(r)
                            .is_ok_and(|v| v.as_object().is_some_and(|o| !o.is_empty()))
                    })
                });
                let has_body = operation.request_body.is_some();
                let keyed =
                    secured && write && path.starts_with("/v1/") && path.as_str() != IMPORT_PATH;
                if keyed {
                    let parameters = operation.parameters.get_or_insert_with(Vec::new);
                    let declared = parameters
                        .iter()
                        .any(|p| matches!(p, RefOr::T(p) if p.name == "Idempotency-Key"));
                    if !declared {
                        parameters.push(RefOr::T(idempotency_key_parameter()));
                    }
                }
                let responses = &mut operation.responses.responses;
                responses.entry("500".into()).or_insert_with(|| {
                    problem("Internal error (the cause is logged under the request id)")
                });
                if secured {
                    responses
                        .entry("400".into())
                        .or_insert_with(|| problem("A malformed parameter or body"));
                    if !write {
                        responses.entry("404".into()).or_insert_with(|| {
                            problem("No such resource, or no such hosted ledger (chainId)")
                        });
                    }
                    responses.entry("401".into()).or_insert_with(|| {
                        problem("Not authenticated (missing, expired or invalid token)")
                    });
                    responses.entry("403".into()).or_insert_with(|| {
                        problem("The token lacks the scope this operation needs")
                    });
                }
                if write && has_body {
                    responses.entry("413".into()).or_insert_with(|| {
                        problem("The body is larger than limits.request_body_bytes_max")
                    });
                }
                if secured && write && has_body {
                    responses
                        .entry("415".into())
                        .or_insert_with(|| problem("The body is not application/json"));
                }
                if !matches!(path.as_str(), "/healthz" | "/readyz" | "/metrics") {
                    responses.entry("429".into()).or_insert_with(|| {
                        problem(
                            "`rate-limited`: over limits.tenant_requests_per_s for the tenant \
                             (or the client address, without a valid token); retry after Retry-After",
                        )
                    });
                }
                if secured {
                    responses.entry("503".into()).or_insert_with(|| {
                        problem(
                            "Database unavailable or request timed out; retry after Retry-After",
                        )
                    });
                }
                if keyed {
                    responses.entry("409".into()).or_insert_with(|| {
                        problem("A request with this Idempotency-Key is still being processed")
                    });
                }
                if keyed {
                    responses.entry("422".into()).or_insert_with(|| {
                        problem("This Idempotency-Key was used with a different request")
                    });
                }
                for (status, response) in responses.iter_mut() {
                    let RefOr::T(response) = response else {
                        continue;
                    };
                    response.headers.insert(
                        "x-request-id".into(),
                        string_header("The request's id (the one sent, or a new UUID)"),
                    );
                    if secured && (status == "401" || status == "403") {
                        response.headers.insert(
                            "WWW-Authenticate".into(),
                            string_header(
                                "The bearer challenge (RFC 6750 section 3): `error=\"invalid_token\"` \
                                 for a token that is not valid, `error=\"insufficient_scope\"` and \
                                 `scope` on a 403 for a missing scope",
                            ),
                        );
                    }
                    if status == "409" || status == "429" || status == "503" {
                        response.headers.insert(
                            "Retry-After".into(),
                            string_header("Seconds to wait before retrying"),
                        );
                    }
                    if keyed {
                        response.headers.insert(
                            "Idempotent-Replayed".into(),
                            string_header("`true` when this is the stored answer to an earlier request with the same Idempotency-Key"),
                        );
                    }
                }
            }
        }
    }
}

/// The OpenAPI document as pretty JSON (what `/openapi.json` serves and
/// `openapi/lockgate.json` holds).
pub fn openapi_json() -> String {
    let mut text = ApiDoc::openapi().to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}

/// The router with every route and middleware.
pub fn router(app: AppState) -> Router {
    let body_limit = app.config.limits.request_body_bytes_max;
    let timeout = std::time::Duration::from_millis(app.config.limits.request_timeout_ms);
    let import_timeout = std::time::Duration::from_millis(app.config.limits.import_timeout_ms);
    // `Idempotency-Key` for the writes that do not claim it in their
    // handler (see `idempotent`).
    let idempotent_layer =
        |scope: Scope| middleware::from_fn_with_state((app.clone(), scope), idempotent);
    let docs: Router = utoipa_swagger_ui::SwaggerUi::new("/docs")
        .url("/openapi.json", ApiDoc::openapi())
        .into();
    Router::new()
        .route("/v1/ledger/transactions", post(submit_transaction))
        .route("/v1/ledger/transactions/batch", post(submit_batch))
        .route("/v1/ledger/transactions/{hash}", get(get_transaction))
        .route("/v1/ledger/accounts/{address}", get(get_account))
        .route("/v1/ledger/assets", get(list_assets).post(register_asset))
        .route("/v1/ledger/assets/{code}", get(get_asset))
        .route("/v1/ledger/blocks", get(list_blocks))
        .route("/v1/ledger/blocks/{height}", get(get_block))
        .route("/v1/ledger/htlcs/{lock_id}", get(get_htlc))
        .route("/v1/ledger/export", get(export_chain))
        .route("/v1/ledgers", get(list_ledgers))
        .route(
            "/v1/transfers",
            post(crate::transfers::http::create_transfer)
                .get(crate::transfers::http::list_transfers),
        )
        .route(
            "/v1/transfers/stream",
            get(crate::transfers::http::stream_transfers),
        )
        .route(
            "/v1/transfers/{id}",
            get(crate::transfers::http::get_transfer),
        )
        .route(
            "/v1/transfers/{id}/cancel",
            post(crate::transfers::http::cancel_transfer)
                .layer(idempotent_layer(Scope::TransfersWrite)),
        )
        .route("/v1/satp/messages", post(crate::satp::server::receive))
        .route("/v1/satp/recovery", post(crate::satp::recovery::receive))
        .route("/v1/satp/identity", get(crate::satp::server::identity))
        .route(
            "/v1/settlement/operators",
            post(crate::settlement::http::register_operator)
                .layer(idempotent_layer(Scope::SettlementAdmin))
                .get(crate::settlement::http::list_operators),
        )
        .route(
            "/v1/settlement/agreements",
            post(crate::settlement::http::add_agreement)
                .layer(idempotent_layer(Scope::SettlementAdmin))
                .get(crate::settlement::http::list_agreements),
        )
        .route(
            "/v1/settlement/records",
            post(crate::settlement::http::submit_record).get(crate::settlement::http::list_records),
        )
        .route(
            "/v1/settlement/records/import",
            post(crate::settlement::import::import_records),
        )
        .route(
            "/v1/settlement/records/{hash}",
            get(crate::settlement::http::get_record),
        )
        .route(
            "/v1/settlement/records/{hash}/accept",
            post(crate::settlement::http::accept_record)
                .layer(idempotent_layer(Scope::SettlementWrite)),
        )
        .route(
            "/v1/settlement/records/{hash}/dispute",
            post(crate::settlement::http::dispute_record)
                .layer(idempotent_layer(Scope::SettlementWrite)),
        )
        .route(
            "/v1/settlement/records/{hash}/anchor",
            get(crate::settlement::http::get_anchor),
        )
        .route(
            "/v1/settlement/records/{hash}/note",
            post(crate::settlement::http::issue_note)
                .layer(idempotent_layer(Scope::SettlementWrite)),
        )
        .route(
            "/v1/settlement/records/{hash}/note/accept",
            post(crate::settlement::http::accept_note)
                .layer(idempotent_layer(Scope::SettlementWrite)),
        )
        .route(
            "/v1/settlement/closes",
            post(crate::settlement::close::close_period)
                .layer(idempotent_layer(Scope::SettlementAdmin)),
        )
        .route(
            "/v1/settlement/closes/{id}",
            get(crate::settlement::close::get_close),
        )
        .route(
            "/v1/settlement/statements",
            get(crate::settlement::close::list_statements),
        )
        .route(
            "/v1/settlement/payments",
            post(crate::settlement::close::pay_statement)
                .layer(idempotent_layer(Scope::SettlementWrite)),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(app.clone())
        .merge(docs)
        .layer(middleware::from_fn_with_state(
            app,
            crate::limits::rate_limit,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            (timeout, import_timeout),
            request_timeout,
        ))
        // Inside `problem_request_id`, so the 500 of a panic carries the
        // request id like every other problem.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_panic| {
            tracing::error!("a request handler panicked");
            Problem::internal().into_response()
        }))
        .layer(middleware::from_fn(problem_request_id))
        .layer(middleware::from_fn(record_metrics))
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(
                    |response: &Response, _latency: std::time::Duration, span: &tracing::Span| {
                        let status = response.status();
                        span.record("http.response.status_code", status.as_u16());
                        if status.is_server_error() {
                            span.record("otel.status_code", "ERROR");
                        }
                    },
                ),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// The span of one request (`crate::telemetry`): named after the route
/// template, a child of the caller's span when a valid `traceparent` came;
/// none for the probes and the metrics scrape.
fn request_span(request: &Request) -> tracing::Span {
    // Probes and scrapes come every few seconds from every monitor: not a
    // trace each.
    if matches!(request.uri().path(), "/healthz" | "/readyz" | "/metrics") {
        return tracing::Span::none();
    }
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |p| p.as_str());
    let method = request.method().as_str();
    let span = tracing::info_span!(
        "request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %method,
        http.route = %route,
        url.path = %request.uri().path(),
        http.response.status_code = tracing::field::Empty,
        request_id = %id,
    );
    if let Some(parent) = request
        .headers()
        .get(crate::telemetry::TRACEPARENT)
        .and_then(|v| v.to_str().ok())
    {
        crate::telemetry::set_remote_parent(&span, parent);
    }
    span
}

/// Answers 503 `timeout` when a request takes longer than the configured
/// limit. A submission that timed out may still commit afterwards; retrying
/// it is safe, since the same signed transaction answers like the first time.
async fn request_timeout(
    State((normal, import)): State<(std::time::Duration, std::time::Duration)>,
    request: Request,
    next: Next,
) -> Response {
    // A bulk import streams for as long as its body takes.
    let limit = if request.uri().path() == "/v1/settlement/records/import" {
        import
    } else {
        normal
    };
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Problem::unavailable(
            "timeout",
            format!("the request took longer than {} ms", limit.as_millis()),
        )
        .into_response(),
    }
}

async fn not_found() -> Problem {
    Problem::not_found("no such route")
}

async fn method_not_allowed() -> Problem {
    Problem::for_status(
        StatusCode::METHOD_NOT_ALLOWED,
        "this route does not take that method",
    )
}

/// Makes every error response a problem: adds the request id to ours, and
/// turns error responses that other layers made without a problem body
/// (axum's own rejections, for instance) into one.
pub(crate) async fn problem_request_id(request: Request, next: Next) -> Response {
    let id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .map(str::to_string);
    let mut response = next.run(request).await;
    // Every 503 and 429 tells the client when to retry, whichever path
    // built it (a submission's answer is stored for idempotent replay as a
    // status and a body, without headers).
    if matches!(
        response.status(),
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
    ) && !response.headers().contains_key(header::RETRY_AFTER)
    {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    // A signed SATP error is passed as it is: adding to it would break its signature.
    if response
        .extensions()
        .get::<crate::satp::problem::Signed>()
        .is_some()
    {
        return response;
    }
    let status = response.status();
    if (status.is_client_error() || status.is_server_error())
        && response.extensions().get::<ProblemMarker>().is_none()
    {
        let detail = match axum::body::to_bytes(std::mem::take(response.body_mut()), 64 << 10).await
        {
            Ok(bytes) if !bytes.is_empty() => String::from_utf8_lossy(&bytes).into_owned(),
            _ => status.canonical_reason().unwrap_or("error").to_string(),
        };
        let headers = response.headers().clone();
        response = Problem::for_status(status, detail).into_response();
        for name in [header::RETRY_AFTER, header::ALLOW] {
            if let Some(value) = headers.get(&name) {
                response.headers_mut().insert(name, value.clone());
            }
        }
    }
    let Some(id) = id else { return response };
    if response.extensions().get::<ProblemMarker>().is_none() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let body = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(mut object)) => {
            object.insert("requestId".into(), serde_json::Value::String(id));
            serde_json::to_vec(&object).unwrap_or_else(|_| bytes.to_vec())
        }
        _ => bytes.to_vec(),
    };
    let mut response = Response::from_parts(parts, Body::from(body));
    response.headers_mut().remove(header::CONTENT_LENGTH);
    response
}

/// A JSON body: content type checked, size limited, parsed strictly, every
/// failure a problem.
pub struct JsonBody<T>(pub T, pub Bytes);

impl<T> FromRequest<AppState> for JsonBody<T>
where
    T: serde::de::DeserializeOwned,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if !is_json(request.headers()) {
            return Err(Problem::unsupported_media_type());
        }
        let bytes = read_body(request, state).await?;
        match serde_json::from_slice::<T>(&bytes) {
            Ok(value) => Ok(JsonBody(value, bytes)),
            Err(error) if error.is_syntax() || error.is_eof() => {
                Err(Problem::malformed_json(error.to_string()))
            }
            Err(error) => Err(Problem::invalid_body(&error)),
        }
    }
}

/// True when the request's `Content-Type` is `application/json`.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// The body within `limits.request_body_bytes_max` (413 beyond it), or 400
/// `invalid-body` when it cannot be read.
async fn read_body(request: Request, state: &AppState) -> Result<Bytes, Problem> {
    let limit = state.config.limits.request_body_bytes_max;
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::payload_too_large(limit)
            } else {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-body",
                    "Invalid request body",
                    format!("could not read the body: {rejection}"),
                )
            }
        })
}

// ---------------------------------------------------------------- idempotency

pub(crate) struct Idempotency {
    key: String,
    request_hash: [u8; 32],
}

pub(crate) fn idempotency(
    headers: &HeaderMap,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<Option<Idempotency>, Problem> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| {
            !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| (0x21..=0x7e).contains(&b))
        })
        .ok_or_else(|| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "idempotency-key-invalid",
                "Invalid Idempotency-Key",
                "the Idempotency-Key must be 1 to 255 visible ASCII characters",
            )
        })?;
    let request_hash =
        ledger_core::hash::sha256_concat(&[method.as_bytes(), b" ", path.as_bytes(), b"\n", body]);
    Ok(Some(Idempotency {
        key: key.to_string(),
        request_hash,
    }))
}

fn replay(stored: IdempotentResponse, request_hash: &[u8; 32]) -> Response {
    if &stored.request_hash != request_hash {
        return key_reused().into_response();
    }
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let content_type = if status.is_success() {
        "application/json"
    } else {
        "application/problem+json"
    };
    let mut response = (status, stored.body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    if !status.is_success() {
        response.extensions_mut().insert(ProblemMarker);
    }
    response
}

/// Runs a write once per idempotency key (after the IETF draft "The
/// Idempotency-Key HTTP Header Field"): the key is claimed before the work
/// starts, so a concurrent request with the same key gets 409
/// `idempotency-key-in-use` instead of running too; a final answer is
/// stored and replayed (see [`stored_answer`]); a 5xx releases the key so a
/// retry can run.
pub(crate) async fn once<F>(
    app: &App,
    caller: &Caller,
    key: Option<Idempotency>,
    work: F,
) -> Response
where
    F: std::future::Future<Output = (StatusCode, serde_json::Value)>,
{
    let work = async {
        let (status, body) = work.await;
        json_response(status, &body)
    };
    match key {
        None => work.await,
        Some(key) => once_per_key(app, &caller.tenant, key, work).await,
    }
}

/// Whether an answer is kept for the key's replays: a JSON 2xx or 4xx
/// answer to the request, except 401, 403 and 415, which are about the
/// credentials or the headers sent, not about the request the key names
/// (method, path and body): a retry with another token or the right
/// `Content-Type` must run. Not kept either: a 5xx, and any answer with
/// `Retry-After` (409 `close-raced`: the gateway itself asks for the same
/// request again).
fn stored_answer(status: StatusCode, headers: &HeaderMap) -> bool {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.starts_with("application/json") || v.starts_with("application/problem+json")
        });
    json && (status.is_success() || status.is_client_error())
        && !matches!(
            status,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::UNSUPPORTED_MEDIA_TYPE
        )
        && !headers.contains_key(header::RETRY_AFTER)
}

/// [`once`] for a key: claims it, runs `work`, keeps its answer when
/// [`stored_answer`] says so (the body as it is; a JSON body is the only
/// kind the writes answer) and releases the key otherwise.
async fn once_per_key<F>(app: &App, tenant: &str, key: Idempotency, work: F) -> Response
where
    F: std::future::Future<Output = Response>,
{
    let stale_after_ms = app
        .config
        .limits
        .request_timeout_ms
        .saturating_mul(2)
        .saturating_add(5_000);
    let reservation = app
        .store
        .reserve_idempotency_key(
            tenant,
            &key.key,
            &key.request_hash,
            now_ms(),
            stale_after_ms,
        )
        .await;
    let claimed_at_ms = match reservation {
        Ok(Reservation::Reserved { claimed_at_ms }) => claimed_at_ms,
        Ok(Reservation::Done(stored)) => return replay(stored, &key.request_hash),
        Ok(Reservation::InProgress { request_hash }) => {
            if request_hash != key.request_hash {
                return key_reused().into_response();
            }
            return Problem::new(
                StatusCode::CONFLICT,
                "idempotency-key-in-use",
                "Idempotency-Key in use",
                "a request with this Idempotency-Key is still being processed; retry shortly",
            )
            .retry_after(1)
            .into_response();
        }
        Err(error) => return Problem::from(error).into_response(),
    };
    // If this future is dropped (client gone, time limit), the claim is
    // released so a retry can run at once; the retry of an applied
    // transaction is answered like the original.
    let mut guard = ClaimGuard {
        store: app.store.clone(),
        tenant: tenant.to_string(),
        key: key.key.clone(),
        claimed_at_ms,
        armed: true,
    };
    let response = work.await;
    let (parts, body) = response.into_parts();
    // The writes answer small JSON documents; one that cannot be read back
    // (or is not UTF-8) is passed on and its key released.
    let bytes = axum::body::to_bytes(body, 64 << 20).await;
    guard.armed = false;
    let text = bytes
        .as_ref()
        .ok()
        .and_then(|bytes| std::str::from_utf8(bytes).ok());
    let saved = match text {
        Some(text) if stored_answer(parts.status, &parts.headers) => {
            let record = IdempotentResponse {
                request_hash: key.request_hash,
                status: parts.status.as_u16(),
                body: text.to_string(),
            };
            app.store
                .complete_idempotency_key(tenant, &key.key, claimed_at_ms, &record)
                .await
        }
        _ => {
            app.store
                .release_idempotency_key(tenant, &key.key, claimed_at_ms)
                .await
        }
    };
    if let Err(error) = saved {
        tracing::error!(%error, "could not record the idempotency key's answer");
    }
    match bytes {
        Ok(bytes) => Response::from_parts(parts, Body::from(bytes)),
        Err(error) => {
            tracing::error!(%error, "could not read a write's answer");
            Problem::internal().into_response()
        }
    }
}

/// `Idempotency-Key` for the writes whose handlers do not claim it
/// themselves (a route layer on them, given the route's scope; the ledger's
/// writes, `POST /v1/transfers` and `POST /v1/settlement/records` call
/// [`once`] in their handlers, since a resubmitted transaction is answered
/// like the first even without a key). Without a key, or without valid
/// credentials (the handler answers 401), the request goes on untouched.
/// Otherwise it is checked in the handlers' order before the key is
/// claimed: the body (415 unless JSON when a `Content-Type` is sent, 413,
/// 400), then the scope (403), then the key (400); then the request runs
/// once per key, method, path and body ([`once_per_key`]).
pub(crate) async fn idempotent(
    State((app, scope)): State<(AppState, Scope)>,
    mut request: Request,
    next: Next,
) -> Response {
    if !request.headers().contains_key("idempotency-key") {
        return next.run(request).await;
    }
    let caller = match request.extensions().get::<Caller>() {
        Some(caller) => Some(caller.clone()),
        None => crate::auth::bearer_token(request.headers())
            .ok()
            .and_then(|token| app.auth.verify(token).ok()),
    };
    let Some(caller) = caller else {
        return next.run(request).await;
    };
    if request.headers().contains_key(header::CONTENT_TYPE) && !is_json(request.headers()) {
        return Problem::unsupported_media_type().into_response();
    }
    request.extensions_mut().insert(caller.clone());
    let (parts, body) = request.into_parts();
    let bytes = match read_body(Request::from_parts(parts.clone(), body), &app).await {
        Ok(bytes) => bytes,
        Err(problem) => return problem.into_response(),
    };
    if let Err(problem) = caller.require(scope) {
        return problem.into_response();
    }
    let key = match idempotency(
        &parts.headers,
        parts.method.as_str(),
        parts.uri.path(),
        &bytes,
    ) {
        Ok(Some(key)) => key,
        Ok(None) => {
            return next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
        }
        Err(problem) => return problem.into_response(),
    };
    let request = Request::from_parts(parts, Body::from(bytes));
    once_per_key(&app, &caller.tenant, key, next.run(request)).await
}

/// Releases an idempotency claim whose request was abandoned.
struct ClaimGuard {
    store: crate::store::AnyStore,
    tenant: String,
    key: String,
    claimed_at_ms: u64,
    armed: bool,
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (store, tenant, key, at) = (
            self.store.clone(),
            std::mem::take(&mut self.tenant),
            std::mem::take(&mut self.key),
            self.claimed_at_ms,
        );
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = store.release_idempotency_key(&tenant, &key, at).await {
                    tracing::warn!(%error, "could not release an abandoned idempotency claim");
                }
            });
        }
    }
}

fn key_reused() -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency-key-reused",
        "Idempotency-Key reused",
        "this Idempotency-Key was already used with a different request",
    )
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let content_type = if status.is_success() {
        "application/json"
    } else {
        "application/problem+json"
    };
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if !status.is_success() {
        response.extensions_mut().insert(ProblemMarker);
    }
    response
}

fn problem_value(problem: &Problem) -> (StatusCode, serde_json::Value) {
    (
        problem.status(),
        serde_json::to_value(problem).unwrap_or_default(),
    )
}

// ---------------------------------------------------------------- submission

/// One transaction's signature check; a refusal carries the hash.
fn verify_one(tx: SignedTransaction) -> Result<VerifiedTransaction, (TxHash, Rejection)> {
    tx.verify_hashed()
        .map_err(|(hash, error)| (hash, Rejection::BadSignature(error)))
}

/// Verifies signatures: those of a batch off the async runtime, in parallel
/// on the rayon pool; a lone one in place.
/// A refused transaction comes back with its hash, for the batch's report.
async fn verify_all(
    txs: Vec<SignedTransaction>,
) -> Result<Vec<Result<VerifiedTransaction, (TxHash, Rejection)>>, Problem> {
    // A lone transaction is checked on the handler's own thread: one
    // recovery (about 40 µs) costs less than two hand-overs between threads,
    // each a wake-up that waits its turn on a busy machine (single-request
    // phases measured 6,046 -> 6,357/s with the default wait, 6,915 ->
    // 7,127/s without; docs/perf item 11).
    if txs.len() == 1 {
        return Ok(txs.into_iter().map(verify_one).collect());
    }
    let (reply, answer) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        use rayon::prelude::*;
        let verified: Vec<_> = txs.into_par_iter().map(verify_one).collect();
        let _ = reply.send(verified);
    });
    answer.await.map_err(|_| {
        tracing::error!("signature verification task failed");
        Problem::internal()
    })
}

fn receipt_view(
    hash: TxHash,
    kind: TxKind,
    block_height: u64,
    block_hash: String,
    position: u32,
) -> ReceiptView {
    ReceiptView {
        hash: hash.to_string(),
        status: "committed".into(),
        block_height,
        block_hash,
        position,
        lock_id: (kind == TxKind::HtlcLock).then(|| hash.to_string()),
    }
}

fn stored_receipt(app: &App, stored: &StoredTransaction, block_hash: String) -> ReceiptView {
    let _ = app;
    receipt_view(
        stored.hash,
        stored.signed.transaction.kind(),
        stored.height,
        block_hash,
        stored.position,
    )
}

/// Outcome of one transaction after the sequencer: its receipt or problem.
async fn settle_one(
    app: &App,
    tx: &VerifiedTransaction,
    receipt: &Receipt,
    index: usize,
) -> Result<ReceiptView, Problem> {
    match receipt.outcomes[index] {
        Outcome::Applied => {
            let block = receipt.block.as_ref().ok_or_else(Problem::internal)?;
            let block_hash = receipt.block_hash.ok_or_else(Problem::internal)?;
            let position = receipt.positions[index].ok_or_else(Problem::internal)?;
            Ok(receipt_view(
                tx.hash(),
                tx.transaction().kind(),
                block.header.height,
                block_hash.to_string(),
                position,
            ))
        }
        Outcome::Rejected(rejection) => {
            // The same signed transaction, already committed: answer like
            // the first time.
            if matches!(rejection, Rejection::NonceReplay { .. })
                && let Some(stored) = app
                    .store
                    .transaction(tx.transaction().chain_id, tx.hash())
                    .await?
            {
                let block = app
                    .store
                    .block(tx.transaction().chain_id, stored.height)
                    .await?
                    .ok_or_else(Problem::internal)?;
                return Ok(stored_receipt(
                    app,
                    &stored,
                    block.header.hash().to_string(),
                ));
            }
            Err(Problem::rejected(&rejection))
        }
    }
}

fn sequencer_problem(error: SequencerError) -> Problem {
    match error {
        SequencerError::Busy => {
            Problem::unavailable("overloaded", "the gateway's queue is full; retry shortly")
        }
        SequencerError::Stopped => Problem::unavailable(
            "not-block-producer",
            "this gateway is not the block producer right now",
        ),
        SequencerError::Store(error) => Problem::from(error),
    }
}

fn require_submit_scope(caller: &Caller, kind: crate::dto::TxKindDto) -> Result<(), Problem> {
    if kind == crate::dto::TxKindDto::RegisterAsset {
        caller.require(Scope::LedgerRegisterAsset)
    } else {
        caller.require(Scope::LedgerSubmit)
    }
}

async fn submit_one(app: &App, dto: &SignedTransactionDto) -> (StatusCode, serde_json::Value) {
    let result: Result<ReceiptView, Problem> = async {
        let signed = dto.to_domain()?;
        let verified = verify_all(vec![signed])
            .await?
            .pop()
            .ok_or_else(Problem::internal)?
            .map_err(|(_, rejection)| Problem::rejected(&rejection))?;
        // The transaction's chain id picks the hosted ledger.
        let chain = verified.transaction().chain_id;
        let ledger = app.ledger(chain).ok_or_else(|| {
            Problem::rejected(&Rejection::WrongChain {
                expected: app.chain_id,
                actual: chain,
            })
        })?;
        let sequencer = ledger
            .producer
            .sequencer()
            .ok_or_else(|| sequencer_problem(SequencerError::Stopped))?;
        let receipt = sequencer
            .submit(vec![verified.clone()])
            .await
            .map_err(sequencer_problem)?;
        settle_one(app, &verified, &receipt, 0).await
    }
    .await;
    match result {
        Ok(receipt) => (
            StatusCode::CREATED,
            serde_json::to_value(receipt).unwrap_or_default(),
        ),
        Err(problem) => problem_value(&problem),
    }
}

/// Submit one signed transaction.
///
/// Applies it and answers once it is committed (durable, in a block). A
/// refused transaction changes nothing and answers 422 with the ledger rule
/// that refused it as the problem `type`.
#[utoipa::path(
    post, path = "/v1/ledger/transactions", tag = "ledger",
    request_body = SignedTransactionDto,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes the write safe to retry: 1 to 255 visible ASCII characters", pattern = r"^[!-~]{1,255}$")),
    responses(
        (status = 201, description = "Committed", body = ReceiptView),
        (status = 400, description = "Malformed or invalid request", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Scope missing", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Refused by the ledger", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Busy or not the block producer", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["ledger:submit"]), ("bearer" = ["ledger:register-asset"])),
)]
async fn submit_transaction(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(dto, raw): JsonBody<SignedTransactionDto>,
) -> Response {
    if let Err(problem) = require_submit_scope(&caller, dto.primary_type) {
        return problem.into_response();
    }
    let key = match idempotency(&headers, "POST", "/v1/ledger/transactions", &raw) {
        Ok(key) => key,
        Err(problem) => return problem.into_response(),
    };
    once(&app, &caller, key, submit_one(&app, &dto)).await
}

/// Register an asset: submit a signed `RegisterAsset` transaction.
///
/// The same as posting it to `/v1/ledger/transactions`, for clients that
/// look for assets under `/assets`. Needs the `ledger:register-asset` scope.
#[utoipa::path(
    post, path = "/v1/ledger/assets", tag = "ledger",
    request_body = SignedTransactionDto,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes the write safe to retry: 1 to 255 visible ASCII characters", pattern = r"^[!-~]{1,255}$")),
    responses(
        (status = 201, description = "Committed", body = ReceiptView),
        (status = 400, description = "Malformed, invalid, or not a RegisterAsset", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Scope missing", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Refused by the ledger", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Busy or not the block producer", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["ledger:register-asset"])),
)]
async fn register_asset(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(dto, raw): JsonBody<SignedTransactionDto>,
) -> Response {
    if let Err(problem) = caller.require(Scope::LedgerRegisterAsset) {
        return problem.into_response();
    }
    if dto.primary_type != crate::dto::TxKindDto::RegisterAsset {
        return Problem::invalid_field(
            "/primaryType",
            "this route takes RegisterAsset transactions only",
        )
        .into_response();
    }
    if let Err(problem) = require_submit_scope(&caller, dto.primary_type) {
        return problem.into_response();
    }
    let key = match idempotency(&headers, "POST", "/v1/ledger/assets", &raw) {
        Ok(key) => key,
        Err(problem) => return problem.into_response(),
    };
    once(&app, &caller, key, submit_one(&app, &dto)).await
}

async fn submit_many(app: &App, request: &BatchRequest) -> (StatusCode, serde_json::Value) {
    let max = app.config.limits.batch_request_txs_max;
    if request.transactions.is_empty() || request.transactions.len() > max {
        return problem_value(&Problem::invalid_field(
            "/transactions",
            format!("a batch holds 1 to {max} transactions"),
        ));
    }
    let mut items: Vec<Option<BatchItemView>> = vec![None; request.transactions.len()];
    let mut parsed = Vec::new();
    for (index, dto) in request.transactions.iter().enumerate() {
        let result = dto.to_domain().map_err(|e| {
            let mut problem = Problem::from(e);
            problem.pointer = problem.pointer.map(|p| format!("/transactions/{index}{p}"));
            problem
        });
        match result {
            Ok(signed) => parsed.push((index, signed)),
            Err(problem) => items[index] = Some(rejected_item(index, None, problem)),
        }
    }
    let (indexes, signed): (Vec<usize>, Vec<SignedTransaction>) = parsed.into_iter().unzip();
    // Verification hands back each refused transaction with its refusal,
    // so its hash is computed only for those (a verified one carries its own).
    let verified = match verify_all(signed).await {
        Ok(verified) => verified,
        Err(problem) => return problem_value(&problem),
    };
    let mut good = Vec::new();
    for (index, result) in indexes.into_iter().zip(verified) {
        match result {
            Ok(tx) => good.push((index, tx)),
            Err((hash, rejection)) => {
                items[index] = Some(rejected_item(
                    index,
                    Some(hash),
                    Problem::rejected(&rejection),
                ));
            }
        }
    }
    // One submission per hosted ledger the batch names, in the order of
    // first appearance; a transaction for a ledger not hosted here is
    // refused as for another chain.
    let mut chains: Vec<ledger_core::ChainId> = Vec::new();
    for (_, tx) in &good {
        if !chains.contains(&tx.transaction().chain_id) {
            chains.push(tx.transaction().chain_id);
        }
    }
    for chain in chains {
        let group: Vec<&(usize, VerifiedTransaction)> = good
            .iter()
            .filter(|(_, tx)| tx.transaction().chain_id == chain)
            .collect();
        let Some(ledger) = app.ledger(chain) else {
            for (index, tx) in group {
                let rejection = Rejection::WrongChain {
                    expected: app.chain_id,
                    actual: chain,
                };
                items[*index] = Some(rejected_item(
                    *index,
                    Some(tx.hash()),
                    Problem::rejected(&rejection),
                ));
            }
            continue;
        };
        let Some(sequencer) = ledger.producer.sequencer() else {
            return problem_value(&sequencer_problem(SequencerError::Stopped));
        };
        let txs: Vec<VerifiedTransaction> = group.iter().map(|(_, tx)| tx.clone()).collect();
        let receipt = match sequencer.submit(txs).await {
            Ok(receipt) => receipt,
            Err(error) => return problem_value(&sequencer_problem(error)),
        };
        for (i, (index, tx)) in group.into_iter().enumerate() {
            items[*index] = Some(match settle_one(app, tx, &receipt, i).await {
                Ok(view) => BatchItemView {
                    index: *index as u32,
                    hash: Some(tx.hash().to_string()),
                    status: "committed".into(),
                    receipt: Some(view),
                    problem: None,
                },
                Err(problem) => rejected_item(*index, Some(tx.hash()), problem),
            });
        }
    }
    let results = items.into_iter().flatten().collect();
    (
        StatusCode::OK,
        serde_json::to_value(BatchView { results }).unwrap_or_default(),
    )
}

fn rejected_item(index: usize, hash: Option<TxHash>, problem: Problem) -> BatchItemView {
    BatchItemView {
        index: index as u32,
        hash: hash.map(|h| h.to_string()),
        status: "rejected".into(),
        receipt: None,
        problem: Some(problem),
    }
}

/// Submit a batch of signed transactions.
///
/// All of them are applied in order in one block (one database commit).
/// Each gets its own result: a refused one changes nothing and does not stop
/// the others.
#[utoipa::path(
    post, path = "/v1/ledger/transactions/batch", tag = "ledger",
    request_body = BatchRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes the write safe to retry: 1 to 255 visible ASCII characters", pattern = r"^[!-~]{1,255}$")),
    responses(
        (status = 200, description = "One result per transaction", body = BatchView),
        (status = 400, description = "Malformed request or too many transactions", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Busy or not the block producer", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["ledger:submit"])),
)]
async fn submit_batch(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(request, raw): JsonBody<BatchRequest>,
) -> Response {
    // Scopes are checked per route, before anything else: a batch needs
    // ledger:submit, and ledger:register-asset too if it registers assets.
    for dto in &request.transactions {
        if let Err(problem) = require_submit_scope(&caller, dto.primary_type) {
            return problem.into_response();
        }
    }
    if let Err(problem) = caller.require(Scope::LedgerSubmit) {
        return problem.into_response();
    }
    let key = match idempotency(&headers, "POST", "/v1/ledger/transactions/batch", &raw) {
        Ok(key) => key,
        Err(problem) => return problem.into_response(),
    };
    once(&app, &caller, key, submit_many(&app, &request)).await
}

// ---------------------------------------------------------------- reads

fn parse_path<T: std::str::FromStr>(name: &str, text: &str) -> Result<T, Problem>
where
    T::Err: std::fmt::Display,
{
    text.parse::<T>()
        .map_err(|e| Problem::invalid_parameter(name, format!("{name}: {e}")))
}

/// The addresses a transaction involves, for visibility checks.
async fn parties(app: &App, tx: &SignedTransaction) -> Result<Vec<Address>, Problem> {
    let t = &tx.transaction;
    let mut parties = vec![t.from];
    match &t.body {
        TxBody::Issue { to, .. } | TxBody::Transfer { to, .. } => parties.push(*to),
        TxBody::HtlcLock { recipient, .. } => parties.push(*recipient),
        TxBody::HtlcClaim { lock_id, .. } | TxBody::HtlcRefund { lock_id } => {
            if let Some(htlc) = app.store.htlc(t.chain_id, *lock_id).await? {
                parties.extend([htlc.sender, htlc.recipient]);
            }
        }
        TxBody::Anchor { parties: named, .. } => parties.extend(named.as_slice()),
        TxBody::RegisterAsset { .. } | TxBody::Burn { .. } => {}
    }
    Ok(parties)
}

/// Get a committed transaction with its receipt and inclusion proof.
#[utoipa::path(
    get, path = "/v1/ledger/transactions/{hash}", tag = "ledger",
    params(("hash" = String, Path, description = "Transaction hash, 0x + 64 hex digits", pattern = r"^0x[0-9a-fA-F]{64}$"), ChainParam),
    responses(
        (status = 200, description = "The transaction", body = TransactionView),
        (status = 400, description = "Bad hash", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Scope missing", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown, or not visible to this tenant", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["ledger:read"])),
)]
async fn get_transaction(
    State(app): State<AppState>,
    caller: Caller,
    Path(hash): Path<String>,
    uri: axum::http::Uri,
) -> Result<axum::Json<TransactionView>, Problem> {
    caller.require(Scope::LedgerRead)?;
    let params: ChainParam = query(uri.query())?;
    let hash: TxHash = parse_path("hash", &hash)?;
    let not_found = || Problem::not_found(format!("no committed transaction {hash}"));
    // Without chainId, every hosted ledger is searched, the primary first.
    let chains: Vec<ledger_core::ChainId> = match params.chain_id {
        Some(chain) => vec![chosen_ledger(&app, Some(&chain))?],
        None => app.ledgers.iter().map(|l| l.chain_id).collect(),
    };
    let mut found = None;
    for chain in chains {
        if let Some(stored) = app.store.transaction(chain, hash).await? {
            found = Some((chain, stored));
            break;
        }
    }
    let (chain, stored) = found.ok_or_else(not_found)?;
    if !caller.may_see(&parties(&app, &stored.signed).await?) {
        return Err(not_found());
    }
    let header = app
        .store
        .block(chain, stored.height)
        .await?
        .ok_or_else(Problem::internal)?;
    let hashes = app.store.block_tx_hashes(chain, stored.height).await?;
    let tree = MerkleTree::new(&hashes);
    let path = tree
        .path(stored.position as usize)
        .ok_or_else(Problem::internal)?;
    Ok(axum::Json(TransactionView {
        hash: hash.to_string(),
        transaction: SignedTransactionDto::from_domain(&stored.signed),
        receipt: stored_receipt(&app, &stored, header.header.hash().to_string()),
        proof: ProofView {
            block_header: BlockHeaderView::from(&header),
            index: stored.position,
            path: path
                .iter()
                .map(|h| format!("0x{}", hex::encode(h)))
                .collect(),
        },
    }))
}

/// Get an account: next nonce and balances.
#[utoipa::path(
    get, path = "/v1/ledger/accounts/{address}", tag = "ledger",
    params(("address" = String, Path, description = "Address, 0x + 40 hex digits (EIP-55 or one case)", pattern = r"^0x[0-9a-fA-F]{40}$"), ChainParam),
    responses(
        (status = 200, description = "The account (an unused address has nonce 0 and no balances)", body = AccountView),
        (status = 400, description = "Bad address", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Scope missing", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not visible to this tenant", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["ledger:read"])),
)]
async fn get_account(
    State(app): State<AppState>,
    caller: Caller,
    Path(address): Path<String>,
    uri: axum::http::Uri,
) -> Result<axum::Json<AccountView>, Problem> {
    caller.require(Scope::LedgerRead)?;
    let chain = chosen_ledger(&app, query::<ChainParam>(uri.query())?.chain_id.as_deref())?;
    let address: Address = parse_path("address", &address)?;
    if !caller.may_see(&[address]) {
        return Err(Problem::not_found(format!(
            "no account {address} visible to this tenant"
        )));
    }
    let account = app.store.account(chain, address).await?;
    Ok(axum::Json(AccountView {
        address: address.to_string(),
        next_nonce: account.next_nonce.to_string(),
        balances: account
            .balances
            .iter()
            .map(|(asset, amount)| BalanceView {
                asset: asset.to_string(),
                amount: amount.to_string(),
            })
            .collect(),
    }))
}

/// Paging parameters of the block list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct BlockPageParams {
    /// Which hosted ledger (its chain id); the primary ledger when absent.
    #[param(pattern = r"^[1-9][0-9]{0,18}$")]
    chain_id: Option<String>,
    /// `nextCursor` of the previous page: blocks below this height come next.
    #[param(pattern = r"^(0|[1-9][0-9]{0,18})$")]
    cursor: Option<String>,
    /// Page size, 1 to 10000, default 50; pages hold at most the configured
    /// `limits.page_size_max` (200 unless configured) whatever the limit.
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<u32>,
}

/// Paging parameters of the asset list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct AssetPageParams {
    /// Which hosted ledger (its chain id); the primary ledger when absent.
    #[param(pattern = r"^[1-9][0-9]{0,18}$")]
    chain_id: Option<String>,
    /// `nextCursor` of the previous page: assets after this code come next.
    #[param(pattern = r"^[A-Z][A-Z0-9-]{0,11}$")]
    cursor: Option<String>,
    /// Page size, 1 to 10000, default 50; pages hold at most the configured
    /// `limits.page_size_max` (200 unless configured) whatever the limit.
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<u32>,
}

/// The page size: `limit` (1 to 10000, default 50), served as at most the
/// configured `limits.page_size_max` (a larger limit is not an error; the
/// page is just shorter, and `nextCursor` leads on).
/// The `chainId` query parameter of the read routes.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ChainParam {
    /// Which hosted ledger (its chain id); the primary ledger when absent.
    #[param(pattern = r"^[1-9][0-9]{0,18}$")]
    chain_id: Option<String>,
}

/// The ledger a read is about: `chainId` if given (404 if not hosted here),
/// else the primary ledger.
fn chosen_ledger(app: &App, chain_id: Option<&str>) -> Result<ledger_core::ChainId, Problem> {
    let Some(text) = chain_id else {
        return Ok(app.chain_id);
    };
    let id = text
        .parse::<u64>()
        .ok()
        .and_then(|n| ledger_core::ChainId::new(n).ok())
        .ok_or_else(|| {
            Problem::invalid_parameter("chainId", "chainId must be a decimal chain id")
        })?;
    app.ledger(id).map(|l| l.chain_id).ok_or_else(|| {
        Problem::not_found(format!("this gateway hosts no ledger with chain id {id}"))
    })
}

fn page_limit(app: &App, limit: Option<u32>) -> Result<u32, Problem> {
    let max = app.config.limits.page_size_max;
    match limit.unwrap_or(50) {
        n @ 1..=10_000 => Ok(n.min(max)),
        _ => Err(Problem::invalid_parameter(
            "limit",
            "limit must be between 1 and 10000",
        )),
    }
}

pub(crate) fn query<T: serde::de::DeserializeOwned>(raw: Option<&str>) -> Result<T, Problem> {
    serde_urlencoded_like(raw.unwrap_or(""))
}

fn serde_urlencoded_like<T: serde::de::DeserializeOwned>(raw: &str) -> Result<T, Problem> {
    Query::<T>::try_from_uri(
        &format!("/?{raw}")
            .parse()
            .map_err(|_| Problem::invalid_parameter("query", "bad query string"))?,
    )
    .map(|q| q.0)
    .map_err(|e| {
        // serde names the parameter at fault first ("limit: invalid
        // digit..."); an error about no single one is about the query.
        let text = e.body_text();
        let name = text
            .strip_prefix("Failed to deserialize query string: ")
            .and_then(|rest| rest.split_once(": "))
            .map(|(name, _)| name)
            .filter(|name| {
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            })
            .unwrap_or("query")
            .to_string();
        Problem::invalid_parameter(&name, text)
    })
}

/// List assets by code.
#[utoipa::path(
    get, path = "/v1/ledger/assets", tag = "ledger",
    params(AssetPageParams),
    responses(
        (status = 200, description = "A page of assets", body = AssetPage),
        (status = 400, description = "Bad parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Scope missing", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["ledger:read"])),
)]
async fn list_assets(
    State(app): State<AppState>,
    caller: Caller,
    uri: axum::http::Uri,
) -> Result<axum::Json<AssetPage>, Problem> {
    caller.require(Scope::LedgerRead)?;
    let params: AssetPageParams = query(uri.query())?;
    let limit = page_limit(&app, params.limit)?;
    let after = match params.cursor {
        Some(cursor) => Some(parse_path::<AssetCode>("cursor", &cursor)?),
        None => None,
    };
    let chain = chosen_ledger(&app, params.chain_id.as_deref())?;
    let assets = app.store.assets(chain, after, limit + 1).await?;
    let more = assets.len() > limit as usize;
    let items: Vec<AssetView> = assets
        .iter()
        .take(limit as usize)
        .map(AssetView::from)
        .collect();
    let next_cursor = if more {
        items.last().map(|a| a.code.clone())
    } else {
        None
    };
    Ok(axum::Json(AssetPage { items, next_cursor }))
}

/// Get an asset.
#[utoipa::path(
    get, path = "/v1/ledger/assets/{code}", tag = "ledger",
    params(("code" = String, Path, description = "Asset code", pattern = r"^[A-Z][A-Z0-9-]{0,11}$"), ChainParam),
    responses(
        (status = 200, description = "The asset", body = AssetView),
        (status = 400, description = "Bad code", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Scope missing", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such asset", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["ledger:read"])),
)]
async fn get_asset(
    State(app): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    uri: axum::http::Uri,
) -> Result<axum::Json<AssetView>, Problem> {
    caller.require(Scope::LedgerRead)?;
    let chain = chosen_ledger(&app, query::<ChainParam>(uri.query())?.chain_id.as_deref())?;
    let code: AssetCode = parse_path("code", &code)?;
    let asset = app.store.asset(chain, code).await?;
    asset
        .map(|a| axum::Json(AssetView::from(&a)))
        .ok_or_else(|| Problem::not_found(format!("no asset {code}")))
}

/// List blocks, newest first.
#[utoipa::path(
    get, path = "/v1/ledger/blocks", tag = "ledger",
    params(BlockPageParams),
    responses(
        (status = 200, description = "A page of block headers", body = BlockPage),
        (status = 400, description = "Bad parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Scope missing", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["ledger:read"])),
)]
async fn list_blocks(
    State(app): State<AppState>,
    caller: Caller,
    uri: axum::http::Uri,
) -> Result<axum::Json<BlockPage>, Problem> {
    caller.require(Scope::LedgerRead)?;
    let params: BlockPageParams = query(uri.query())?;
    let limit = page_limit(&app, params.limit)?;
    let before = match params.cursor {
        Some(cursor) => {
            let height = parse_path::<u64>("cursor", &cursor)?;
            if height > crate::dto::STORED_INTEGER_MAX {
                return Err(Problem::invalid_parameter(
                    "cursor",
                    "cursor is not a block height of this ledger",
                ));
            }
            Some(height)
        }
        None => None,
    };
    let chain = chosen_ledger(&app, params.chain_id.as_deref())?;
    let blocks = app.store.blocks(chain, before, limit + 1).await?;
    let more = blocks.len() > limit as usize;
    let items: Vec<BlockHeaderView> = blocks
        .iter()
        .take(limit as usize)
        .map(BlockHeaderView::from)
        .collect();
    let next_cursor = if more {
        items.last().map(|b| b.height.to_string())
    } else {
        None
    };
    Ok(axum::Json(BlockPage { items, next_cursor }))
}

/// Get a block: its signed header and transaction hashes.
#[utoipa::path(
    get, path = "/v1/ledger/blocks/{height}", tag = "ledger",
    params(("height" = u64, Path, description = "Block height", minimum = 0, maximum = 9007199254740991_u64), ChainParam),
    responses(
        (status = 200, description = "The block", body = BlockView),
        (status = 400, description = "Bad height", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Scope missing", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such block", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["ledger:read"])),
)]
async fn get_block(
    State(app): State<AppState>,
    caller: Caller,
    Path(height): Path<String>,
    uri: axum::http::Uri,
) -> Result<axum::Json<BlockView>, Problem> {
    caller.require(Scope::LedgerRead)?;
    let chain = chosen_ledger(&app, query::<ChainParam>(uri.query())?.chain_id.as_deref())?;
    let height: u64 = parse_path("height", &height)?;
    if height > crate::dto::STORED_INTEGER_MAX {
        return Err(Problem::not_found(format!("no block {height}")));
    }
    let header = app
        .store
        .block(chain, height)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no block {height}")))?;
    let txs = app.store.block_transactions(chain, height).await?;
    Ok(axum::Json(BlockView {
        header: BlockHeaderView::from(&header),
        transactions: txs.iter().map(|t| t.hash.to_string()).collect(),
    }))
}

/// Get an HTLC.
#[utoipa::path(
    get, path = "/v1/ledger/htlcs/{lock_id}", tag = "ledger",
    params(("lock_id" = String, Path, description = "Lock id (the HtlcLock's transaction hash)", pattern = r"^0x[0-9a-fA-F]{64}$"), ChainParam),
    responses(
        (status = 200, description = "The HTLC", body = HtlcView),
        (status = 400, description = "Bad id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Scope missing", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown, or not visible to this tenant", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["ledger:read"])),
)]
async fn get_htlc(
    State(app): State<AppState>,
    caller: Caller,
    Path(lock_id): Path<String>,
    uri: axum::http::Uri,
) -> Result<axum::Json<HtlcView>, Problem> {
    caller.require(Scope::LedgerRead)?;
    let chain = chosen_ledger(&app, query::<ChainParam>(uri.query())?.chain_id.as_deref())?;
    let id: LockId = parse_path("lock_id", &lock_id)?;
    let not_found = || Problem::not_found(format!("no HTLC {id}"));
    let htlc = app.store.htlc(chain, id).await?.ok_or_else(not_found)?;
    if !caller.may_see(&[htlc.sender, htlc.recipient]) {
        return Err(not_found());
    }
    Ok(axum::Json(HtlcView::from(&htlc)))
}

/// Stream the whole chain for offline audit.
///
/// `application/x-ndjson`: the first line describes the export
/// (`{"format":"lockgate-export/1","chainId":"…","producers":["0x…"],"blockCount":n,"lastBlockHash":"0x…"}`),
/// then one line per block in height order:
/// `{"header": BlockHeader, "transactions": [{"transaction": SignedTransaction, "index": n, "path": ["0x…"]}]}`.
/// Check it with `lockgate verify FILE --producer 0x…`.
#[utoipa::path(
    get, path = "/v1/ledger/export", tag = "ledger",
    params(ChainParam),
    responses(
        (status = 200, description = "The chain, one JSON document per line", content_type = "application/x-ndjson", body = String),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Scope missing", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["ledger:export"])),
)]
async fn export_chain(
    State(app): State<AppState>,
    caller: Caller,
    uri: axum::http::Uri,
) -> Result<Response, Problem> {
    caller.require(Scope::LedgerExport)?;
    let chain = chosen_ledger(&app, query::<ChainParam>(uri.query())?.chain_id.as_deref())?;
    let producer_here = app
        .ledger(chain)
        .map(|l| l.block_producer)
        .unwrap_or(app.block_producer);
    let tip = app.store.tip(chain).await?;
    let mut producers = app.store.producers(chain).await?;
    if !producers.contains(&producer_here) {
        producers.push(producer_here);
    }
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let app = app.clone();
    tokio::spawn(async move {
        let head = crate::export::ExportHead::new(chain, producers, &tip);
        let mut line = serde_json::to_vec(&head).unwrap_or_default();
        line.push(b'\n');
        if sender.send(Ok(Bytes::from(line))).await.is_err() {
            return;
        }
        for height in 0..tip.next_height {
            let block = match crate::export::export_block(&app.store, chain, height).await {
                Ok(block) => block,
                Err(error) => {
                    tracing::error!(%error, height, "export failed");
                    let _ = sender
                        .send(Err(std::io::Error::other("export failed")))
                        .await;
                    return;
                }
            };
            let mut line = serde_json::to_vec(&block).unwrap_or_default();
            line.push(b'\n');
            if sender.send(Ok(Bytes::from(line))).await.is_err() {
                return;
            }
        }
    });
    let stream = tokio_stream_from(receiver);
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(response)
}

fn tokio_stream_from(
    mut receiver: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

// ---------------------------------------------------------------- operations

/// Liveness: the process answers (from the start: `status` is `starting`
/// until the gateway is ready to serve).
#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = HealthView)),
    security(()),
)]
async fn healthz(State(app): State<AppState>) -> axum::Json<HealthView> {
    axum::Json(HealthView {
        status: "ok".into(),
        block_producer: app.producer.sequencer().is_some(),
        adapters: Vec::new(),
    })
}

/// Readiness: the database answers and every external ledger adapter's
/// node answers (on its chain, with the contract deployed), each within 2 s.
/// 503 `not-ready` names what does not; the gateway recovers by itself when
/// it answers again. While the gateway starts (connecting to the database,
/// running its migrations), 503 `not-ready` names the phase.
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = HealthView),
        (status = 503, description = "Not ready", body = Problem, content_type = "application/problem+json"),
    ),
    security(()),
)]
async fn readyz(State(app): State<AppState>) -> Result<axum::Json<HealthView>, Problem> {
    let limit = std::time::Duration::from_secs(2);
    let database = tokio::time::timeout(limit, app.store.ping()).await;
    let mut down = Vec::new();
    if !matches!(database, Ok(Ok(()))) {
        down.push("the database does not answer".to_string());
    }
    let mut adapters = Vec::with_capacity(app.evm.len());
    for ledger in &app.evm {
        use adapters::ledger::LedgerAdapter as _;
        let chain_id = ledger.describe().chain_id;
        let status = match tokio::time::timeout(limit, crate::evm::health(ledger)).await {
            Ok(Ok(())) => "ok".to_string(),
            Ok(Err(error)) => error,
            Err(_) => "the node did not answer within 2 s".to_string(),
        };
        if status != "ok" {
            down.push(format!("EVM chain {chain_id}: {status}"));
        }
        adapters.push(crate::views::AdapterHealthView {
            kind: "evm".into(),
            chain_id: chain_id.to_string(),
            status,
        });
    }
    if !down.is_empty() {
        return Err(Problem::unavailable("not-ready", down.join("; ")));
    }
    Ok(axum::Json(HealthView {
        status: "ok".into(),
        block_producer: app.producer.sequencer().is_some(),
        adapters,
    }))
}

/// Prometheus metrics (text exposition format 0.0.4); every metric is
/// listed in `gateway/src/metrics.rs` and docs/operations.md.
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Metrics", content_type = "text/plain", body = String),
        (status = 503, description = "The database does not answer", body = Problem, content_type = "application/problem+json"),
    ),
    security(()),
)]
async fn metrics(State(app): State<AppState>) -> Result<Response, Problem> {
    use std::fmt::Write as _;
    let mut body = crate::metrics::handle()
        .map(|h| h.render())
        .unwrap_or_default();
    let gauges = app.store.ops_gauges().await.map_err(|error| {
        tracing::warn!(%error, "metrics: the database does not answer");
        Problem::unavailable("not-ready", "the database does not answer")
    })?;
    let now = crate::sequencer::now_ms();
    // `write!` to a String cannot fail.
    let _ = writeln!(
        body,
        "# HELP lockgate_ledger_block_height Height of the last block of a built-in ledger (-1 before the first).\n# TYPE lockgate_ledger_block_height gauge"
    );
    for ledger in &app.ledgers {
        let tip = app.store.tip(ledger.chain_id).await?;
        let _ = writeln!(
            body,
            "lockgate_ledger_block_height{{chain_id=\"{}\"}} {}",
            ledger.chain_id,
            i128::from(tip.next_height) - 1
        );
    }
    let _ = writeln!(
        body,
        "# HELP lockgate_block_producer 1 while this process produces the ledger's blocks.\n# TYPE lockgate_block_producer gauge"
    );
    for ledger in &app.ledgers {
        let _ = writeln!(
            body,
            "lockgate_block_producer{{chain_id=\"{}\"}} {}",
            ledger.chain_id,
            u8::from(ledger.producer.sequencer().is_some())
        );
    }
    let _ = writeln!(
        body,
        "# HELP lockgate_transfers Transfers by state.\n# TYPE lockgate_transfers gauge"
    );
    for (state, n) in &gauges.transfers {
        let _ = writeln!(
            body,
            "lockgate_transfers{{state=\"{}\"}} {n}",
            crate::metrics::label(state)
        );
    }
    let _ = writeln!(
        body,
        "# HELP lockgate_value_locked Minor units in open HTLCs on built-in ledgers, by sender.\n# TYPE lockgate_value_locked gauge"
    );
    let locked = value_locked(&gauges.open_locks, now);
    for ((chain, asset, participant), (value, _)) in &locked {
        let _ = writeln!(
            body,
            "lockgate_value_locked{{chain_id=\"{chain}\",asset=\"{}\",participant=\"{participant}\"}} {value}",
            crate::metrics::label(asset),
        );
    }
    let _ = writeln!(
        body,
        "# HELP lockgate_value_locked_oldest_seconds Age of the sender's oldest open HTLC.\n# TYPE lockgate_value_locked_oldest_seconds gauge"
    );
    for ((chain, asset, participant), (_, age_s)) in &locked {
        let _ = writeln!(
            body,
            "lockgate_value_locked_oldest_seconds{{chain_id=\"{chain}\",asset=\"{}\",participant=\"{participant}\"}} {age_s}",
            crate::metrics::label(asset),
        );
    }
    let _ = writeln!(
        body,
        "# HELP lockgate_db_pool_connections Database pool connections.\n# TYPE lockgate_db_pool_connections gauge"
    );
    let in_use = gauges.pool_size.saturating_sub(gauges.pool_idle);
    let _ = writeln!(
        body,
        "lockgate_db_pool_connections{{state=\"idle\"}} {}",
        gauges.pool_idle
    );
    let _ = writeln!(
        body,
        "lockgate_db_pool_connections{{state=\"in_use\"}} {in_use}"
    );
    let _ = writeln!(
        body,
        "# HELP lockgate_db_pool_connections_max The database pool's bound.\n# TYPE lockgate_db_pool_connections_max gauge"
    );
    let _ = writeln!(body, "lockgate_db_pool_connections_max {}", gauges.pool_max);
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    Ok(response)
}

/// Participants listed per ledger and asset in `lockgate_value_locked`; the
/// rest are summed under `other`.
const VALUE_LOCKED_PARTICIPANTS_MAX: usize = 100;

/// Open locks summed by (ledger, asset, sender): the value (f64) and the age
/// of the oldest in seconds; the largest senders by value, the rest summed
/// as `other`.
fn value_locked(
    locks: &[crate::store::OpenLock],
    now_ms: u64,
) -> std::collections::BTreeMap<(u64, String, String), (f64, f64)> {
    use std::collections::BTreeMap;
    let mut by_sender: BTreeMap<(u64, String), BTreeMap<String, (u128, u64)>> = BTreeMap::new();
    for lock in locks {
        let entry = by_sender
            .entry((lock.chain_id, lock.asset.as_str().to_string()))
            .or_default()
            .entry(lock.sender.to_string())
            .or_insert((0, u64::MAX));
        entry.0 = entry.0.saturating_add(lock.amount.minor_units());
        entry.1 = entry.1.min(lock.locked_at_ms);
    }
    let mut out = BTreeMap::new();
    for ((chain, asset), senders) in by_sender {
        let mut senders: Vec<(String, (u128, u64))> = senders.into_iter().collect();
        senders.sort_by(|a, b| b.1.0.cmp(&a.1.0).then_with(|| a.0.cmp(&b.0)));
        let mut other: Option<(u128, u64)> = None;
        for (i, (sender, (value, oldest))) in senders.into_iter().enumerate() {
            if i < VALUE_LOCKED_PARTICIPANTS_MAX {
                let age = now_ms.saturating_sub(oldest) as f64 / 1000.0;
                out.insert((chain, asset.clone(), sender), (value as f64, age));
            } else {
                let o = other.get_or_insert((0, u64::MAX));
                o.0 = o.0.saturating_add(value);
                o.1 = o.1.min(oldest);
            }
        }
        if let Some((value, oldest)) = other {
            let age = now_ms.saturating_sub(oldest) as f64 / 1000.0;
            out.insert((chain, asset, "other".to_string()), (value as f64, age));
        }
    }
    out
}

/// Counts and times every answered request by method, route template and
/// status (`lockgate_http_requests_total`, `_duration_seconds`).
async fn record_metrics(request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().as_str().to_string();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let response = next.run(request).await;
    crate::metrics::http_request(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// The built-in ledgers this gateway hosts.
#[utoipa::path(
    get, path = "/v1/ledgers", tag = "ledger",
    responses((status = 200, description = "The hosted ledgers, the primary first", body = LedgerList)),
    security(("bearer" = ["ledger:read"])),
)]
async fn list_ledgers(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<LedgerList>, Problem> {
    caller.require(Scope::LedgerRead)?;
    let mut items = Vec::with_capacity(app.ledgers.len());
    for (i, ledger) in app.ledgers.iter().enumerate() {
        let tip = app.store.tip(ledger.chain_id).await?;
        items.push(LedgerView {
            chain_id: ledger.chain_id.to_string(),
            primary: i == 0,
            block_key: ledger.block_producer.to_string(),
            block_count: tip.next_height,
            producing_here: ledger.producer.sequencer().is_some(),
        });
    }
    Ok(axum::Json(LedgerList { items }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn headers(content_type: &str, retry_after: bool) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, content_type.parse().unwrap());
        if retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        headers
    }

    /// What an Idempotency-Key keeps: the request's JSON outcome, not an
    /// answer about the token or the headers, nor one that asks for the
    /// same request again, nor a body that is not the JSON it replays as.
    #[test]
    fn only_final_json_answers_are_kept_for_a_key() {
        let json = headers("application/json", false);
        let problem = headers("application/problem+json", false);
        assert!(stored_answer(StatusCode::CREATED, &json));
        assert!(stored_answer(StatusCode::CONFLICT, &problem));
        assert!(stored_answer(StatusCode::UNPROCESSABLE_ENTITY, &problem));
        for status in [
            StatusCode::UNAUTHORIZED,
            StatusCode::FORBIDDEN,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::SERVICE_UNAVAILABLE,
        ] {
            assert!(!stored_answer(status, &problem), "{status}");
        }
        assert!(!stored_answer(
            StatusCode::CONFLICT,
            &headers("application/problem+json", true)
        ));
        assert!(!stored_answer(
            StatusCode::BAD_REQUEST,
            &headers("text/plain; charset=utf-8", false)
        ));
    }
}
