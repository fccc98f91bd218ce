//! The container credentials endpoint (what ECS gives a task): the AWS SDKs and the CLI fetch
//! credentials from `AWS_CONTAINER_CREDENTIALS_FULL_URI`, sending
//! `AWS_CONTAINER_AUTHORIZATION_TOKEN` as the `Authorization` header, and fetch again before
//! the `Expiration` of what they got. So a long-running program keeps getting fresh
//! credentials without a restart.
//!
//! Served: `GET /` with the token → `{"AccessKeyId", "SecretAccessKey", "Token",
//! "Expiration"}` of the profile's current credentials ([`super::source`]). Everything else is
//! refused with a generic answer; the checks every request passes first are in
//! [`super::endpoint`]. Like aws-vault's `server/ecsserver.go`, but the token is compared in
//! constant time, the port is the caller's choice (0: any free one), nothing exits the process,
//! and no upstream error text reaches the client.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;

use super::endpoint::{self, Fetcher, Kind, Token, generic};
use super::source::CredentialSource;

/// Serves `profile`'s credentials from `source` on `listener` to requests carrying `token`,
/// until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    token: Token,
    source: Arc<dyn CredentialSource>,
    profile: String,
    shutdown: impl Future<Output = ()>,
) {
    endpoint::run(
        listener,
        Kind::Ecs,
        source,
        profile,
        routes(token),
        shutdown,
    )
    .await;
}

fn routes(token: Token) -> impl FnOnce(Arc<Fetcher>) -> Router {
    let token = Arc::new(token);
    move |fetcher| {
        Router::new()
            .route("/", get(credentials))
            .fallback(|| async { generic(StatusCode::NOT_FOUND) })
            .with_state((fetcher, token))
    }
}

async fn credentials(
    State((fetcher, token)): State<(Arc<Fetcher>, Arc<Token>)>,
    headers: HeaderMap,
) -> Response {
    let given = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if !token.matches(given) {
        tracing::warn!(
            present = headers.contains_key(header::AUTHORIZATION),
            "refused: wrong or missing authorization token"
        );
        return generic(StatusCode::UNAUTHORIZED);
    }
    let creds = match fetcher.fetch().await {
        Ok(c) => c,
        Err(status) => return generic(status),
    };
    let mut doc = serde_json::json!({
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use axum::body::Body;
    use axum::extract::Request;

    use super::*;
    use crate::credentials::{Credentials, SecretString};
    use crate::error::Error;
    use crate::serve::endpoint::testutil::{app, call};
    use crate::serve::source::BoxFuture;

    /// A source that fails, or gives fixed credentials.
    struct Fixed(bool);

    impl CredentialSource for Fixed {
        fn current<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Credentials, Error>> {
            let ok = self.0;
            Box::pin(async move {
                if !ok {
                    return Err(Error::Internal("sts said: secret detail ASIAXXXX".into()));
                }
                Ok(Credentials {
                    access_key_id: "ASIATESTKEY00001".into(),
                    secret_access_key: SecretString::from("sekrit"),
                    session_token: Some(SecretString::from("tok")),
                    expiration: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)),
                })
            })
        }
    }

    fn get(auth: Option<&str>) -> Request {
        let mut b = Request::builder().uri("/");
        if let Some(a) = auth {
            b = b.header(header::AUTHORIZATION, a);
        }
        b.body(Body::empty()).expect("request")
    }

    #[tokio::test]
    async fn serves_the_sdk_json_to_the_token_only() {
        let token = Token::generate().unwrap();
        let t = token.expose().to_string();
        let router = app(Kind::Ecs, Arc::new(Fixed(true)), routes(token));
        let (status, _, body) = call(&router, get(Some(&t))).await;
        assert_eq!(status, StatusCode::OK);
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(doc["AccessKeyId"], "ASIATESTKEY00001");
        assert_eq!(doc["SecretAccessKey"], "sekrit");
        assert_eq!(doc["Token"], "tok");
        assert_eq!(doc["Expiration"], "2027-01-15T08:00:00Z");
        assert_eq!(call(&router, get(None)).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(
            call(&router, get(Some("Bearer x"))).await.0,
            StatusCode::UNAUTHORIZED
        );
        let other = Request::builder()
            .uri("/other")
            .body(Body::empty())
            .unwrap();
        assert_eq!(call(&router, other).await.0, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn a_failure_is_answered_without_its_details() {
        let token = Token::generate().unwrap();
        let t = token.expose().to_string();
        let router = app(Kind::Ecs, Arc::new(Fixed(false)), routes(token));
        let (status, _, body) = call(&router, get(Some(&t))).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body, "credentials unavailable\n");
    }
}
