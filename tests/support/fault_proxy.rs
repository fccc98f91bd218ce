//! `FaultProxy`: our HTTP/1 reverse proxy in front of moto that answers with the STS failures
//! moto never produces (throttling, 5xx, expired or invalid tokens, clock skew, wrong MFA codes,
//! slow or dropped connections) and records every request.
//!
//! It runs in-process on an [`HttpServer`] (its own thread and tokio runtime, bound to
//! 127.0.0.1:0). Faults come from a queue (each consumed by one matching request) and, when no
//! queued fault matches, from a standing rule; otherwise the request passes through to moto
//! unchanged. A fault can be limited to one STS action (the form field
//! `Action=GetSessionToken|AssumeRole|…`).
//!
//! `Fault::Drop` is the request handler's `Err`, on which hyper closes the connection without
//! writing a response.
//! Error bodies use STS's query-protocol shape:
//! `<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/></ErrorResponse>`.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::http_server::HttpServer;

/// What the proxy does to one request instead of (or before) forwarding it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 400 `Throttling` "Rate exceeded".
    Throttle,
    /// This HTTP status with an STS error body: 500 `InternalFailure`, 503 `ServiceUnavailable`
    /// (other 5xx `InternalFailure`, other codes `InvalidRequest`).
    Status(u16),
    /// Wait this long, then forward (for client timeouts).
    Delay(Duration),
    /// 400 `ExpiredToken`: the session token used to sign the request has expired.
    ExpiredToken,
    /// 403 `AccessDenied`: not authorized to perform sts:AssumeRole on the requested role.
    AccessDenied,
    /// 403 `InvalidClientTokenId`: the access key does not exist.
    InvalidClientTokenId,
    /// 403 `SignatureDoesNotMatch` "Signature expired…": the client's clock is off.
    SignatureExpired,
    /// 403 `AccessDenied`: the MFA code was wrong.
    WrongMfa,
    /// Close the connection without any response.
    Drop,
}

impl Fault {
    /// The HTTP status this fault answers with (`None` for `Delay` and `Drop`).
    pub fn status(&self) -> Option<u16> {
        self.error().map(|error| error.status)
    }

    /// The STS error code this fault answers with (`None` for `Delay` and `Drop`).
    pub fn code(&self) -> Option<&'static str> {
        self.error().map(|error| error.code)
    }

    /// The STS error message (the `AccessDenied` one names a placeholder role; the proxy names
    /// the requested `RoleArn`).
    pub fn message(&self) -> Option<String> {
        self.error().map(|error| error.message(None))
    }

    fn error(&self) -> Option<StsError> {
        let (status, code) = match self {
            Fault::Throttle => (400, "Throttling"),
            Fault::Status(status) => (
                *status,
                match status {
                    503 => "ServiceUnavailable",
                    500..=599 => "InternalFailure",
                    _ => "InvalidRequest",
                },
            ),
            Fault::ExpiredToken => (400, "ExpiredToken"),
            Fault::AccessDenied | Fault::WrongMfa => (403, "AccessDenied"),
            Fault::InvalidClientTokenId => (403, "InvalidClientTokenId"),
            Fault::SignatureExpired => (403, "SignatureDoesNotMatch"),
            Fault::Delay(_) | Fault::Drop => return None,
        };
        Some(StsError {
            status,
            code,
            fault: self.clone(),
        })
    }
}

struct StsError {
    status: u16,
    code: &'static str,
    fault: Fault,
}

impl StsError {
    fn message(&self, role_arn: Option<&str>) -> String {
        match &self.fault {
            Fault::Throttle => "Rate exceeded".to_owned(),
            Fault::Status(503) => "Service Unavailable".to_owned(),
            Fault::Status(status) if *status >= 500 => "An internal error has occurred".to_owned(),
            Fault::Status(_) => "The request is invalid".to_owned(),
            Fault::ExpiredToken => {
                "The security token included in the request is expired".to_owned()
            }
            Fault::AccessDenied => format!(
                "User: arn:aws:iam::123456789012:user/alice is not authorized to perform: \
                 sts:AssumeRole on resource: {}",
                role_arn.unwrap_or("arn:aws:iam::123456789012:role/example")
            ),
            Fault::InvalidClientTokenId => {
                "The security token included in the request is invalid.".to_owned()
            }
            Fault::SignatureExpired => "Signature expired: 20261122T010000Z is now earlier than \
                                        20261122T020000Z (20261122T021500Z - 15 min.)"
                .to_owned(),
            Fault::WrongMfa => {
                "MultiFactorAuthentication failed with invalid MFA one time pass code. ".to_owned()
            }
            Fault::Delay(_) | Fault::Drop => unreachable!("no error body for {:?}", self.fault),
        }
    }

