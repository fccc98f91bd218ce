//! `Imds`: a strict, local EC2 instance metadata service (IMDSv2 only) serving an instance
//! role's credentials, so that `kind = "instance-profile"` sources run against the real
//! aws-config client through `AWS_EC2_METADATA_SERVICE_ENDPOINT`.
//!
//! Strict like EC2 with `HttpTokens=required`:
//! - `PUT /latest/api/token` needs `X-aws-ec2-metadata-token-ttl-seconds` (1 to 21600), else
//!   400; a PUT carrying `X-Forwarded-For` is refused with 403 (EC2's guard against open
//!   proxies); the answer is a fresh token valid for that many seconds.
//! - Every `GET` needs a live token in `X-aws-ec2-metadata-token`, else 401.
//! - `GET /latest/meta-data/iam/security-credentials/` lists the role;
//!   `…/security-credentials/<role>` answers the credentials JSON; anything else is 404.
//!
//! Credentials are whatever the test gives ([`ImdsCredentials::from_moto`] gets real ones from
//! moto's AssumeRole, so STS calls signed with them work) and can be swapped (rotation). Every
//! request is recorded. It runs in-process on an [`HttpServer`] (its own thread and runtime,
//! bound to 127.0.0.1:0) and stops on Drop.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap};
use hyper::{Method, Request, Response, StatusCode};

use super::http_server::HttpServer;
use super::rolecall::{Rolecall, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY};

const TOKEN_PATH: &str = "/latest/api/token";
const CREDENTIALS_PATH: &str = "/latest/meta-data/iam/security-credentials/";
const TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
const MAX_TTL_SECONDS: u64 = 21_600;

/// The instance role's credentials as IMDS serves them.
#[derive(Clone)]
pub struct ImdsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub token: String,
    /// RFC 3339, e.g. `2026-11-22T03:06:26Z`.
    pub expiration: String,
}

impl fmt::Debug for ImdsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImdsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

impl ImdsCredentials {
    /// Real temporary credentials from moto's AssumeRole of `role_arn` (boto3, straight to
    /// `moto_url`, so a proxy in front of moto does not see this call).
    pub fn from_moto(rolecall: &Rolecall, moto_url: &str, role_arn: &str) -> ImdsCredentials {
        let code = format!(
            "import boto3, json\n\
             c = boto3.client('sts', endpoint_url={moto_url:?}, region_name='us-east-1')\n\
             r = c.assume_role(RoleArn={role_arn:?}, RoleSessionName='i-0123456789abcdef0')\n\
             k = r['Credentials']\n\
             print(json.dumps({{'id': k['AccessKeyId'], 'secret': k['SecretAccessKey'], \
             'token': k['SessionToken'], \
             'exp': k['Expiration'].strftime('%Y-%m-%dT%H:%M:%SZ')}}))\n"
        );
        let out = rolecall
            .python(&code)
            .env("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", TEST_SECRET_ACCESS_KEY)
            .run()
            .success();
        let json = out.json();
        let field = |k: &str| {
            json[k]
                .as_str()
                .unwrap_or_else(|| panic!("no {k} in {}", out.stdout))
                .to_owned()
        };
        ImdsCredentials {
            access_key_id: field("id"),
            secret_access_key: field("secret"),
            token: field("token"),
            expiration: field("exp"),
        }
    }

    fn json(&self) -> String {
        serde_json::json!({
            "Code": "Success",
            "LastUpdated": "2026-11-22T00:00:00Z",
            "Type": "AWS-HMAC",
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "Token": self.token,
            "Expiration": self.expiration,
        })
        .to_string()
    }
}

/// One request the server received.
#[derive(Clone, Debug)]
pub struct ImdsRequest {
    pub method: String,
    pub path: String,
    /// The `X-aws-ec2-metadata-token` header, if any.
    pub token: Option<String>,
    /// The `X-aws-ec2-metadata-token-ttl-seconds` header, if any.
    pub ttl: Option<String>,
    /// The status sent back.
    pub status: u16,
}

#[derive(Debug)]
struct State {
    role: Option<String>,
    credentials: ImdsCredentials,
    /// Live tokens and when they expire.
    tokens: HashMap<String, Instant>,
    requests: Vec<ImdsRequest>,
}

struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panicking test thread may poison the lock; the state itself is still consistent.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The server; stops on Drop.
pub struct Imds {
    server: HttpServer,
    shared: Arc<Shared>,
}

impl fmt::Debug for Imds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Imds")
            .field("addr", &self.server.addr())
            .finish_non_exhaustive()
    }
}

impl Imds {
    /// Serves `credentials` as the instance role `role`; accepts connections on return.
    pub fn start(role: &str, credentials: ImdsCredentials) -> Imds {
        let state = || Shared {
            state: Mutex::new(State {
                role: Some(role.to_owned()),
                credentials,
                tokens: HashMap::new(),
                requests: Vec::new(),
            }),
        };
        let (server, shared) = HttpServer::start("IMDS", state, |shared, request| async move {
            Ok::<_, Infallible>(handle(&shared, &request))
        });
        Imds { server, shared }
    }

    /// `http://127.0.0.1:PORT`, to use as `AWS_EC2_METADATA_SERVICE_ENDPOINT`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Serves these credentials from now on (the instance role's rotation).
    pub fn set_credentials(&self, credentials: ImdsCredentials) {
        self.shared.state().credentials = credentials;
    }

    /// Changes the instance role; `None` is an instance without one (404 on the listing).
    pub fn set_role(&self, role: Option<&str>) {
        self.shared.state().role = role.map(str::to_owned);
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<ImdsRequest> {
        self.shared.state().requests.clone()
    }

    /// Forgets the recorded requests (tokens stay valid).
    pub fn clear_requests(&self) {
        self.shared.state().requests.clear();
    }
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn handle(shared: &Shared, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let headers = request.headers();
    let token = header_str(headers, TOKEN_HEADER);
    let ttl = header_str(headers, TTL_HEADER);
    let mut state = shared.state();
    let now = Instant::now();
    state.tokens.retain(|_, expires| *expires > now);
    // EC2 echoes the token's TTL in the answer; aws-config refuses a token without it
    let mut ttl_echo = None;
    let (status, body) = match (request.method(), path.as_str()) {
        (&Method::PUT, TOKEN_PATH) => {
            let seconds = ttl.as_deref().and_then(|t| t.trim().parse::<u64>().ok());
            match seconds {
                _ if headers.contains_key("x-forwarded-for") => {
                    (StatusCode::FORBIDDEN, String::new())
                }
                Some(s) if (1..=MAX_TTL_SECONDS).contains(&s) => {
                    let token = new_token();
                    state
                        .tokens
                        .insert(token.clone(), now + Duration::from_secs(s));
                    ttl_echo = Some(s);
                    (StatusCode::OK, token)
                }
                _ => (StatusCode::BAD_REQUEST, String::new()),
            }
        }
        (&Method::PUT, _) => (StatusCode::NOT_FOUND, String::new()),
        (&Method::GET, _) if !token.as_ref().is_some_and(|t| state.tokens.contains_key(t)) => {
            (StatusCode::UNAUTHORIZED, String::new())
        }
        (&Method::GET, CREDENTIALS_PATH) => match &state.role {
            Some(role) => (StatusCode::OK, role.clone()),
            None => (StatusCode::NOT_FOUND, String::new()),
        },
        (&Method::GET, p) => match (p.strip_prefix(CREDENTIALS_PATH), &state.role) {
            (Some(asked), Some(role)) if asked == role => {
                (StatusCode::OK, state.credentials.json())
            }
            _ => (StatusCode::NOT_FOUND, String::new()),
        },
        _ => (StatusCode::METHOD_NOT_ALLOWED, String::new()),
    };
    state.requests.push(ImdsRequest {
        method: request.method().to_string(),
        path,
        token,
        ttl,
        status: status.as_u16(),
    });
    let content_type = if body.starts_with('{') {
        "application/json"
    } else {
        "text/plain"
    };
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type);
    if let Some(s) = ttl_echo {
        response = response.header(TTL_HEADER, s.to_string());
    }
    response
        .body(Full::new(Bytes::from(body)))
        .expect("a valid status and headers")
}

/// An opaque token, unique within the test process.
fn new_token() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("AQAEAimds{nanos:08x}{n:08x}==")
}
