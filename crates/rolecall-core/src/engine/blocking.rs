//! Blocking work, bounded: keychain calls on their own thread, file and config operations on
//! tokio's blocking pool under a timeout.
//!
//! Why a thread of its own for the keychain: a keychain call can hang for good (a Secret
//! Service that stopped answering, an unlock prompt nobody sees), and a timed-out call cannot
//! be cancelled: its thread stays blocked. On tokio's blocking pool (4 threads in the daemon)
//! a few such calls would take every thread, and then file reads and writes, which share that
//! pool, would wait forever: no renewal, and `status` hanging, also for profiles that never use
//! the keychain. So keychain calls run one at a time on one thread, behind a short queue; a
//! call waits at most its timeout; and once a call has been stuck for longer than that, the
//! next ones fail at once instead of queueing behind it. Nothing else ever waits on that thread.

use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::error::Error;

/// How long a keychain call may take.
pub(crate) const KEYCHAIN_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a read or write of the credentials or config file may take.
pub(crate) const FILE_TIMEOUT: Duration = Duration::from_secs(30);
/// Keychain calls that may wait behind the one running.
const QUEUE: usize = 4;

type Job = Box<dyn FnOnce() + Send>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The keychain's own thread (started on first use), see the module documentation.
pub(crate) struct KeychainThread {
    jobs: Mutex<Option<SyncSender<Job>>>,
    /// When the call running now started (`None`: idle).
    busy_since: Arc<Mutex<Option<Instant>>>,
    timeout: Duration,
}

impl KeychainThread {
    pub(crate) fn new(timeout: Duration) -> KeychainThread {
        KeychainThread {
            jobs: Mutex::new(None),
            busy_since: Arc::new(Mutex::new(None)),
            timeout,
        }
    }

    fn timed_out(&self) -> Error {
        Error::KeychainTimeout {
            secs: self.timeout.as_secs().max(1),
        }
    }

    /// Runs `f` on the keychain thread and waits at most the timeout for it.
    pub(crate) async fn call<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        if lock(&self.busy_since).is_some_and(|since| since.elapsed() >= self.timeout) {
            // the thread is stuck in a call that already timed out: don't queue behind it
            return Err(self.timed_out());
        }
        let (reply, answer) = oneshot::channel();
        let busy = Arc::clone(&self.busy_since);
        let mut job: Job = Box::new(move || {
            *lock(&busy) = Some(Instant::now());
            let r = f();
            *lock(&busy) = None;
            // the caller may have given up: nothing to tell then
            let _ = reply.send(r);
        });
        // twice at most: a thread that died (a panicking call) is replaced once
        for _ in 0..2 {
            let sender = self.sender()?;
            match sender.try_send(job) {
                Ok(()) => {
                    return match tokio::time::timeout(self.timeout, answer).await {
                        Ok(Ok(r)) => Ok(r),
                        Ok(Err(_)) => Err(Error::Internal("the keychain call failed".into())),
                        Err(_) => Err(self.timed_out()),
                    };
                }
                Err(TrySendError::Full(_)) => return Err(self.timed_out()),
                Err(TrySendError::Disconnected(j)) => {
                    *lock(&self.jobs) = None;
                    job = j;
                }
            }
        }
        Err(Error::Internal("cannot start the keychain thread".into()))
    }

    fn sender(&self) -> Result<SyncSender<Job>, Error> {
        let mut jobs = lock(&self.jobs);
        if let Some(s) = &*jobs {
            return Ok(s.clone());
        }
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(QUEUE);
        std::thread::Builder::new()
            .name("rolecall-keychain".into())
            // ends when the engine (the last sender) is gone
            .spawn(move || {
                for job in rx {
                    job();
                }
            })
            .map_err(|e| Error::Internal(format!("cannot start the keychain thread: {e}")))?;
        *jobs = Some(tx.clone());
        Ok(tx)
    }
}