    /// STS's query-protocol error: `Sender` for 4xx, `Receiver` for 5xx.
    fn response(&self, role_arn: Option<&str>) -> Response<Full<Bytes>> {
        let request_id = request_id();
        let kind = if self.status >= 500 {
            "Receiver"
        } else {
            "Sender"
        };
        let body = format!(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  <Error>\n    \
             <Type>{kind}</Type>\n    <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  \
             <RequestId>{request_id}</RequestId>\n</ErrorResponse>\n",
            self.code,
            xml_escape(&self.message(role_arn)),
        );
        Response::builder()
            .status(self.status)
            .header(header::CONTENT_TYPE, "text/xml")
            .header("x-amzn-RequestId", request_id)
            .body(Full::new(Bytes::from(body)))
            .expect("a valid status and headers")
    }
}

/// One request the proxy received.
#[derive(Clone, Debug)]
pub struct ProxiedRequest {
    /// The STS action (`GetSessionToken`, `AssumeRole`, `GetCallerIdentity`…), if any.
    pub action: Option<String>,
    /// The decoded query and form parameters (`RoleArn`, `SerialNumber`, `TokenCode`…).
    pub params: Vec<(String, String)>,
    pub method: String,
    pub path: String,
    /// When it arrived.
    pub at: Instant,
    /// The fault applied, if any.
    pub fault: Option<Fault>,
    /// The status sent back; `None` for a `Drop` fault or while the answer is still pending
    /// (a `Delay`). A client that gave up during a `Delay` still gets its status recorded once
    /// the delay ends.
    pub status: Option<u16>,
}

impl ProxiedRequest {
    /// The first parameter of this name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

#[derive(Clone, Debug)]
struct Scheduled {
    action: Option<String>,
    /// Only requests for this role (`RoleArn`), when set.
    role_arn: Option<String>,
    fault: Fault,
}

impl Scheduled {
    fn matches(&self, action: Option<&str>, role_arn: Option<&str>) -> bool {
        self.action
            .as_deref()
            .is_none_or(|wanted| Some(wanted) == action)
            && self
                .role_arn
                .as_deref()
                .is_none_or(|wanted| Some(wanted) == role_arn)
    }
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Scheduled>,
    rule: Option<Scheduled>,
    requests: Vec<ProxiedRequest>,
}

struct Shared {
    state: Mutex<State>,
    upstream: Uri,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panicking test thread may poison the lock; the state itself is still consistent.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The proxy; stops (and drops in-flight requests) on Drop.
pub struct FaultProxy {
    server: HttpServer,
    shared: Arc<Shared>,
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.server.addr())
            .field("upstream", &self.shared.upstream)
            .finish_non_exhaustive()
    }
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (e.g. `moto.url()`); it accepts connections on return.
    pub fn start(upstream: &str) -> FaultProxy {
        let upstream: Uri = upstream
            .parse()
            .unwrap_or_else(|e| panic!("upstream {upstream}: {e}"));
        // The client is made with the server's runtime entered: its connection pool runs there.
        let state = || Shared {
            state: Mutex::default(),
            upstream,
            client: Client::builder(TokioExecutor::new()).build_http(),
        };
        let (server, shared) = HttpServer::start("fault proxy", state, handle);
        FaultProxy { server, shared }
    }

    /// `http://127.0.0.1:PORT`, to use as `AWS_ENDPOINT_URL_STS`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Queues a fault for the next request of any action.
    pub fn push(&self, fault: Fault) {
        self.shared.state().queue.push_back(Scheduled {
            action: None,
            role_arn: None,
            fault,
        });
    }

    /// Queues `fault` `times` times.
    pub fn push_n(&self, times: usize, fault: &Fault) {
        for _ in 0..times {
            self.push(fault.clone());
        }
    }

    /// Queues a fault for the next request of this action (others pass it by).
    pub fn push_for(&self, action: &str, fault: Fault) {
        let scheduled = Scheduled {
            action: Some(action.to_owned()),
            role_arn: None,
            fault,
        };
        self.shared.state().queue.push_back(scheduled);
    }

    /// Applies `fault` to every request that no queued fault matches, until cleared.
    pub fn set_rule(&self, fault: Fault) {
        self.shared.state().rule = Some(Scheduled {
            action: None,
            role_arn: None,
            fault,
        });
    }

    /// Like `set_rule`, for one action only.
    pub fn set_rule_for(&self, action: &str, fault: Fault) {
        self.shared.state().rule = Some(Scheduled {
            action: Some(action.to_owned()),
            role_arn: None,
            fault,
        });
    }

    /// Like `set_rule`, for AssumeRole of one role only: other profiles keep working, so a
    /// test can watch them renew as a clock.
    pub fn set_rule_for_role(&self, role_arn: &str, fault: Fault) {
        self.shared.state().rule = Some(Scheduled {
            action: Some("AssumeRole".to_owned()),
            role_arn: Some(role_arn.to_owned()),
            fault,
        });
    }

    pub fn clear_rule(&self) {
        self.shared.state().rule = None;
    }

