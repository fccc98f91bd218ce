//! An EC2 instance metadata endpoint, IMDSv2 only, serving one profile as the instance's role:
//! for programs that can only read IMDS (or are configured to), pointed at it with
//! `AWS_EC2_METADATA_SERVICE_ENDPOINT`, or on the real IMDS address when it is bound there.
//!
//! - `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds: N` (1 to 21600) →
//!   a session token valid N seconds (the TTL header is echoed, as AWS does; aws-config needs
//!   it). At most [`MAX_TOKENS`] live at once: the oldest is dropped for a new one.
//! - every `GET` needs `X-aws-ec2-metadata-token` with a live token, else 401: IMDSv1 (no token)
//!   is refused, so a server-side request forgery that can only make GETs gets nothing.
//! - `GET /latest/meta-data/iam/security-credentials/` → the profile's name, and
//!   `…/security-credentials/PROFILE` → its current credentials ([`super::source`]) in IMDS's
//!   JSON; `GET /latest/meta-data/iam/info` → `Code: Success` (the .NET SDK asks). Anything
//!   else: 404 (the SDKs then fall back, e.g. from the `-extended` path).
//!
//! The checks every request passes first are in [`super::endpoint`]; requests carrying
//! `X-Forwarded-For` are refused there, as AWS's IMDSv2 does. aws-vault's
//! `server/ec2server.go` serves IMDSv1 only, on a fixed port.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio::time::Instant;

use super::endpoint::{self, Fetcher, Kind, Token, generic};
use super::source::CredentialSource;

/// The most IMDS session tokens alive at once.
pub const MAX_TOKENS: usize = 64;
/// The longest TTL a token may ask for (AWS's limit: 6 hours).
pub const MAX_TTL: Duration = Duration::from_secs(21600);
const TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
const CREDENTIALS_PATH: &str = "/latest/meta-data/iam/security-credentials";

/// Serves `profile`'s credentials from `source` as an IMDSv2 endpoint on `listener`, until
/// `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    source: Arc<dyn CredentialSource>,
    profile: String,
    shutdown: impl Future<Output = ()>,
) {
    endpoint::run(listener, Kind::Imds, source, profile, routes, shutdown).await;
}

fn routes(fetcher: Arc<Fetcher>) -> Router {
    let state = Arc::new(Imds {
        fetcher,
        tokens: Mutex::new(Vec::new()),
    });
    Router::new()
        .route("/latest/api/token", put(new_token))
        .route(CREDENTIALS_PATH, get(role_name))
        .route(&format!("{CREDENTIALS_PATH}/"), get(role_name))
        .route(&format!("{CREDENTIALS_PATH}/{{name}}"), get(credentials))
        .route("/latest/meta-data/iam/info", get(info))
        .route("/latest/meta-data/iam/info/", get(info))
        .fallback(other)
        .with_state(state)
}

struct Imds {
    fetcher: Arc<Fetcher>,
    /// Live session tokens and when each expires. A std mutex: never held across an await.
    tokens: Mutex<Vec<(Token, Instant)>>,
}

impl Imds {
    /// Whether the request carries a live token (compared in constant time against each).
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(given) = headers.get(TOKEN_HEADER) else {
            tracing::warn!("refused: no IMDSv2 token (IMDSv1 is not served)");
            return false;
        };
        let now = Instant::now();
        let tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        let ok = tokens
            .iter()
            .any(|(t, until)| *until > now && t.matches(given.as_bytes()));
        if !ok {
            tracing::warn!("refused: unknown or expired IMDSv2 token");
        }
        ok
    }
}

async fn new_token(State(imds): State<Arc<Imds>>, headers: HeaderMap) -> Response {
    let ttl = headers
        .get(TTL_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|n| (1..=MAX_TTL.as_secs()).contains(n));
    let Some(ttl) = ttl else {
        tracing::warn!("refused: token request without a valid TTL header");
        return generic(StatusCode::BAD_REQUEST);
    };
    let token = match Token::generate() {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "cannot draw a random token");
            return generic(StatusCode::INTERNAL_SERVER_ERROR);
        }
    };
    let now = Instant::now();
    {
        let mut tokens = imds.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        tokens.retain(|(_, until)| *until > now);
        if tokens.len() >= MAX_TOKENS {
            // the one that expires first
            if let Some(i) = (0..tokens.len()).min_by_key(|&i| tokens[i].1) {
                tokens.swap_remove(i);
            }
        }
        tokens.push((token.clone(), now + Duration::from_secs(ttl)));
    }
    (
        [
            (header::CONTENT_TYPE, "text/plain".to_string()),
            (header::HeaderName::from_static(TTL_HEADER), ttl.to_string()),
        ],
        token.expose().to_string(),
    )
        .into_response()
}

async fn role_name(State(imds): State<Arc<Imds>>, headers: HeaderMap) -> Response {
    if !imds.authorized(&headers) {
        return generic(StatusCode::UNAUTHORIZED);
    }
    (
        [(header::CONTENT_TYPE, "text/plain")],
        imds.fetcher.profile.clone(),
    )
        .into_response()
}

