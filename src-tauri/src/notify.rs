//! Native notifications (`notify-rust` over the session bus) for what only the user can fix: a
//! session that needs an MFA code, credentials about to expire that the engine cannot renew by
//! itself, a renewal that failed and needs the user. The engine sends each of these once per
//! episode or expiry, so this is one notification per profile (or source) per expiry, not a
//! stream. Every call runs on the blocking pool under [`TIMEOUT`]: a missing or hung
//! notification server never blocks the app.

use std::time::Duration;

use rolecall_core::events::Event;

/// The longest the app waits for the notification server.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The notification for `event`, if it is one the user must hear of: (summary, body).
pub fn text(event: &Event) -> Option<(String, String)> {
    match event {
        Event::MfaRequired { source, mfa_serial } => Some((
            "Rolecall needs an MFA code".into(),
            format!("Source {source} ({mfa_serial}): enter a code from the tray menu."),
        )),
        Event::ExpiringSoon {
            profile,
            expiration,
        } => Some((
            format!("{profile}: credentials expire soon"),
            format!(
                "They expire at {} and cannot be renewed without you.",
                humantime::format_rfc3339_seconds(*expiration)
            ),
        )),
        Event::RefreshFailed {
            profile,
            message,
            needs_user: true,
        } => Some((format!("{profile}: renewal failed"), message.clone())),
        _ => None,
    }
}

/// Shows the notification for `event`, if any, waiting at most [`TIMEOUT`].
pub async fn event(event: &Event) {
    let Some((summary, body)) = text(event) else {
        return;
    };
    let shown = tokio::task::spawn_blocking(move || {
        notify_rust::Notification::new()
            .appname("Rolecall")
            .summary(&summary)
            .body(&body)
            .show()
            .map(|_| ())
    });
    match tokio::time::timeout(TIMEOUT, shown).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::info!(error = %e, "no desktop notification shown"),
        Ok(Err(e)) => tracing::warn!(error = %e, "the notification task failed"),
        Err(_) => tracing::warn!(
            "the notification server did not answer within {} s",
            TIMEOUT.as_secs()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_needs_the_user_is_notified() {
        let mfa = Event::MfaRequired {
            source: "bastion".into(),
            mfa_serial: "arn:aws:iam::1:mfa/a".into(),
        };
        let (summary, body) = text(&mfa).expect("MFA is notified");
        assert_eq!(summary, "Rolecall needs an MFA code");
        assert!(body.contains("bastion"), "{body}");
        let retrying = Event::RefreshFailed {
            profile: "p".into(),
            message: "throttled; will retry".into(),
            needs_user: false,
        };
        assert_eq!(text(&retrying), None);
        assert_eq!(text(&Event::ActiveChanged { profile: None }), None);
    }
}
