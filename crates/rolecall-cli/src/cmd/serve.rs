//! `rolecall serve --ecs PROFILE | --imds PROFILE`: a local credential endpoint in the
//! foreground, and [`Endpoint`], which `rolecall exec --endpoint` starts for its child.
//!
//! The profile is renewed in this process, on demand: a request that finds less than 15
//! minutes left (see `rolecall_core::serve::source`) renews it first. The SDKs ask again
//! before their credentials expire, so demand comes in time; no timer runs while nobody asks,
//! and no second scheduler competes with a running daemon's (which renews the same file: what
//! it renewed is what is served). MFA codes, when a session must be renewed, are asked on the
//! controlling terminal by `serve`, as for `credential_process`; `exec --endpoint` asks before
//! the command starts and never while it runs (the command owns the terminal then): a session
//! that expires meanwhile is renewed by `rolecall refresh` elsewhere, through the keychain.
//!
//! The token (ECS) goes to stdout as shell lines, or with `--env-file` into a new 0600 file;
//! never into a log.

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{ArgGroup, Args};
use rolecall_core::MfaPrompter;
use rolecall_core::config::Paths;
use rolecall_core::serve::endpoint::{IMDS_V4, IMDS_V6, Token};
use rolecall_core::serve::source::{CredentialSource, EngineSource};
use rolecall_core::serve::{ecs, imds};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cmd::engine_with;
use crate::prompt::TtyPrompt;

/// `rolecall serve`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("endpoint").required(true).args(["ecs", "imds"])))]
pub struct ServeArgs {
    /// Serve PROFILE as the container credentials endpoint (for AWS_CONTAINER_CREDENTIALS_FULL_URI
    /// and AWS_CONTAINER_AUTHORIZATION_TOKEN).
    #[arg(long, value_name = "PROFILE")]
    pub ecs: Option<String>,
    /// Serve PROFILE as an IMDSv2 instance-metadata endpoint (for
    /// AWS_EC2_METADATA_SERVICE_ENDPOINT, or on 169.254.169.254 itself).
    #[arg(long, value_name = "PROFILE")]
    pub imds: Option<String>,
    /// The port (default: a free one; 80 when --bind is the IMDS address).
    #[arg(long)]
    pub port: Option<u16>,
    /// The address the IMDS endpoint listens on (default 127.0.0.1). Only requests from this
    /// machine are served, whatever the address.
    #[arg(long, value_name = "ADDR", requires = "imds", conflicts_with = "ecs")]
    pub bind: Option<IpAddr>,
    /// Write the environment lines into FILE (created, mode 0600; must not exist) instead of
    /// printing them: when stdout goes to a log (systemd's journal) that must not hold the token.
    #[arg(long, value_name = "FILE")]
    pub env_file: Option<PathBuf>,
}

/// A running endpoint: its environment for clients, and how to stop it.
pub struct Endpoint {
    /// The variables a client needs, in order (the token among them, for ECS).
    pub env: Vec<(&'static str, String)>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Endpoint {
    /// Fetches `profile`'s credentials once (so that an unknown profile or a missing MFA code
    /// fails here, before anyone relies on the endpoint), then serves them on 127.0.0.1:`port`
    /// as the container credentials endpoint.
    /// MFA codes for later renewals are asked through `prompter`.
    pub async fn ecs(
        paths: Paths,
        profile: &str,
        port: u16,
        prompter: Arc<dyn MfaPrompter>,
    ) -> anyhow::Result<Endpoint> {
        let source = first_fetch(paths, profile, prompter).await?;
        let listener = bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
        let addr = listener
            .local_addr()
            .context("reading the endpoint's address")?;
        let token = Token::generate().context("drawing a random token from the OS")?;
        let env = vec![
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                format!("http://{addr}/"),
            ),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN",
                token.expose().to_string(),
            ),
        ];
        let stop = CancellationToken::new();
        let s = stop.clone();
        let task = tokio::spawn(ecs::serve(
            listener,
            token,
            source,
            profile.to_string(),
            async move {
                s.cancelled().await;
            },
        ));
        tracing::info!(profile, %addr, "container credentials endpoint started");
        Ok(Endpoint { env, stop, task })
    }

    /// As [`Endpoint::ecs`], an IMDSv2 endpoint on `ip`:`port`.
    pub async fn imds(
        paths: Paths,
        profile: &str,
        ip: IpAddr,
        port: u16,
        prompter: Arc<dyn MfaPrompter>,
    ) -> anyhow::Result<Endpoint> {
        let source = first_fetch(paths, profile, prompter).await?;
        let listener = bind(SocketAddr::new(ip, port)).await?;
        let addr = listener
            .local_addr()
            .context("reading the endpoint's address")?;
        let env = vec![(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            format!("http://{addr}/"),
        )];
        let stop = CancellationToken::new();
        let s = stop.clone();
        let task = tokio::spawn(imds::serve(
            listener,
            source,
            profile.to_string(),
            async move {
                s.cancelled().await;
            },
        ));
        tracing::info!(profile, %addr, "IMDSv2 endpoint started");
        Ok(Endpoint { env, stop, task })
    }

    /// Stops serving: open requests finish (each bounded), then this returns.
    pub async fn stop(self) {
        self.stop.cancel();
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "the endpoint task failed");
        }
    }
}