async fn credentials(
    State(imds): State<Arc<Imds>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !imds.authorized(&headers) {
        return generic(StatusCode::UNAUTHORIZED);
    }
    if name != imds.fetcher.profile {
        return generic(StatusCode::NOT_FOUND);
    }
    let creds = match imds.fetcher.fetch().await {
        Ok(c) => c,
        Err(status) => return generic(status),
    };
    let mut doc = serde_json::json!({
        "Code": "Success",
        "LastUpdated": crate::timestamp::format(SystemTime::now()),
        "Type": "AWS-HMAC",
        "AccessKeyId": creds.access_key_id,
        "SecretAccessKey": creds.secret_access_key.expose_secret(),
    });
    if let Some(t) = &creds.session_token {
        doc["Token"] = t.expose_secret().into();
    }
    if let Some(e) = creds.expiration {
        doc["Expiration"] = crate::timestamp::format(e).into();
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.to_string(),
    )
        .into_response()
}

/// `iam/info`: the AWS .NET SDK reads it before the credentials and wants `Code: Success`.
async fn info(State(imds): State<Arc<Imds>>, headers: HeaderMap) -> Response {
    if !imds.authorized(&headers) {
        return generic(StatusCode::UNAUTHORIZED);
    }
    let doc = serde_json::json!({
        "Code": "Success",
        "LastUpdated": crate::timestamp::format(SystemTime::now()),
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.to_string(),
    )
        .into_response()
}

/// Every other path: 401 without a token (so that nothing, not even what exists, is told to
/// IMDSv1), else 404; a method other than GET: 405.
async fn other(
    State(imds): State<Arc<Imds>>,
    method: axum::http::Method,
    headers: HeaderMap,
) -> Response {
    if method != axum::http::Method::GET {
        return generic(StatusCode::METHOD_NOT_ALLOWED);
    }
    if !imds.authorized(&headers) {
        return generic(StatusCode::UNAUTHORIZED);
    }
    generic(StatusCode::NOT_FOUND)
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::extract::Request;

    use super::*;
    use crate::credentials::{Credentials, SecretString};
    use crate::error::Error;
    use crate::serve::endpoint::testutil::{app, call};
    use crate::serve::source::BoxFuture;

    struct Fixed;

    impl CredentialSource for Fixed {
        fn current<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Credentials, Error>> {
            Box::pin(async {
                Ok(Credentials {
                    access_key_id: "ASIATESTKEY00001".into(),
                    secret_access_key: SecretString::from("sekrit"),
                    session_token: Some(SecretString::from("tok")),
                    expiration: None,
                })
            })
        }
    }

    fn token_request(ttl: &str) -> Request {
        Request::builder()
            .method("PUT")
            .uri("/latest/api/token")
            .header(TTL_HEADER, ttl)
            .body(Body::empty())
            .unwrap()
    }

    fn read(path: &str, token: &str) -> Request {
        Request::builder()
            .uri(path)
            .header(TOKEN_HEADER, token)
            .body(Body::empty())
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_works_for_its_ttl_and_not_after() {
        let router = app(Kind::Imds, Arc::new(Fixed), routes);
        let (status, headers, token) = call(&router, token_request("60")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[TTL_HEADER], "60");
        let creds = format!("{CREDENTIALS_PATH}/p");
        let (status, _, body) = call(&router, read(&creds, &token)).await;
        assert_eq!(status, StatusCode::OK);
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(doc["Code"], "Success");
        assert_eq!(doc["Type"], "AWS-HMAC");
        assert_eq!(doc["Token"], "tok");
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(call(&router, read(&creds, &token)).await.0, StatusCode::OK);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(
            call(&router, read(&creds, &token)).await.0,
            StatusCode::UNAUTHORIZED
        );
    }

    #[tokio::test(start_paused = true)]
    async fn ttls_outside_aws_limits_are_refused_and_live_tokens_are_capped() {
        let router = app(Kind::Imds, Arc::new(Fixed), routes);
        for bad in ["0", "21601", "-1", "x", ""] {
            assert_eq!(
                call(&router, token_request(bad)).await.0,
                StatusCode::BAD_REQUEST,
                "{bad:?}"
            );
        }
        // the first token expires first, so it is the one dropped when the cap is reached
        let (_, _, first) = call(&router, token_request("100")).await;
        let mut last = String::new();
        for _ in 0..MAX_TOKENS {
            last = call(&router, token_request("21600")).await.2;
        }
        let name = format!("{CREDENTIALS_PATH}/");
        assert_eq!(
            call(&router, read(&name, &first)).await.0,
            StatusCode::UNAUTHORIZED
        );
        let (status, _, body) = call(&router, read(&name, &last)).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "p"));
        let (status, _, body) = call(&router, read("/latest/meta-data/iam/info", &last)).await;
        assert_eq!(status, StatusCode::OK);
        assert_contains_success(&body);
        let missing = read("/latest/meta-data/instance-id", &last);
        assert_eq!(call(&router, missing).await.0, StatusCode::NOT_FOUND);
    }

    fn assert_contains_success(body: &str) {
        let doc: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(doc["Code"], "Success");
    }
}
