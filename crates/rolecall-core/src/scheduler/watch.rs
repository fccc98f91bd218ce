//! Watching the config file: a change reloads it ([`EngineHandle::reload`]).
//!
//! The watcher is `notify`'s recommended backend (inotify on Linux, FSEvents on macOS), which
//! blocks in the kernel on its own thread: no polling. It watches the file's *directory*, not
//! the file, because editors and Rolecall's own `ConfigEditor` replace the file (write a temp
//! file, rename it over), which a watch on the old inode would miss. Events come in bursts
//! (create, write, rename, chmod), so a reload waits until the directory has been quiet for
//! [`DEBOUNCE`]. Opening and reading the file are not changes: our own reload reads it, and
//! reacting to that would loop.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio_util::sync::CancellationToken;

use crate::engine::EngineHandle;

/// How long the directory must be quiet before the file is read again.
pub(super) const DEBOUNCE: Duration = Duration::from_millis(200);

/// Watches the config file until `stop`; returns at once (after a log line) when it cannot.
/// When its directory does not exist yet (a first run), the nearest directory above it that
/// does is watched instead, and the watch moves down as the directories are made, so a config
/// written after start is still seen. A watched directory that is deleted or renamed (and perhaps
/// made again: a new directory, which the kernel's watch does not follow) is watched anew at
/// the next look, the way up or down as above (issue 14: after `rm -rf ~/.config/rolecall` and a new
/// config there, later edits were never seen). The removal is told by its event, not by the
/// inode: a directory made again at once may get the same inode number.
pub(super) async fn config_file(handle: EngineHandle, stop: CancellationToken) {
    let path = handle.paths().config_file.clone();
    let (Some(dir), Some(name)) = (parent(&path), path.file_name().map(OsString::from)) else {
        tracing::info!(path = %path.display(), "not watching the config file: no directory");
        return;
    };
    // capacity 1: a pending look covers every change before it
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let target = dir.clone();
    // set when the config's directory, or one above it, is removed or renamed: the kernel's
    // watch went with it (a new directory there may even get the same inode number)
    let gone = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gone_seen = gone.clone();
    let on_event = move |res: notify::Result<notify::Event>| match res {
        Ok(ev)
            if is_change(&ev.kind)
                && ev.paths.iter().any(|p| {
                    p.file_name() == Some(&name)
                        // the config's directory, or one on the way to it, was made
                        || target.starts_with(p)
                }) =>
        {
            let moved = matches!(
                ev.kind,
                EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_))
            );
            if moved && ev.paths.iter().any(|p| target.starts_with(p)) {
                gone_seen.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            let _ = tx.try_send(());
        }
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "config watcher"),
    };
    let mut watcher = match notify::recommended_watcher(on_event) {
        Ok(w) => w,
        Err(e) => {
            tracing::info!(error = %e, "not watching the config file (SIGHUP still reloads it)");
            return;
        }
    };
    let Some(mut watched) = arm(&mut watcher, &dir, None, false) else {
        return;
    };

    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            r = rx.recv() => if r.is_none() { return },
        }
        // debounce: wait for the burst to end
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(DEBOUNCE) => break,
                r = rx.recv() => if r.is_none() { return },
            }
        }
        // the directory watched is gone (or another one now): its kernel watch went with it
        let replaced = gone.swap(false, std::sync::atomic::Ordering::SeqCst) || !watched.is_dir();
        if watched != dir || replaced {
            match arm(&mut watcher, &dir, Some(&watched), replaced) {
                Some(w) => watched = w,
                None => return,
            }
            if watched != dir || !path.exists() {
                continue;
            }
        }
        // an invalid file is logged and announced by reload itself
        let _ = handle.reload().await;
    }
}

/// Watches `dir`, or the nearest directory above it that exists, instead of `current`, even
/// when that is the same path if `anew` (its directory was removed, and the watch with it);
/// returns what is watched now (`None`: nothing can be).
fn arm(
    watcher: &mut impl Watcher,
    dir: &std::path::Path,
    current: Option<&std::path::Path>,
    anew: bool,
) -> Option<PathBuf> {
    let Some(nearest) = dir.ancestors().find(|a| a.is_dir()).map(PathBuf::from) else {
        tracing::info!(dir = %dir.display(), "not watching the config file: no directory");
        return None;
    };
    if current == Some(nearest.as_path()) && !anew {
        return Some(nearest);
    }
    // a watch the kernel dropped with its directory is unwatched too (an error then), so
    // that `notify` forgets it
    let _ = current.map(|old| watcher.unwatch(old));
    if let Err(e) = watcher.watch(&nearest, RecursiveMode::NonRecursive) {
        tracing::info!(
            dir = %nearest.display(),
            error = %e,
            "not watching the config file (SIGHUP still reloads it)"
        );
        return None;
    }
    tracing::debug!(dir = %nearest.display(), "watching for the config file");
    Some(nearest)
}

fn parent(path: &std::path::Path) -> Option<PathBuf> {
    let p = path.parent()?;
    Some(if p.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        p.to_path_buf()
    })
}

/// Whether an event may mean new content: not an open, a read or a metadata change.
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use notify::event::{CreateKind, DataChange, MetadataKind, RenameMode};

    use super::*;

    #[test]
    fn reads_and_opens_are_not_changes_but_writes_and_renames_are() {
        assert!(!is_change(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(!is_change(&EventKind::Modify(ModifyKind::Metadata(
            MetadataKind::Any
        ))));
        assert!(is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(is_change(&EventKind::Modify(ModifyKind::Data(
            DataChange::Any
        ))));
        assert!(is_change(&EventKind::Modify(ModifyKind::Name(
            RenameMode::Both
        ))));
        assert!(is_change(&EventKind::Create(CreateKind::File)));
    }
}
