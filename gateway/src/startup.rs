//! Start-up of `lockgate serve`: the listener is bound before the gateway
//! is assembled, so probes get an answer (not a refused connection) while
//! the database is connected and migrated; once `app::build_reporting`
//! returns, the API router takes over the same listener, keeping every
//! open connection.
//!
//! While the gateway starts: `GET /healthz` answers 200 (`status:
//! "starting"`: the process is alive), `/readyz` 503 `not-ready` naming the
//! phase ([`Phase`]: connecting to the database, waiting for it, running
//! the migrations, ...), and every other path 503 `not-ready`; each 503 is
//! a problem with `Retry-After`. A database that does not answer is retried
//! for up to `database_startup_wait_ms_max`; any other start-up failure (bad
//! configuration, a refused login, a failed migration) ends [`serve`] with
//! the error, and `lockgate serve` exits non-zero.
//!
//! The switch ([`Switch`]) costs one atomic load and one reference-count
//! increment per request once the gateway is ready.

use std::convert::Infallible;
use std::future::{Future, IntoFuture as _};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use anyhow::Context as _;
use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::future::RouteFuture;
use tokio::sync::watch;

use crate::app::{App, Phase};
use crate::config::Config;
use crate::limits::{ClientAddr, LimitedListener};
use crate::problem::Problem;
use crate::views::HealthView;

/// Serves `listener` from now on: the start-up answers (module docs) while
/// the gateway builds from `config`, then the API. `on_ready` runs once the
/// API serves (`lockgate serve` prints its address then). Returns when
/// `shutdown` completes (and open connections are answered), or with the
/// error that stopped start-up.
pub async fn serve(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(&App),
) -> anyhow::Result<()> {
    let first = Phase::ConnectingToDatabase;
    tracing::info!(phase = first.describe(), "starting");
    let (phase, phase_seen) = watch::channel(first);
    let api = Arc::new(OnceLock::new());
    let service = Switch {
        api: api.clone(),
        starting: starting_router(phase_seen),
    };
    let listener = LimitedListener::new(listener, config.limits.connections_max);
    let server = axum::serve(
        listener,
        axum::ServiceExt::<Request>::into_make_service_with_connect_info::<ClientAddr>(service),
    )
    .with_graceful_shutdown(shutdown)
    .into_future();
    let mut server = std::pin::pin!(server);
    let report = move |next: Phase| {
        if phase.send_replace(next) != next {
            tracing::info!(phase = next.describe(), "starting");
        }
    };
    // The build runs as a task of its own: its synchronous parts (a
    // keystore's key derivation takes a second or more) never hold up the
    // accept loop, so probes are answered all along.
    let mut build = tokio::spawn(async move { crate::app::build_reporting(config, &report).await });
    let app = tokio::select! {
        built = &mut build => built.context("the start-up task failed")??,
        // Serving ends only when `shutdown` does: stopped while starting.
        served = &mut server => {
            build.abort();
            served.context("serving")?;
            tracing::info!("stopped during start-up");
            return Ok(());
        }
    };
    // `with_state(())` turns every route into its service once, here,
    // rather than on every request.
    if api
        .set(crate::api::router(app.clone()).with_state(()))
        .is_err()
    {
        // Only this function sets it, once.
        anyhow::bail!("the API router was set twice");
    }
    tracing::info!("started: serving the API");
    on_ready(&app);
    server.await.context("serving")
}

/// The HTTP service of `lockgate serve`: the start-up router until the API
/// router is set, then the API router.
#[derive(Clone, Debug)]
pub struct Switch {
    api: Arc<OnceLock<Router>>,
    starting: Router,
}

impl tower::Service<Request> for Switch {
    type Response = Response;
    type Error = Infallible;
    type Future = RouteFuture<Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // A `Router` is always ready (its `poll_ready` is `Ready(Ok)`), so
        // calling a clone without polling it keeps to the `Service` contract.
        match self.api.get() {
            Some(api) => tower::Service::call(&mut api.clone(), request),
            None => tower::Service::call(&mut self.starting.clone(), request),
        }
    }
}

/// The router that answers while the gateway starts.
fn starting_router(phase: watch::Receiver<Phase>) -> Router {
    use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
    // The same request id handling as the API's: `x-request-id` on every
    // answer, and in the problem's `requestId`.
    Router::new()
        .fallback(starting)
        .with_state(phase)
        .with_state(())
        .layer(axum::middleware::from_fn(crate::api::problem_request_id))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// Every request while the gateway starts, whatever its method.
async fn starting(State(phase): State<watch::Receiver<Phase>>, request: Request) -> Response {
    let phase = phase.borrow().describe();
    match request.uri().path() {
        "/healthz" => axum::Json(HealthView {
            status: "starting".into(),
            block_producer: false,
            adapters: Vec::new(),
        })
        .into_response(),
        "/readyz" => Problem::unavailable("not-ready", format!("the gateway is starting: {phase}"))
            .into_response(),
        _ => Problem::unavailable(
            "not-ready",
            format!("the gateway is starting ({phase}); retry shortly"),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use axum::body::Body;
    use axum::http::StatusCode;
    use tower::ServiceExt as _;

    async fn call(service: &Switch, path: &str) -> (StatusCode, Option<String>, serde_json::Value) {
        let request = Request::builder().uri(path).body(Body::empty()).unwrap();
        let response = service.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let request_id = response
            .headers()
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_string());
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value =
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        if service.api.get().is_none() {
            // The starting router's answers carry a request id, in the
            // header and in the problem.
            assert!(request_id.is_some(), "x-request-id on {path}");
            if status.is_server_error() {
                assert_eq!(body["requestId"].as_str(), request_id.as_deref(), "{body}");
            }
        }
        (status, retry_after, body)
    }

    #[tokio::test]
    async fn starting_answers_probes_and_refuses_the_rest_until_the_api_is_set() {
        let (phase, seen) = watch::channel(Phase::ConnectingToDatabase);
        let api = Arc::new(OnceLock::new());
        let switch = Switch {
            api: api.clone(),
            starting: starting_router(seen),
        };

        let (status, retry, body) = call(&switch, "/healthz").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(retry, None);
        assert_eq!(body["status"], "starting");
        assert_eq!(body["blockProducer"], false);

        phase.send_replace(Phase::RunningMigrations);
        let (status, retry, body) = call(&switch, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry.as_deref(), Some("1"));
        assert_eq!(body["type"], "urn:lockgate:problem:not-ready");
        assert_eq!(body["status"], 503);
        assert_eq!(
            body["detail"],
            "the gateway is starting: running database migrations"
        );

        let (status, retry, body) = call(&switch, "/v1/ledger/blocks").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry.as_deref(), Some("1"));
        assert_eq!(body["type"], "urn:lockgate:problem:not-ready");

        // Once set, every path goes to the API router, on the same service.
        let ready = Router::new().route("/readyz", axum::routing::get(|| async { "ready" }));
        api.set(ready.with_state(())).unwrap();
        let (status, _, _) = call(&switch, "/readyz").await;
        assert_eq!(status, StatusCode::OK);
        let (status, _, _) = call(&switch, "/healthz").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "the API router answers now");
    }
}
