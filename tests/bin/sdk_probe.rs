//! `rolecall-sdk-probe ecs|imds KEYS`: a small long-running Rust program using `aws-config`, as
//! a user's would, for the endpoint tests. It builds one credentials provider (the container
//! provider from `AWS_CONTAINER_CREDENTIALS_FULL_URI`/`AWS_CONTAINER_AUTHORIZATION_TOKEN`, or
//! the IMDS provider from `AWS_EC2_METADATA_SERVICE_ENDPOINT`, or with `profile` the shared
//! files' profile `AWS_PROFILE`) and one STS client over it, then
//! loops: asks the provider, calls GetCallerIdentity, prints `KEY ARN`, until it has seen KEYS
//! different access keys (exit 0). Any error ends it with exit 1 after printing it; 120 s
//! without enough keys, exit 2.
// test code: an unwrap is an assertion (clippy's allow-unwrap-in-tests does not reach helpers)
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_config::identity::IdentityCache;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(kind), Some(Ok(want))) = (args.get(1), args.get(2).map(|n| n.parse::<usize>()))
    else {
        eprintln!("usage: rolecall-sdk-probe ecs|imds|profile KEYS");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(run(kind, want))
}

async fn run(kind: &str, want: usize) -> ExitCode {
    let provider = match kind {
        "ecs" => SharedCredentialsProvider::new(
            aws_config::ecs::EcsCredentialsProvider::builder().build(),
        ),
        "imds" => SharedCredentialsProvider::new(
            aws_config::imds::credentials::ImdsCredentialsProvider::builder().build(),
        ),
        // the shared files' profile named by AWS_PROFILE (issue 17: managed sections with
        // provenance keys still read)
        "profile" => SharedCredentialsProvider::new(
            aws_config::profile::ProfileFileCredentialsProvider::builder().build(),
        ),
        other => {
            eprintln!("unknown provider {other}");
            return ExitCode::from(2);
        }
    };
    // no cache: every call asks the provider, as a cache does once its credentials near expiry
    let config = aws_config::defaults(BehaviorVersion::latest())
        .credentials_provider(provider.clone())
        .identity_cache(IdentityCache::no_cache())
        .load()
        .await;
    let sts = aws_sdk_sts::Client::new(&config);
    let mut keys = BTreeSet::new();
    let start = Instant::now();
    while keys.len() < want {
        if start.elapsed() > Duration::from_secs(120) {
            eprintln!("only {} keys in 120 s", keys.len());
            return ExitCode::from(2);
        }
        let creds = match provider.provide_credentials().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!(
                    "credentials: {}",
                    aws_smithy_types::error::display::DisplayErrorContext(&e)
                );
                return ExitCode::from(1);
            }
        };
        let arn = match sts.get_caller_identity().send().await {
            Ok(out) => out.arn.unwrap_or_default(),
            Err(e) => {
                eprintln!(
                    "GetCallerIdentity: {}",
                    aws_smithy_types::error::display::DisplayErrorContext(&e)
                );
                return ExitCode::from(1);
            }
        };
        println!("{} {arn}", creds.access_key_id());
        keys.insert(creds.access_key_id().to_string());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    ExitCode::SUCCESS
}
