//! `Served`: a real `rolecall serve` in the world's sandbox, ready when its environment file is
//! written; and `raw_http`, which sends bytes exactly as given (the refusal tests need requests
//! no well-behaved client makes).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use super::probe::wait_until;
use super::process::Process;
use super::world::World;

/// A running `rolecall serve`; SIGTERM on Drop, then SIGKILL.
pub struct Served {
    pub process: Process,
    /// The variables it asks clients to set, from its `--env-file`.
    pub env: Vec<(String, String)>,
}

impl Served {
    /// Starts `rolecall -v serve ARGS… --env-file FILE` and waits for FILE.
    pub fn start(world: &World, args: &[&str]) -> Served {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let env_file: PathBuf = world.sandbox.path(format!("serve-{stamp}.env"));
        let log = world.sandbox.log_dir().join(format!("serve-{stamp}.log"));
        let mut all = vec!["-v", "serve"];
        all.extend_from_slice(args);
        let file = env_file.to_str().expect("UTF-8 sandbox path");
        all.extend_from_slice(&["--env-file", file]);
        let mut process = world.rc(&all).spawn("rolecall serve", &log);
        let text = wait_until(Duration::from_secs(30), || {
            if !process.is_running() {
                return Some(None);
            }
            std::fs::read_to_string(&env_file)
                .ok()
                .filter(|t| t.ends_with('\n'))
                .map(Some)
        });
        let Some(Some(text)) = text else {
            panic!("rolecall serve did not come up:\n{}", process.log());
        };
        let env = text
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
            .collect();
        Served { process, env }
    }

    /// The value of one of its variables.
    pub fn var(&self, key: &str) -> &str {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| {
                panic!(
                    "no {key} in {:?}",
                    self.env.iter().map(|(k, _)| k).collect::<Vec<_>>()
                )
            })
    }

    /// The address in `url` (`http://127.0.0.1:PORT/`).
    pub fn addr(url: &str) -> SocketAddr {
        url.trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        self.process.log()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if self.process.is_running() {
            self.process.signal("TERM");
            if self.process.wait_timeout(Duration::from_secs(10)).is_none() {
                self.process.kill();
            }
        }
    }
}

/// A response as `raw_http` read it.
#[derive(Debug)]
pub struct RawResponse {
    /// 0 when the server closed the connection without an answer.
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// Connects to `to` (from `from`, when given) and sends `request` as is; reads until the
/// server closes.
pub fn raw_http(from: Option<SocketAddr>, to: SocketAddr, request: &[u8]) -> RawResponse {
    let stream = match from {
        None => TcpStream::connect_timeout(&to, Duration::from_secs(5)),
        Some(local) => connect_from(local, to),
    };
    let mut stream = stream.unwrap_or_else(|e| panic!("connecting to {to}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    // the server may answer (and close) before reading all of an oversized request
    let _ = stream.write_all(request);
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    RawResponse {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// A TCP connection from the local address `from` (port chosen by the kernel).
fn connect_from(from: SocketAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    // std cannot bind a client socket; a listener-less bind through tokio's TcpSocket can
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let socket = if from.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.bind(SocketAddr::new(from.ip(), 0))?;
        let stream = socket.connect(to).await?;
        stream.into_std()
    })
    .and_then(|s| {
        s.set_nonblocking(false)?;
        Ok(s)
    })
}
