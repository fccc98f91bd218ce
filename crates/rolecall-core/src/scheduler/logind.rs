//! Resume notifications from systemd-logind, on Linux.
//!
//! logind broadcasts `org.freedesktop.login1.Manager.PrepareForSleep(bool)` on the *system*
//! bus: `true` just before a suspend, `false` right after the resume. The scheduler's timer is
//! monotonic and does not advance while the machine sleeps, so without this a renewal that came
//! due during the suspend would wait out the time slept. A dedicated thread blocks in libdbus
//! (`Connection::process`), which wakes only when a message for it arrives: no polling. With no
//! system bus (containers, some servers) it logs at debug and ends; the scheduler's wall-clock
//! check on every wake still catches a suspend then, only later.
//!
//! Stopping: a thread blocked in `process` cannot be interrupted, so `resumes` sets a flag and
//! sends the thread's connection a unicast signal (the system bus lets anyone send signals),
//! then waits for it to end, bounded by [`JOIN_TIMEOUT`]. The thread's bus name is waited for
//! (it may still be connecting when the stop comes), and nothing blocking is left behind if
//! the thread does not end: a blocking task would hold up the runtime's shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dbus::blocking::Connection;
use dbus::message::MatchRule;
use tokio_util::sync::CancellationToken;

const LOGIND: &str = "org.freedesktop.login1";
const LOGIND_PATH: &str = "/org/freedesktop/login1";
const MANAGER: &str = "org.freedesktop.login1.Manager";
/// The interface of the signal that stops the listener thread.
const STOP_INTERFACE: &str = "org.rolecall.Scheduler";
const JOIN_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one `process` call may block; only bounds the wait in case a stop signal is lost.
const BLOCK: Duration = Duration::from_secs(7 * 24 * 3600);

/// Calls `on_resume` after every resume from suspend, until `stop`.
pub(super) async fn resumes(on_resume: impl Fn() + Send + 'static, stop: CancellationToken) {
    let stopping = Arc::new(AtomicBool::new(false));
    let (name_tx, name_rx) = std::sync::mpsc::channel::<String>();
    let flag = Arc::clone(&stopping);
    let thread = std::thread::Builder::new()
        .name("rolecall-logind".into())
        .spawn(move || listen(&on_resume, &flag, &name_tx));
    let thread = match thread {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the suspend/resume listener");
            return;
        }
    };
    stop.cancelled().await;
    stopping.store(true, Ordering::SeqCst);
    // the thread sends its bus name once it listens, and drops the sender when it ends (no
    // bus): either comes at once, unless connecting to the bus itself hangs
    let woken = tokio::task::spawn_blocking(move || {
        if let Ok(name) = name_rx.recv_timeout(JOIN_TIMEOUT) {
            wake(&name);
        }
    });
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT * 2;
    let _ = tokio::time::timeout_at(deadline, woken).await;
    while !thread.is_finished() {
        if tokio::time::Instant::now() >= deadline {
            tracing::debug!("the suspend/resume listener did not stop in time; leaving it");
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = thread.join();
}

fn listen(
    on_resume: &(impl Fn() + Send + 'static),
    stopping: &AtomicBool,
    name_tx: &std::sync::mpsc::Sender<String>,
) {
    let conn = match Connection::new_system() {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(
                error = %e,
                "no system bus: resume from suspend is noticed by the wall-clock check only"
            );
            return;
        }
    };
    let resumed = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&resumed);
    let rule = MatchRule::new_signal(MANAGER, "PrepareForSleep")
        .with_sender(LOGIND)
        .with_path(LOGIND_PATH);
    let matched = conn.add_match(rule, move |(sleeping,): (bool,), _, _| {
        if sleeping {
            tracing::debug!("the machine is going to sleep");
        } else {
            seen.store(true, Ordering::SeqCst);
        }
        true
    });
    if let Err(e) = matched {
        tracing::debug!(error = %e, "cannot listen for logind's PrepareForSleep");
        return;
    }
    let _ = name_tx.send(conn.unique_name().to_string());
    tracing::debug!("listening for resume from suspend (logind PrepareForSleep)");
    while !stopping.load(Ordering::SeqCst) {
        if let Err(e) = conn.process(BLOCK) {
            tracing::debug!(error = %e, "system bus connection lost; no more resume notices");
            return;
        }
        if resumed.swap(false, Ordering::SeqCst) {
            on_resume();
        }
    }
}

/// Sends the listener's connection a signal, so that its `process` returns.
fn wake(name: &str) {
    let send = || -> Result<(), String> {
        let conn = Connection::new_system().map_err(|e| e.to_string())?;
        let mut msg = dbus::Message::new_signal("/org/rolecall/Scheduler", STOP_INTERFACE, "Stop")?;
        msg.set_destination(Some(dbus::strings::BusName::new(name.to_string())?));
        use dbus::channel::Sender;
        conn.send(msg).map_err(|()| "send failed".to_string())?;
        conn.channel().flush();
        Ok(())
    };
    if let Err(e) = send() {
        tracing::debug!(error = %e, "cannot wake the suspend/resume listener");
    }
}
