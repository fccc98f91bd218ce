//! What the two local credential endpoints ([`super::ecs`], [`super::imds`]) share: the
//! connection loop, the checks every request passes before a handler sees it, the random
//! tokens, and the bounded fetch of credentials from a [`CredentialSource`].
//!
//! Both endpoints hand out credentials to whoever asks with the right token, so they refuse
//! everything that is not a program of this machine talking to them on purpose:
//! - **peers**: loopback only (and, for IMDS, the link-local IMDS address when bound there,
//!   which is the source address the kernel gives a local connection to it). A non-loopback
//!   peer is another machine, or a container's network namespace;
//! - **`Host`**: must be a loopback name or address (or the IMDS address): a web page whose DNS
//!   name was re-pointed at 127.0.0.1 (DNS rebinding) sends its own name there, and a browser
//!   cannot forge the header (aws-vault issue 578);
//! - **`X-Forwarded-For`** (IMDS): a request relayed by a proxy or a misconfigured reverse
//!   proxy on this machine, as AWS's IMDSv2 refuses it;
//! - **size and time**: headers at most [`MAX_HEADER_BYTES`] (hyper answers 431), a body of at
//!   most [`MAX_BODY_BYTES`], headers within [`HEADER_TIMEOUT`], a connection lives at most
//!   [`CONNECTION_LIFETIME`], at most [`MAX_CONNECTIONS`] at once, a credentials fetch at most
//!   [`FETCH_TIMEOUT`].
//!
//! Refusals and failures get a short generic body (`forbidden`, `unauthorized`, `credentials
//! unavailable`); the reason goes to our log, which never holds a token or a secret (key ids
//! show their last 4 characters).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::source::CredentialSource;
use crate::credentials::{Credentials, KeyId};

/// The most bytes of request line and headers (hyper's smallest read buffer).
pub const MAX_HEADER_BYTES: usize = 8192;
/// The largest body a request may announce: the endpoints take no bodies.
pub const MAX_BODY_BYTES: u64 = 1024;
/// A request's headers must arrive within this.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection (keep-alive included) is closed after this.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// Connections served at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 64;
/// The longest a request waits for credentials (a renewal through STS, an MFA prompt).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// AWS's IMDS addresses (IPv4 and IPv6).
pub const IMDS_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
/// AWS's IMDS IPv6 address, `fd00:ec2::254`.
pub const IMDS_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

/// A random secret of 32 bytes from the OS, as 64 hex digits: the ECS authorization token and
/// the IMDS session tokens. `Debug` does not show it; compare with [`Token::matches`].
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// A new random token.
    pub fn generate() -> Result<Token, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        let hex = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Token(hex))
    }

    /// The token, for the one place that hands it out (an environment variable, a response).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `given` is this token, in time that does not depend on where they differ.
    pub fn matches(&self, given: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_bytes().ct_eq(given).into()
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Which endpoint a request reached: decides the extra addresses and headers allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The container credentials endpoint.
    Ecs,
    /// The instance metadata endpoint.
    Imds,
}

/// The two ends of the connection a request came on (set by the connection loop).
#[derive(Debug, Clone, Copy)]
struct Peer {
    remote: SocketAddr,
    local: SocketAddr,
}

/// Whether a connection from `remote` to `local` is one this endpoint serves.
fn peer_allowed(kind: Kind, remote: IpAddr, local: IpAddr) -> bool {
    let remote = remote.to_canonical();
    if remote.is_loopback() {
        return true;
    }
    // a local program connecting to the IMDS address bound on this machine comes from that
    // same address; another machine cannot (the kernel drops packets from its own addresses
    // arriving from outside)
    kind == Kind::Imds && is_imds(remote) && remote == local.to_canonical()
}

fn is_imds(ip: IpAddr) -> bool {
    ip == IpAddr::V4(IMDS_V4) || ip == IpAddr::V6(IMDS_V6)
}

/// Whether `host` (a `Host` header: a name or address, maybe with a port) names this endpoint:
/// a loopback address, `localhost`, or (IMDS) the IMDS address.
fn host_allowed(kind: Kind, host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // [::1]:port
        Some(rest) => match rest.split_once(']') {
            Some((inside, port)) if port.is_empty() || valid_port(port) => inside,
            _ => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) if valid_port(port) => name,
            Some(_) => return false,
            None => host,
        },
    };
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match name.parse::<IpAddr>() {
        Ok(ip) => ip.to_canonical().is_loopback() || (kind == Kind::Imds && is_imds(ip)),
        Err(_) => false,
    }
}

fn valid_port(s: &str) -> bool {
    // ":123" → "123"
    let digits = s.strip_prefix(':').unwrap_or(s);
    !digits.is_empty() && digits.len() <= 5 && digits.bytes().all(|b| b.is_ascii_digit())
}

