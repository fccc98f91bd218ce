//! `rolecall export PROFILE` and `rolecall credential-process PROFILE`.

use rolecall_core::RefreshOptions;
use rolecall_core::config::Paths;
use rolecall_core::credentials::{Credentials, ExposeSecret};

use crate::cli::{ExportArgs, ExportFormat, ProfileArg};
use crate::cmd::{engine, rfc3339};

/// The environment variables that carry a profile's credentials, in a stable order.
pub fn variables(creds: &Credentials, region: Option<&str>) -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("AWS_ACCESS_KEY_ID", creds.access_key_id.clone()),
        (
            "AWS_SECRET_ACCESS_KEY",
            creds.secret_access_key.expose_secret().to_string(),
        ),
    ];
    if let Some(t) = &creds.session_token {
        v.push(("AWS_SESSION_TOKEN", t.expose_secret().to_string()));
    }
    if let Some(e) = creds.expiration {
        v.push(("AWS_CREDENTIAL_EXPIRATION", rfc3339(e)));
    }
    if let Some(r) = region {
        v.push(("AWS_REGION", r.to_string()));
        v.push(("AWS_DEFAULT_REGION", r.to_string()));
    }
    v
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn ps_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

pub async fn run(paths: Paths, args: ExportArgs) -> anyhow::Result<u8> {
    let engine = engine(paths).await?;
    let opts = RefreshOptions {
        force: false,
        mfa_code: args.mfa_code,
    };
    let (creds, region) = engine.credentials(&args.profile, opts).await?;
    let vars = variables(&creds, region.as_deref());
    let mut out = String::new();
    match args.format {
        ExportFormat::Sh => {
            out.push_str("unset AWS_PROFILE\n");
            for (k, v) in &vars {
                out.push_str(&format!("export {k}={}\n", sh_quote(v)));
            }
        }
        ExportFormat::Fish => {
            out.push_str("set -e AWS_PROFILE\n");
            for (k, v) in &vars {
                out.push_str(&format!("set -gx {k} {}\n", sh_quote(v)));
            }
        }
        ExportFormat::Powershell => {
            out.push_str("Remove-Item Env:AWS_PROFILE -ErrorAction SilentlyContinue\n");
            for (k, v) in &vars {
                out.push_str(&format!("$Env:{k} = {}\n", ps_quote(v)));
            }
        }
        ExportFormat::Json => {
            let map: serde_json::Map<String, serde_json::Value> = vars
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.into()))
                .collect();
            out = serde_json::to_string_pretty(&map)? + "\n";
        }
    }
    print!("{out}");
    Ok(crate::exit::OK)
}

pub async fn credential_process(paths: Paths, args: ProfileArg) -> anyhow::Result<u8> {
    let engine = engine(paths).await?;
    let (creds, _) = engine
        .credentials(&args.profile, RefreshOptions::default())
        .await?;
    let mut doc = serde_json::json!({
        "Version": 1,
        "AccessKeyId": creds.access_key_id,
        "SecretAccessKey": creds.secret_access_key.expose_secret(),
    });
    if let Some(t) = &creds.session_token {
        doc["SessionToken"] = t.expose_secret().into();
    }
    if let Some(e) = creds.expiration {
        doc["Expiration"] = rfc3339(e).into();
    }
    println!("{doc}");
    Ok(crate::exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting_survives_quotes() {
        assert_eq!(sh_quote("a'b"), r"'a'\''b'");
        assert_eq!(ps_quote("a'b"), "'a''b'");
    }
}