async fn first_fetch(
    paths: Paths,
    profile: &str,
    prompter: Arc<dyn MfaPrompter>,
) -> anyhow::Result<Arc<dyn CredentialSource>> {
    let engine = engine_with(paths, prompter).await?;
    let source: Arc<dyn CredentialSource> = Arc::new(EngineSource::new(engine));
    source.current(profile).await?;
    Ok(source)
}

async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        if addr.port() != 0 && addr.port() < 1024 {
            format!(
                "cannot listen on {addr}: a port below 1024 needs privileges (run as root, or \
                 give the binary CAP_NET_BIND_SERVICE), or leave --port out for a free one"
            )
        } else {
            format!("cannot listen on {addr}: is the address on this machine and the port free?")
        }
    })
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

pub async fn run(paths: Paths, args: ServeArgs) -> anyhow::Result<u8> {
    let endpoint = match (&args.ecs, &args.imds) {
        (Some(profile), _) => {
            Endpoint::ecs(paths, profile, args.port.unwrap_or(0), Arc::new(TtyPrompt)).await?
        }
        (None, Some(profile)) => {
            let ip = args.bind.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
            let imds_address = ip == IpAddr::V4(IMDS_V4) || ip == IpAddr::V6(IMDS_V6);
            let port = args.port.unwrap_or(if imds_address { 80 } else { 0 });
            Endpoint::imds(paths, profile, ip, port, Arc::new(TtyPrompt)).await?
        }
        (None, None) => anyhow::bail!("give --ecs PROFILE or --imds PROFILE"),
    };
    let lines: String = endpoint
        .env
        .iter()
        .map(|(k, v)| format!("export {k}={}\n", sh_quote(v)))
        .collect();
    match &args.env_file {
        Some(path) => {
            write_private(path, &lines)?;
            eprintln!(
                "rolecall: serving; the environment to set is in {}",
                path.display()
            );
        }
        None => out!("{lines}"),
    }
    eprintln!("rolecall: serving until interrupted (Ctrl-C)");
    wait_for_stop().await?;
    endpoint.stop().await;
    Ok(crate::exit::OK)
}

/// Creates `path` readable by its owner only, refusing an existing file (which someone else
/// could be reading already).
fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist)", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(unix)]
async fn wait_for_stop() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    Ok(())
}

#[cfg(not(unix))]
async fn wait_for_stop() -> anyhow::Result<()> {
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("rolecall").chain(args.iter().copied()))
    }

    #[test]
    fn one_endpoint_at_a_time_and_bind_only_for_imds() {
        assert!(parse(&["serve"]).is_err());
        assert!(parse(&["serve", "--ecs", "a", "--imds", "b"]).is_err());
        assert!(parse(&["serve", "--ecs", "a", "--bind", "127.0.0.1"]).is_err());
        let Ok(Cli {
            command: Command::Serve(args),
            ..
        }) = parse(&[
            "serve",
            "--imds",
            "a",
            "--bind",
            "169.254.169.254",
            "--port",
            "8080",
        ])
        else {
            panic!("serve --imds with --bind and --port is valid");
        };
        assert_eq!(args.imds.as_deref(), Some("a"));
        assert_eq!(args.port, Some(8080));
    }

    #[test]
    fn printed_values_are_single_quoted_for_the_shell() {
        assert_eq!(
            super::sh_quote("http://127.0.0.1:1/"),
            "'http://127.0.0.1:1/'"
        );
        assert_eq!(super::sh_quote("a'b"), r"'a'\''b'");
    }
}