/// A response with a generic body: the reason is in our log, not in the answer.
pub(crate) fn generic(status: StatusCode) -> Response {
    let body = match status {
        StatusCode::UNAUTHORIZED => "unauthorized\n",
        StatusCode::FORBIDDEN => "forbidden\n",
        StatusCode::NOT_FOUND => "not found\n",
        StatusCode::BAD_REQUEST => "bad request\n",
        StatusCode::PAYLOAD_TOO_LARGE => "request too large\n",
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed\n",
        _ => "credentials unavailable\n",
    };
    (status, [(header::CONTENT_TYPE, "text/plain")], body).into_response()
}

/// The checks every request passes before its handler (see the module docs).
pub(crate) async fn screen(State(kind): State<Kind>, req: Request, next: Next) -> Response {
    let Some(peer) = req.extensions().get::<Peer>().copied() else {
        tracing::warn!("request without connection info refused");
        return generic(StatusCode::FORBIDDEN);
    };
    let refuse = |status: StatusCode, why: &str| {
        tracing::warn!(
            endpoint = ?kind,
            peer = %peer.remote,
            method = %req.method(),
            path = req.uri().path(),
            "refused: {why}"
        );
        generic(status)
    };
    if !peer_allowed(kind, peer.remote.ip(), peer.local.ip()) {
        return refuse(
            StatusCode::FORBIDDEN,
            "the peer is not on this machine's loopback",
        );
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    if !host.is_some_and(|h| host_allowed(kind, h)) {
        return refuse(
            StatusCode::FORBIDDEN,
            "the Host header is not a loopback address (DNS rebinding?)",
        );
    }
    if kind == Kind::Imds && req.headers().contains_key("x-forwarded-for") {
        return refuse(
            StatusCode::FORBIDDEN,
            "X-Forwarded-For: the request was relayed by a proxy",
        );
    }
    if body_too_large(req.headers()) {
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, "the request has a body");
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let response = next.run(req).await;
    tracing::info!(endpoint = ?kind, peer = %peer.remote, %method, path, status = response.status().as_u16(), "request");
    response
}

fn body_too_large(headers: &HeaderMap) -> bool {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return true;
    }
    headers.get(header::CONTENT_LENGTH).is_some_and(|v| {
        v.to_str()
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .is_none_or(|n| n > MAX_BODY_BYTES)
    })
}

/// What handlers need to fetch credentials: the source, the profile served, and the tasks
/// fetches run in (so that a client that gives up does not cancel a renewal half-way: the next
/// request finds its result).
pub(crate) struct Fetcher {
    source: Arc<dyn CredentialSource>,
    /// The profile served.
    pub(crate) profile: String,
    tasks: TaskTracker,
    stop: CancellationToken,
}

impl Fetcher {
    /// The profile's current credentials, or the status to answer with.
    pub(crate) async fn fetch(&self) -> Result<Credentials, StatusCode> {
        let source = Arc::clone(&self.source);
        let profile = self.profile.clone();
        let stop = self.stop.clone();
        let task = self.tasks.spawn(async move {
            tokio::select! {
                r = source.current(&profile) => Some(r),
                () = stop.cancelled() => None,
            }
        });
        match tokio::time::timeout(FETCH_TIMEOUT, task).await {
            Ok(Ok(Some(Ok(creds)))) => {
                tracing::debug!(profile = self.profile, key = %KeyId(&creds.access_key_id), "serving credentials");
                Ok(creds)
            }
            Ok(Ok(Some(Err(e)))) => {
                tracing::warn!(profile = self.profile, error = %e, "cannot serve credentials");
                Err(StatusCode::INTERNAL_SERVER_ERROR)
            }
            Ok(Ok(None)) => Err(StatusCode::SERVICE_UNAVAILABLE),
            Ok(Err(e)) => {
                tracing::warn!(profile = self.profile, error = %e, "credentials task failed");
                Err(StatusCode::INTERNAL_SERVER_ERROR)
            }
            Err(_) => {
                tracing::warn!(
                    profile = self.profile,
                    secs = FETCH_TIMEOUT.as_secs(),
                    "no credentials in time; the renewal goes on for the next request"
                );
                Err(StatusCode::SERVICE_UNAVAILABLE)
            }
        }
    }
}

/// The endpoint's routes behind [`screen`], with the [`Fetcher`] its handlers use.
fn app(
    kind: Kind,
    source: Arc<dyn CredentialSource>,
    profile: String,
    make_router: impl FnOnce(Arc<Fetcher>) -> Router,
    tasks: &TaskTracker,
    stop: &CancellationToken,
) -> Router {
    let fetcher = Arc::new(Fetcher {
        source,
        profile,
        tasks: tasks.clone(),
        stop: stop.clone(),
    });
    make_router(fetcher).layer(axum::middleware::from_fn_with_state(kind, screen))
}

/// For unit tests: an endpoint's app without a listener, and a way to send it requests as if
/// from `127.0.0.1`.
#[cfg(test)]
pub(crate) mod testutil {
    use super::*;

    /// The app of `kind` over `source`, serving profile `p`.
    pub(crate) fn app(
        kind: Kind,
        source: Arc<dyn CredentialSource>,
        make_router: impl FnOnce(Arc<Fetcher>) -> Router,
    ) -> Router {
        super::app(
            kind,
            source,
            "p".into(),
            make_router,
            &TaskTracker::new(),
            &CancellationToken::new(),
        )
    }