    /// Faults still queued.
    pub fn pending(&self) -> usize {
        self.shared.state().queue.len()
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<ProxiedRequest> {
        self.shared.state().requests.clone()
    }

    /// How many requests of this action arrived.
    pub fn count(&self, action: &str) -> usize {
        let state = self.shared.state();
        state
            .requests
            .iter()
            .filter(|request| request.action.as_deref() == Some(action))
            .count()
    }

    /// The requests of this action so far, in arrival order.
    pub fn requests_of(&self, action: &str) -> Vec<ProxiedRequest> {
        self.shared
            .state()
            .requests
            .iter()
            .filter(|request| request.action.as_deref() == Some(action))
            .cloned()
            .collect()
    }

    /// The first request of this action, if one arrived.
    pub fn first(&self, action: &str) -> Option<ProxiedRequest> {
        self.requests_of(action).into_iter().next()
    }

    /// The statuses returned so far, in order (`None`: no response).
    pub fn statuses(&self) -> Vec<Option<u16>> {
        self.shared
            .state()
            .requests
            .iter()
            .map(|request| request.status)
            .collect()
    }

    /// Forgets queued faults, the rule and the recorded requests.
    pub fn clear(&self) {
        let mut state = self.shared.state();
        state.queue.clear();
        state.rule = None;
        state.requests.clear();
    }
}

/// Returned by the service to make hyper close the connection without a response.
#[derive(Debug)]
struct DropConnection;

impl fmt::Display for DropConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("fault: drop the connection")
    }
}

impl std::error::Error for DropConnection {}

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, DropConnection> {
    let at = Instant::now();
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map_err(|_| DropConnection)?.to_bytes();

    let mut params = parts.uri.query().map(parse_form).unwrap_or_default();
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        params.extend(parse_form(&String::from_utf8_lossy(&body)));
    }
    let action = params
        .iter()
        .find(|(key, _)| key == "Action")
        .map(|(_, value)| value.clone());

    let role_arn = params
        .iter()
        .find(|(key, _)| key == "RoleArn")
        .map(|(_, value)| value.clone());
    let (index, fault) = {
        let mut state = shared.state();
        let queued = state
            .queue
            .iter()
            .position(|scheduled| scheduled.matches(action.as_deref(), role_arn.as_deref()));
        let fault = match queued {
            Some(position) => state
                .queue
                .remove(position)
                .map(|scheduled| scheduled.fault),
            None => state
                .rule
                .as_ref()
                .filter(|rule| rule.matches(action.as_deref(), role_arn.as_deref()))
                .map(|rule| rule.fault.clone()),
        };
        state.requests.push(ProxiedRequest {
            action,
            params: params.clone(),
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            at,
            fault: fault.clone(),
            status: None,
        });
        (state.requests.len() - 1, fault)
    };

    let response = match fault {
        Some(Fault::Drop) => return Err(DropConnection),
        Some(Fault::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            forward(&shared, parts, body).await
        }
        Some(fault) => fault
            .error()
            .expect("every other fault has an error body")
            .response(role_arn.as_deref()),
        None => forward(&shared, parts, body).await,
    };
    shared.state().requests[index].status = Some(response.status().as_u16());
    Ok(response)
}

/// Sends the request on to the upstream unchanged (bar hop-by-hop headers) and relays the
/// answer; a failure to reach the upstream becomes a 502.
async fn forward(
    shared: &Shared,
    parts: hyper::http::request::Parts,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let uri = format!(
        "{}://{}{path_and_query}",
        shared.upstream.scheme_str().unwrap_or("http"),
        shared
            .upstream
            .authority()
            .expect("the upstream URL has host and port"),
    );
    let mut request = Request::builder().method(parts.method).uri(uri);
    for (name, value) in &parts.headers {
        if !is_hop_by_hop(name) {
            request = request.header(name, value);
        }
    }
    let request = request
        .body(Full::new(body))
        .expect("a request rebuilt from a valid one");
    let result = async {
        let response = shared
            .client
            .request(request)
            .await
            .map_err(|e| format!("{e:?}"))?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("{e:?}"))?
            .to_bytes();
        Ok::<_, String>((parts, body))
    }
    .await;
    match result {
        Ok((parts, body)) => {
            let mut response = Response::builder().status(parts.status);
            for (name, value) in &parts.headers {
                if !is_hop_by_hop(name) && name != header::CONTENT_LENGTH {
                    response = response.header(name, value);
                }
            }
            response
                .body(Full::new(body))
                .expect("a response rebuilt from a valid one")
        }
        Err(error) => Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .header(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))
            .body(Full::new(Bytes::from(format!(
                "fault proxy: upstream failed: {error}\n"
            ))))
            .expect("a valid 502"),
    }
}

fn is_hop_by_hop(name: &header::HeaderName) -> bool {
    [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
    ]
    .contains(name)
        || name.as_str() == "keep-alive"
}

/// Decodes `a=1&b=x%2Fy` (`+` is a space).
fn parse_form(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A request id shaped like AWS's (a UUID), unique within the test process.
fn request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("fa017000-0000-4000-8000-{n:012x}")
}