/// Runs `f` (a file or config operation named `what`) on tokio's blocking pool and waits at most
/// [`FILE_TIMEOUT`] for it.
pub(crate) async fn bounded<T, F>(what: &str, f: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    match tokio::time::timeout(FILE_TIMEOUT, tokio::task::spawn_blocking(f)).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(Error::Internal(format!("{what} failed: {e}"))),
        Err(_) => Err(Error::FileTimeout {
            what: what.to_string(),
            secs: FILE_TIMEOUT.as_secs(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stuck_call_makes_the_next_ones_fail_at_once_and_never_takes_the_blocking_pool() {
        let thread = KeychainThread::new(Duration::from_millis(50));
        let (release, stuck) = std::sync::mpsc::channel::<()>();
        let first = thread.call(move || stuck.recv().is_ok()).await;
        assert!(
            matches!(first, Err(Error::KeychainTimeout { .. })),
            "{first:?}"
        );
        // stuck for longer than the timeout now: refused without waiting
        let next = thread.call(|| 1).await;
        assert!(
            matches!(next, Err(Error::KeychainTimeout { .. })),
            "{next:?}"
        );
        // the blocking pool is free meanwhile
        assert_eq!(bounded("a read", || 7).await.unwrap(), 7);
        // once the stuck call returns, the thread serves again
        release.send(()).unwrap();
        let mut got = thread.call(|| 2).await;
        while got.is_err() {
            tokio::task::yield_now().await;
            got = thread.call(|| 2).await;
        }
        assert_eq!(got.unwrap(), 2);
    }

    /// A keychain that never answers a read.
    struct Hanging;

    impl crate::vault::SecretStore for Hanging {
        fn get(
            &self,
            _: &str,
        ) -> Result<Option<crate::credentials::SecretString>, crate::vault::Error> {
            loop {
                std::thread::park();
            }
        }
        fn set(
            &self,
            _: &str,
            _: &crate::credentials::SecretString,
        ) -> Result<(), crate::vault::Error> {
            Ok(())
        }
        fn delete(&self, _: &str) -> Result<bool, crate::vault::Error> {
            Ok(false)
        }
    }

    const KEYCHAIN_AND_ENVIRONMENT: &str = r#"
[sources.kc]
[sources.env]
kind = "environment"
[profiles.k]
source = "kc"
role_arn = "arn:aws:iam::222222222222:role/K"
[profiles.e]
source = "env"
"#;

    /// Issue 13, item 3: keychain calls that never return, more of them than the daemon's
    /// blocking pool has threads, and still the environment profile is renewed every time and
    /// `status` answers.
    #[test]
    fn issue_13_a_stuck_keychain_stops_neither_other_profiles_nor_status() {
        use std::sync::Arc;

        use crate::credentials::{Credentials, SecretString};
        use crate::{Engine, Outcome, RefreshOptions, State, Targets};

        // the daemon's runtime (crates/rolecall-cli/src/main.rs)
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(4)
            .enable_all()
            .build()
            .unwrap();
        let checks = std::panic::AssertUnwindSafe(|| {
            rt.block_on(async {
                let sb = crate::testutil::Sandbox::new();
                sb.write_config(KEYCHAIN_AND_ENVIRONMENT);
                let config = crate::config::Config::load(&sb.path("rolecall/config.toml")).unwrap();
                let engine = Engine::builder(sb.paths())
                    .config(Arc::new(config))
                    .secret_store(Arc::new(Hanging))
                    .keychain_timeout(Duration::from_millis(200))
                    .build()
                    .await
                    .unwrap();
                let h = engine.handle();
                *h.inner.sources.test_environment.lock().unwrap() = Some(Credentials {
                    access_key_id: "ASIAENVIRONMENTEXAMPLE".into(),
                    secret_access_key: SecretString::from("secret"),
                    session_token: Some(SecretString::from("token")),
                    expiration: Some(std::time::SystemTime::now() + Duration::from_secs(3600)),
                });
                // a guard against a hang, not a timing check: each call takes well under a second
                let hang = Duration::from_secs(120);
                for pass in 0..8 {
                    let opts = RefreshOptions {
                        force: true,
                        mfa_code: None,
                    };
                    let outcomes = tokio::time::timeout(hang, h.refresh(&Targets::All, opts))
                        .await
                        .unwrap_or_else(|_| panic!("pass {pass} hangs"))
                        .unwrap();
                    for (name, o) in &outcomes {
                        match (name.as_str(), o) {
                            ("e", Outcome::Refreshed { .. }) => {}
                            ("k", Outcome::Failed(crate::Error::KeychainTimeout { .. })) => {}
                            other => panic!("pass {pass}: {other:?}"),
                        }
                    }
                }
                let status = tokio::time::timeout(hang, h.status())
                    .await
                    .expect("status hangs")
                    .unwrap();
                let e = status.iter().find(|s| s.profile == "e").unwrap();
                assert_eq!(e.state, State::Fresh);
            });
        });
        let result = std::panic::catch_unwind(checks);
        // the stuck keychain threads are left behind, as in the daemon (dropping the runtime
        // would wait for them)
        rt.shutdown_background();
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    }
}