    /// Sends `req` (its Host set to 127.0.0.1) to `router` from 127.0.0.1; returns the status,
    /// headers and body.
    pub(crate) async fn call(router: &Router, mut req: Request) -> (StatusCode, HeaderMap, String) {
        let lo = SocketAddr::from(([127, 0, 0, 1], 40000));
        req.extensions_mut().insert(Peer {
            remote: lo,
            local: lo,
        });
        req.headers_mut()
            .insert(header::HOST, "127.0.0.1".parse().expect("valid"));
        let mut r = router.clone();
        let resp = match tower_service::Service::call(&mut r, req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then lets open requests finish
/// (each bounded) and returns. `make_router` gets the [`Fetcher`] handlers use.
pub(crate) async fn run(
    listener: TcpListener,
    kind: Kind,
    source: Arc<dyn CredentialSource>,
    profile: String,
    make_router: impl FnOnce(Arc<Fetcher>) -> Router,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    let router = app(kind, source, profile, make_router, &tasks, &stop);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = Arc::clone(&slots).acquire_owned() => match p {
                Ok(p) => p,
                // never closed
                Err(_) => break,
            },
        };
        let (stream, remote) = tokio::select! {
            () = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(got) => got,
                Err(e) => {
                    // out of file descriptors and the like: wait instead of spinning
                    tracing::warn!(endpoint = ?kind, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(local) = stream.local_addr() else {
            continue;
        };
        let peer = Peer { remote, local };
        let router = router.clone();
        let stop = stop.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(peer);
                let mut router = router.clone();
                async move { tower_service::Service::call(&mut router, req.map(Body::new)).await }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEADER_BYTES)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let served = tokio::time::timeout(CONNECTION_LIFETIME, async {
                tokio::select! {
                    r = conn.as_mut() => r,
                    () = stop.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        conn.as_mut().await
                    }
                }
            })
            .await;
            match served {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(peer = %remote, error = %e, "connection ended"),
                Err(_) => tracing::debug!(peer = %remote, "connection closed: lived too long"),
            }
        });
    }
    stop.cancel();
    tasks.close();
    tasks.wait().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_peers_only_and_the_imds_address_to_itself() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let lan: IpAddr = "192.168.1.20".parse().unwrap();
        let imds = IpAddr::V4(IMDS_V4);
        assert!(peer_allowed(Kind::Ecs, lo, lo));
        assert!(peer_allowed(
            Kind::Ecs,
            "::1".parse().unwrap(),
            "::1".parse().unwrap()
        ));
        assert!(peer_allowed(
            Kind::Ecs,
            "::ffff:127.0.0.1".parse().unwrap(),
            lo
        ));
        assert!(!peer_allowed(Kind::Ecs, lan, lan));
        assert!(!peer_allowed(Kind::Imds, lan, lan));
        assert!(peer_allowed(Kind::Imds, imds, imds));
        assert!(!peer_allowed(Kind::Ecs, imds, imds));
        assert!(!peer_allowed(Kind::Imds, imds, lan));
    }

    #[test]
    fn host_must_be_loopback_or_the_imds_address() {
        for ok in [
            "127.0.0.1",
            "127.0.0.1:8080",
            "localhost:1",
            "LOCALHOST",
            "[::1]:80",
            "[::1]",
            "127.3.4.5",
        ] {
            assert!(host_allowed(Kind::Ecs, ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:80",
            "192.168.1.2",
            "169.254.169.254",
            "127.0.0.1:x",
            "127.0.0.1:",
            "[::1]x",
            "localhost.evil.example",
            "",
            "127.0.0.1:123456",
        ] {
            assert!(!host_allowed(Kind::Ecs, bad), "{bad}");
        }
        assert!(host_allowed(Kind::Imds, "169.254.169.254"));
        assert!(host_allowed(Kind::Imds, "[fd00:ec2::254]:80"));
    }

    #[test]
    fn tokens_are_random_hex_compared_whole_and_never_shown() {
        let a = Token::generate().unwrap();
        let b = Token::generate().unwrap();
        assert_eq!(a.expose().len(), 64);
        assert_ne!(a.expose(), b.expose());
        assert!(a.matches(a.expose().as_bytes()));
        assert!(!a.matches(b.expose().as_bytes()));
        assert!(!a.matches(&a.expose().as_bytes()[..63]));
        assert!(!a.matches(b""));
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn a_request_with_a_body_is_refused() {
        let mut h = HeaderMap::new();
        assert!(!body_too_large(&h));
        h.insert(header::CONTENT_LENGTH, "0".parse().unwrap());
        assert!(!body_too_large(&h));
        h.insert(header::CONTENT_LENGTH, "100000".parse().unwrap());
        assert!(body_too_large(&h));
        h.insert(header::CONTENT_LENGTH, "x".parse().unwrap());
        assert!(body_too_large(&h));
        let mut h = HeaderMap::new();
        h.insert(header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        assert!(body_too_large(&h));
    }
}
