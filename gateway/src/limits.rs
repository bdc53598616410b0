//! Abuse limits at the edge, beside the ones the router applies itself
//! (body size: 413; request time: 503 `timeout`; the sequencer's bounded
//! queue: 503 `overloaded`; every 503 and 429 carries `Retry-After`):
//!
//! - **Per-tenant rate limit** ([`TenantLimiter`], [`rate_limit`]): a token
//!   bucket per tenant (GCRA, `governor`), `limits.tenant_requests_per_s`
//!   sustained with bursts of `limits.tenant_burst`. The tenant is the one of
//!   the request's verified bearer token; a request without a valid token
//!   (which its handler will refuse with 401, or a SATP peer message, which
//!   is authenticated by signature) is counted against its client address.
//!   Over the limit: 429 `rate-limited` with `Retry-After` (whole seconds,
//!   at least 1) and nothing processed. `/healthz`, `/readyz` and `/metrics`
//!   are not limited, so probes and scrapes never fail because of a busy
//!   tenant.
//! - **Connection limit** ([`LimitedListener`]): at most
//!   `limits.connections_max` open client connections. Beyond it the gateway
//!   stops accepting; new connections wait in the kernel's backlog until one
//!   closes (backpressure, not errors), so a flood of idle connections
//!   cannot exhaust file descriptors or memory.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::app::App;
use crate::problem::Problem;

/// A token bucket per tenant; `None` when the limit is off.
#[derive(Debug)]
pub struct TenantLimiter {
    limiter: Option<DefaultKeyedRateLimiter<String>>,
}

impl TenantLimiter {
    /// `per_s` sustained requests with bursts of `burst` (at least `per_s`);
    /// `per_s == 0` turns the limit off.
    pub fn new(per_s: u32, burst: u32) -> Self {
        let limiter = NonZeroU32::new(per_s).map(|rate| {
            let burst = NonZeroU32::new(burst.max(per_s)).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self { limiter }
    }

    /// True unless the limit is off.
    pub fn is_on(&self) -> bool {
        self.limiter.is_some()
    }

    /// Takes one request from `key`'s bucket, or says how many whole
    /// seconds (at least 1) to wait.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(&key.to_string()).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            (wait.as_secs_f64().ceil() as u64).max(1)
        })
    }

    /// Forgets buckets that are full again (idle keys), so the key set stays
    /// bounded by the keys active within one burst period.
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// The per-tenant rate limit as middleware (see the module docs). The
/// caller it verifies is handed on in the request's extensions, so the
/// handler's `Caller` does not verify the token a second time.
pub async fn rate_limit(State(app): State<Arc<App>>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if !app.limiter.is_on() || matches!(path, "/healthz" | "/readyz" | "/metrics") {
        return next.run(request).await;
    }
    let caller = crate::auth::bearer_token(request.headers())
        .ok()
        .and_then(|token| app.auth.verify(token).ok());
    let key = match &caller {
        Some(caller) => format!("tenant:{}", caller.tenant),
        None => match request.extensions().get::<ConnectInfo<ClientAddr>>() {
            Some(ConnectInfo(ClientAddr(peer))) => format!("address:{}", peer.ip()),
            None => "address:unknown".to_string(),
        },
    };
    match app.limiter.check(&key) {
        Ok(()) => {
            if let Some(caller) = caller {
                request.extensions_mut().insert(caller);
            }
            next.run(request).await
        }
        Err(seconds) => Problem::too_many_requests(
            "rate-limited",
            format!(
                "more than {} requests per second for this tenant; retry after {seconds} s",
                app.config.limits.tenant_requests_per_s
            ),
            seconds,
        )
        .into_response(),
    }
}

/// The client address of a connection accepted by [`LimitedListener`]
/// (`Router::into_make_service_with_connect_info::<ClientAddr>()`).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, LimitedListener>>
    for ClientAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, LimitedListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

/// A TCP listener that keeps at most `max` accepted connections open.
#[derive(Debug)]
pub struct LimitedListener {
    inner: tokio::net::TcpListener,
    slots: Arc<Semaphore>,
}

impl LimitedListener {
    /// Wraps `inner`; `max` is at least 1.
    pub fn new(inner: tokio::net::TcpListener, max: usize) -> Self {
        Self {
            inner,
            slots: Arc::new(Semaphore::new(max.max(1))),
        }
    }
}

impl axum::serve::Listener for LimitedListener {
    type Io = LimitedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // Wait for a free slot before accepting: until then, new connections
        // stay in the kernel's backlog.
        // The semaphore is never closed; if it were, serve without the limit.
        let permit = self.slots.clone().acquire_owned().await.ok();
        let (stream, address) = axum::serve::Listener::accept(&mut self.inner).await;
        (
            LimitedStream {
                inner: stream,
                _slot: permit,
            },
            address,
        )
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// An accepted connection holding its slot until it is dropped (closed).
#[derive(Debug)]
pub struct LimitedStream {
    inner: tokio::net::TcpStream,
    _slot: Option<OwnedSemaphorePermit>,
}

impl AsyncRead for LimitedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_over_its_burst_waits_and_others_do_not() {
        let limiter = TenantLimiter::new(1, 3);
        for _ in 0..3 {
            assert_eq!(limiter.check("a"), Ok(()));
        }
        assert_eq!(limiter.check("a"), Err(1));
        assert_eq!(limiter.check("b"), Ok(()));
    }

    #[test]
    fn zero_turns_the_limit_off() {
        let limiter = TenantLimiter::new(0, 0);
        for _ in 0..10_000 {
            assert_eq!(limiter.check("a"), Ok(()));
        }
    }
}
