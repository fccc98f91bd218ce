//! Locked atomic writing: the file at one path, read and written under an advisory lock
//! through a temp file and a rename.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use zeroize::{Zeroize, Zeroizing};

use super::{Block, Edit, Error, IoOp, ProfileSection, splice_as};

/// The shared credentials file at one path, read and written safely.
#[derive(Debug, Clone)]
pub struct CredentialsFile {
    path: PathBuf,
    /// Where the lock file goes: `None` beside the real file (`.<name>.rolecall.lock`), else
    /// this directory (the runtime dir), named by the real file's path.
    lock_dir: Option<PathBuf>,
}

impl CredentialsFile {
    /// The file at `path` (usually `~/.aws/credentials` or `AWS_SHARED_CREDENTIALS_FILE`,
    /// from `config::Paths`). Nothing is touched until [`read`](Self::read) or
    /// [`apply`](Self::apply).
    pub fn new(path: PathBuf) -> Self {
        CredentialsFile {
            path,
            lock_dir: None,
        }
    }

    /// Keeps the lock file in `dir` (the runtime dir, `config::Paths::runtime_dir`) instead of
    /// beside the file, so that nothing is left in `~/.aws` or a dotfiles folder. It is named
    /// by the real file's path (symlinks followed): every rolecall of this user that writes
    /// that file, by whatever path, locks the same one. It is never deleted (see `Lock`).
    pub fn with_lock_dir(mut self, dir: PathBuf) -> Self {
        self.lock_dir = Some(dir);
        self
    }

    /// The path given to [`new`](Self::new).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's text; empty when it does not exist. Wiped from memory when dropped, as it
    /// holds secrets.
    pub fn read(&self) -> Result<Zeroizing<String>, Error> {
        read_text(&self.path)
    }

    /// Applies `edits` under an advisory lock: read, [`splice`], and if the text changed, write
    /// it atomically (temp file, fsync, rename, fsync of the directory). Returns whether the
    /// file changed; nothing is written when it did not. A symlink is followed and left in
    /// place. A new file is created with mode 0600 (its directory 0700); an existing one keeps
    /// its mode and its owner. Blocks while another rolecall holds the lock, or while another
    /// program is rewriting the file (see [`Error::Busy`]), so call it off the async runtime.
    ///
    /// Other programs do not take our lock: the AWS CLI rewrites the file in place
    /// (`open(path, "w")`: empty it, then write), so a read can land in the middle of that.
    /// Writing from such a read would replace the user's file with whatever part of it was
    /// there. So a read is only used when the file is not changing: its metadata (inode, size,
    /// times) is the same before and after the read and again right before the rename, its
    /// text is the same when read again right before the rename, and a file that someone
    /// other than rolecall changed less than 50 ms ago must first stay unchanged for 50 ms.
    /// Otherwise the attempt starts over, for up to 5 s ([`Error::Busy`]). A file with
    /// several hard links ([`Error::HardLinked`]) or bind-mounted ([`Error::MountPoint`]) is
    /// refused; one that belongs to another user is refused unless running as root
    /// ([`Error::ForeignOwner`]).
    ///
    /// The same writer serves the config file: see [`apply_config`](Self::apply_config).
    pub fn apply(&self, edits: &[Edit]) -> Result<bool, Error> {
        self.apply_as(edits, None)
    }

    /// [`apply`](Self::apply) for the AWS config file (`~/.aws/config`, `AWS_CONFIG_FILE`,
    /// given to [`new`](Self::new)): its `[profile NAME]` and `[default]` sections, with the
    /// same lock, atomic write, torn-read checks, ownership and refusals.
    pub fn apply_config(&self, edits: &[Edit<ProfileSection>]) -> Result<bool, Error> {
        self.apply_as(edits, None)
    }

    /// [`apply_config`](Self::apply_config) that, when the file changes, first keeps the text
    /// it replaces at `backup` (replacing a file of that name; with the file's mode and
    /// owner, written atomically before the file itself is replaced). `rolecall import`
    /// keeps the user's `~/.aws/config` this way before it comments out role keys.
    pub fn apply_config_with_backup(
        &self,
        edits: &[Edit<ProfileSection>],
        backup: &Path,
    ) -> Result<bool, Error> {
        self.apply_as(edits, Some(backup))
    }

    fn apply_as<B: Block>(&self, edits: &[Edit<B>], backup: Option<&Path>) -> Result<bool, Error> {
        let target = resolve_symlinks(&self.path)?;
        let only_removes = edits.iter().all(|e| !matches!(e, Edit::Upsert { .. }));
        if only_removes && !target.exists() {
            return Ok(false);
        }
        let file_name = target
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::Io {
                op: IoOp::Read,
                path: target.clone(),
                source: io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"),
            })?;
        let dir = match target.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        create_dir(&dir)?;

        let lock_path = match &self.lock_dir {
            Some(lock_dir) => {
                create_dir(lock_dir)?;
                lock_dir.join(lock_name(&dir, file_name))
            }
            None => dir.join(format!(".{file_name}.rolecall.lock")),
        };
        let mut lock = Lock::acquire(&lock_path)?;
        owner::match_lock(&lock.file, &target, &dir);
        let temp_prefix = format!(".{file_name}.rolecall.");
        remove_stale_temp_files(&dir, &temp_prefix);
        let io = Target {
            dir: &dir,
            path: &target,
            temp_prefix: &temp_prefix,
            named: &self.path,
            backup,
        };
        let started = Instant::now();
        let mut retry_delay = Duration::from_millis(2);
        loop {
            match io.attempt(edits, &mut lock)? {
                Some(changed) => return Ok(changed),
                None if started.elapsed() >= BUSY_LIMIT => {
                    return Err(Error::Busy { path: target });
                }
                None => {
                    std::thread::sleep(retry_delay);
                    retry_delay = (retry_delay * 2).min(SETTLE);
                }
            }
        }
    }
}

/// How long a file that another program changed must then stay unchanged before a read of it
/// is trusted. The AWS CLI empties and rewrites the file within microseconds; this leaves room
/// for it being descheduled in between on a busy machine.
pub(super) const SETTLE: Duration = Duration::from_millis(50);
/// How long [`CredentialsFile::apply`] waits for a file that keeps changing.
pub(super) const BUSY_LIMIT: Duration = Duration::from_secs(5);

/// The real file one [`CredentialsFile::apply`] works on.
struct Target<'a> {
    dir: &'a Path,
    path: &'a Path,
    temp_prefix: &'a str,
    /// The path the caller gave, for errors about the text.
    named: &'a Path,
    /// Where to keep the text a change replaces, if anywhere.
    backup: Option<&'a Path>,
}

impl Target<'_> {
    fn stamp(&self) -> Result<Option<Stamp>, Error> {
        match fs::metadata(self.path) {
            Ok(meta) => Ok(Some(Stamp::of(&meta))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io {
                op: IoOp::Read,
                path: self.path.to_owned(),
                source,
            }),
        }
    }

    /// One read-splice-write. `Some(changed)` when done, `None` when the file changed under
    /// it (nothing was written; try again).
    fn attempt<B: Block>(&self, edits: &[Edit<B>], lock: &mut Lock) -> Result<Option<bool>, Error> {
        let before = self.stamp()?;
        if let Some(stamp) = &before
            && stamp.links > 1
        {
            return Err(Error::HardLinked {
                path: self.path.to_owned(),
                links: stamp.links,
            });
        }
        let old = read_text(self.path)?;
        if self.stamp()? != before {
            return Ok(None);
        }
        if let Some(stamp) = before {
            // Exactly what rolecall last wrote (same inode, times and size, and the same text:
            // a file emptied in the same clock tick keeps its times), or changed by someone
            // else long enough ago: trusted. Else someone may still be writing it (the AWS CLI
            // empties the file, then writes): wait, then insist nothing changed meanwhile.
            let ours = lock.last_written() == Some(Written::new(stamp, &old));
            if !ours && stamp.is_recent() {
                std::thread::sleep(SETTLE);
                if self.stamp()? != before || *read_text(self.path)? != *old {
                    return Ok(None);
                }
            }
        }
        let new = splice_as(&old, edits, self.named)?;
        if *new == *old {
            return Ok(Some(false));
        }
        let existing = match &before {
            Some(_) => Some(fs::metadata(self.path).map_err(|source| Error::Io {
                op: IoOp::Read,
                path: self.path.to_owned(),
                source,
            })?),
            None => None,
        };
        if existing
            .as_ref()
            .is_some_and(|m| m.permissions().readonly())
        {
            return Err(Error::ReadOnly {
                path: self.path.to_owned(),
            });
        }
        let temp = self.write_temp(new.as_bytes(), existing.as_ref())?;
        if let Some(backup) = self.backup {
            self.write_backup(&old, existing.as_ref(), backup)?;
        }
        // The last look before the rename: the same file, and the same text.
        if self.stamp()? != before || *read_text(self.path)? != *old {
            return Ok(None);
        }
        let written = persist(temp, self.path).map_err(|source| {
            if is_busy(&source) {
                Error::MountPoint {
                    path: self.path.to_owned(),
                }
            } else {
                Error::Io {
                    op: IoOp::Rename,
                    path: self.path.to_owned(),
                    source,
                }
            }
        })?;
        sync_dir(self.dir);
        // Recorded only when it describes the whole new file (not one that a tool emptied
        // right after the rename); the text's digest guards the rest.
        match written.metadata() {
            Ok(meta) if meta.len() == new.len() as u64 => {
                lock.record(Some(Written::new(Stamp::of(&meta), &new)));
            }
            _ => lock.record(None),
        }
        tracing::debug!(path = %self.path.display(), "credentials file updated");
        Ok(Some(true))
    }

    /// Puts `old` at `backup`, atomically (a synced temp file beside it, renamed), with the
    /// target's mode and owner.
    fn write_backup(
        &self,
        old: &str,
        existing: Option<&fs::Metadata>,
        backup: &Path,
    ) -> Result<(), Error> {
        let io_error = |op| {
            move |source| Error::Io {
                op,
                path: backup.to_owned(),
                source,
            }
        };
        let dir = match backup.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let mut temp = tempfile::Builder::new()
            .prefix(self.temp_prefix)
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(io_error(IoOp::Write))?;
        temp.write_all(old.as_bytes())
            .map_err(io_error(IoOp::Write))?;
        set_permissions(temp.as_file(), existing).map_err(io_error(IoOp::Write))?;
        owner::keep(temp.as_file(), self.path, dir, existing)?;
        temp.as_file().sync_all().map_err(io_error(IoOp::Sync))?;
        persist(temp, backup).map_err(io_error(IoOp::Rename))?;
        sync_dir(dir);
        Ok(())
    }

    /// The new content in a synced temp file beside the target, with the target's mode and
    /// owner (a new file: mode 0600, the owner of its directory).
    fn write_temp(
        &self,
        bytes: &[u8],
        existing: Option<&fs::Metadata>,
    ) -> Result<tempfile::NamedTempFile, Error> {
        let io_error = |op| {
            move |source| Error::Io {
                op,
                path: self.path.to_owned(),
                source,
            }
        };
        let mut temp = tempfile::Builder::new()
            .prefix(self.temp_prefix)
            .suffix(".tmp")
            .tempfile_in(self.dir)
            .map_err(io_error(IoOp::Write))?;
        temp.write_all(bytes).map_err(io_error(IoOp::Write))?;
        set_permissions(temp.as_file(), existing).map_err(io_error(IoOp::Write))?;
        owner::keep(temp.as_file(), self.path, self.dir, existing)?;
        temp.as_file().sync_all().map_err(io_error(IoOp::Sync))?;
        Ok(temp)
    }
}

/// What tells one version of the file from another without reading it: which inode, its
/// size and its modification and change times. `aws configure set` empties and rewrites the
/// file in place (same inode), which moves its times and usually its size; rolecall replaces
/// it (a new inode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    modified: Option<SystemTime>,
    /// The inode change time in nanoseconds (unix), which no program can set back.
    changed: i128,
    links: u64,
}

impl Stamp {
    #[cfg(unix)]
    fn of(meta: &fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            modified: meta.modified().ok(),
            changed: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
            links: meta.nlink(),
        }
    }

    #[cfg(not(unix))]
    fn of(meta: &fs::Metadata) -> Stamp {
        Stamp {
            dev: 0,
            ino: 0,
            len: meta.len(),
            modified: meta.modified().ok(),
            changed: 0,
            links: 1,
        }
    }

    /// Changed less than [`SETTLE`] ago, or at a time in the future (a clock we cannot trust).
    fn is_recent(&self) -> bool {
        let now = SystemTime::now();
        let change = UNIX_EPOCH
            + Duration::from_nanos(u64::try_from(self.changed.max(0)).unwrap_or(u64::MAX));
        [self.modified, (self.changed > 0).then_some(change)]
            .into_iter()
            .flatten()
            .any(|t| now.duration_since(t).map_or(true, |age| age < SETTLE))
    }
}

/// The file as rolecall last wrote it: its [`Stamp`] and a digest of its text (SHA-256, first
/// 64 bits). Kept in the lock file, which is not secret: like a section's fingerprint (see
/// `scan::fingerprint`), 64 bits of a hash over text holding secrets of 240 bits and more
/// cannot tell which secret it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Written {
    stamp: Stamp,
    digest: u64,
}

impl Written {
    fn new(stamp: Stamp, text: &str) -> Written {
        use sha2::{Digest, Sha256};
        let hash = Sha256::new()
            .chain_update(b"rolecall credentials-file digest v1\n")
            .chain_update(text.as_bytes())
            .finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&hash[..8]);
        Written {
            stamp,
            digest: u64::from_be_bytes(first),
        }
    }

    /// The line kept in the lock file.
    fn to_line(self) -> String {
        let s = self.stamp;
        let modified = s
            .modified
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(-1, |d| i128::try_from(d.as_nanos()).unwrap_or(-1));
        format!(
            "v1 {} {} {} {} {} {} {}\n",
            s.dev, s.ino, s.len, modified, s.changed, s.links, self.digest
        )
    }

    fn from_line(line: &str) -> Option<Written> {
        let mut parts = line.trim().split(' ');
        if parts.next()? != "v1" {
            return None;
        }
        let mut next = || parts.next()?.parse::<i128>().ok();
        let (dev, ino, len, modified, changed, links, digest) = (
            next()?,
            next()?,
            next()?,
            next()?,
            next()?,
            next()?,
            next()?,
        );
        let modified = u64::try_from(modified)
            .ok()
            .map(|ns| UNIX_EPOCH + Duration::from_nanos(ns));
        Some(Written {
            stamp: Stamp {
                dev: u64::try_from(dev).ok()?,
                ino: u64::try_from(ino).ok()?,
                len: u64::try_from(len).ok()?,
                modified,
                changed,
                links: u64::try_from(links).ok()?,
            },
            digest: u64::try_from(digest).ok()?,
        })
    }
}

/// The name of the lock file in the runtime dir for the real file `file_name` in `dir` (which
/// exists): its file name (for people reading the directory) and 64 bits of SHA-256 of its
/// full path with the directory's symlinks resolved, so that every process names it alike
/// whatever path it was given, and files of the same name in other directories differ.
fn lock_name(dir: &Path, file_name: &str) -> String {
    use sha2::{Digest, Sha256};
    let full = fs::canonicalize(dir)
        .or_else(|_| std::path::absolute(dir))
        .unwrap_or_else(|_| dir.to_owned())
        .join(file_name);
    let hash = Sha256::new()
        .chain_update(b"rolecall lock file v1\n")
        .chain_update(full.as_os_str().as_encoded_bytes())
        .finalize();
    let tag: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{file_name}.{tag}.lock")
}

/// EBUSY from a rename: the target is a mount point (a bind-mounted file).
fn is_busy(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::ResourceBusy
}

fn read_text(path: &Path) -> Result<Zeroizing<String>, Error> {
    match fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes).map(Zeroizing::new).map_err(|e| {
            e.into_bytes().zeroize();
            Error::NotUtf8 {
                path: path.to_owned(),
            }
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Zeroizing::new(String::new())),
        Err(source) => Err(Error::Io {
            op: IoOp::Read,
            path: path.to_owned(),
            source,
        }),
    }
}

/// The file the path finally names. Dotfile managers make `~/.aws/credentials` a symlink;
/// writing through a rename onto the link would replace the link with a plain file, so the
/// rename must target the real file (and the temp file live in its directory). The same
/// resolution as the config editor's (one implementation: [`crate::config::resolve_symlinks`]).
fn resolve_symlinks(path: &Path) -> Result<PathBuf, Error> {
    crate::config::resolve_symlinks(path).map_err(|source| Error::Io {
        op: IoOp::Read,
        path: path.to_owned(),
        source,
    })
}

/// Creates the directory and any missing parents (mode 0700). Each one it creates gets the
/// owner of the directory above it when rolecall runs as root (`sudo -E rolecall …` must not
/// leave a root-owned `~/.aws` behind).
fn create_dir(dir: &Path) -> Result<(), Error> {
    let mut missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && fs::symlink_metadata(d).is_err())
        .collect();
    missing.reverse();
    create_dirs(dir)?;
    for created in missing {
        owner::inherit_dir(created);
    }
    Ok(())
}

fn create_dirs(dir: &Path) -> Result<(), Error> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|source| Error::Io {
        op: IoOp::CreateDir,
        path: dir.to_owned(),
        source,
    })
}

/// An exclusive advisory lock on the sidecar lock file, released on drop. The lock file is
/// never deleted: deleting it would let two writers lock two different inodes. It also holds
/// the [`Stamp`] of the file as rolecall last wrote it (not a secret), so a file nobody else
/// touched since is trusted at once.
struct Lock {
    file: File,
    last: Option<Written>,
}

impl Lock {
    fn acquire(path: &Path) -> Result<Lock, Error> {
        let lock_error = |source| Error::Io {
            op: IoOp::Lock,
            path: path.to_owned(),
            source,
        };
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(lock_error)?;
        file.lock().map_err(lock_error)?;
        let mut line = String::new();
        // An unreadable record only costs a wait.
        let last = match (&mut file).take(256).read_to_string(&mut line) {
            Ok(_) => Written::from_line(&line),
            Err(_) => None,
        };
        Ok(Lock { file, last })
    }

    fn last_written(&self) -> Option<Written> {
        self.last
    }

    fn record(&mut self, written: Option<Written>) {
        self.last = written;
        let line = written.map(Written::to_line).unwrap_or_default();
        let result = self
            .file
            .set_len(0)
            .and_then(|()| self.file.seek(SeekFrom::Start(0)))
            .and_then(|_| self.file.write_all(line.as_bytes()));
        if let Err(e) = result {
            tracing::debug!(error = %e, "could not record the written file in the lock file");
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlocking first just makes it prompt.
        let _ = self.file.unlock();
    }
}

/// Deletes temp files a killed writer left behind. Only called under the lock, when no other
/// writer can be midway.
fn remove_stale_temp_files(dir: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(prefix) && name.ends_with(".tmp") {
            match fs::remove_file(entry.path()) {
                Ok(()) => tracing::debug!(file = name, "removed a stale temp file"),
                Err(e) => {
                    tracing::warn!(file = name, error = %e, "could not remove a stale temp file");
                }
            }
        }
    }
}

/// Renames the temp file over the target. On Windows a rename onto a file that another
/// program has open without delete sharing (Python's `open`, so the AWS CLI reading its
/// credentials) fails with "access denied" until that program closes it: retried for up to
/// about 2.5 s. Elsewhere the rename is atomic whatever else has the file open.
fn persist(temp: tempfile::NamedTempFile, target: &Path) -> io::Result<File> {
    const RETRIES: u32 = 8;
    let mut temp = temp;
    let mut delay = std::time::Duration::from_millis(10);
    let mut attempt = 0;
    loop {
        match temp.persist(target) {
            Ok(file) => return Ok(file),
            Err(e)
                if cfg!(windows)
                    && e.error.kind() == io::ErrorKind::PermissionDenied
                    && attempt < RETRIES =>
            {
                temp = e.file;
                attempt += 1;
                std::thread::sleep(delay);
                delay *= 2;
            }
            Err(e) => return Err(e.error),
        }
    }
}

/// An existing file keeps its permission bits; a new one is private (0600), since it holds
/// secrets.
#[cfg(unix)]
fn set_permissions(file: &File, existing: Option<&fs::Metadata>) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = existing.map_or(0o600, |m| m.permissions().mode() & 0o7777);
    file.set_permissions(fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_permissions(_file: &File, _existing: Option<&fs::Metadata>) -> io::Result<()> {
    Ok(())
}

/// Makes the rename durable: without an fsync of the directory, a crash can bring back the old
/// file (or none). The new content is already in place, so a failure is only logged.
#[cfg(unix)]
fn sync_dir(dir: &Path) {
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!(dir = %dir.display(), error = %e, "could not fsync the credentials directory");
    }
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) {}

/// Ownership: a write must not hand the user's file to another user. Running as root
/// (`sudo -E rolecall …`), a rename would otherwise leave the credentials file, its lock and a
/// new `~/.aws` owned by root, and the user's own tools could no longer read them.
#[cfg(unix)]
mod owner {
    use std::fs::{self, File};
    use std::os::unix::fs::{MetadataExt, chown, fchown};
    use std::path::Path;

    use super::Error;

    /// Gives the temp file the owner it must have: that of the file it replaces, else (for a
    /// new file, when running as root) that of its directory. An existing file whose owner
    /// cannot be kept (another user's file, not running as root) is refused.
    pub(super) fn keep(
        temp: &File,
        target: &Path,
        dir: &Path,
        existing: Option<&fs::Metadata>,
    ) -> Result<(), Error> {
        let io_error = |source| Error::Io {
            op: super::IoOp::Write,
            path: target.to_owned(),
            source,
        };
        let mine = temp.metadata().map_err(io_error)?;
        let mine = (mine.uid(), mine.gid());
        match existing {
            Some(meta) => {
                let want = (meta.uid(), meta.gid());
                if want != mine {
                    fchown(temp, Some(want.0), Some(want.1)).map_err(|source| {
                        Error::ForeignOwner {
                            path: target.to_owned(),
                            uid: want.0,
                            source,
                        }
                    })?;
                }
            }
            None if mine.0 == 0 => {
                let parent = fs::metadata(dir).map_err(io_error)?;
                let want = (parent.uid(), parent.gid());
                if want != mine {
                    fchown(temp, Some(want.0), Some(want.1)).map_err(io_error)?;
                }
            }
            None => {}
        }
        Ok(())
    }

    /// The lock file gets the owner of the credentials file (else of its directory). Best
    /// effort: a lock file with the wrong owner only matters to a later run as that user.
    pub(super) fn match_lock(lock: &File, target: &Path, dir: &Path) {
        let (Ok(lock_meta), Ok(want)) = (
            lock.metadata(),
            fs::metadata(target).or_else(|_| fs::metadata(dir)),
        ) else {
            return;
        };
        if (lock_meta.uid(), lock_meta.gid()) != (want.uid(), want.gid())
            && let Err(e) = fchown(lock, Some(want.uid()), Some(want.gid()))
        {
            tracing::debug!(error = %e, "could not give the lock file the credentials file's owner");
        }
    }

    /// A directory rolecall just created gets the owner of its parent when rolecall runs as
    /// root (the new directory is then owned by root). Best effort, logged.
    pub(super) fn inherit_dir(created: &Path) {
        let (Ok(meta), Some(Ok(parent))) =
            (fs::metadata(created), created.parent().map(fs::metadata))
        else {
            return;
        };
        if meta.uid() == 0
            && (meta.uid(), meta.gid()) != (parent.uid(), parent.gid())
            && let Err(e) = chown(created, Some(parent.uid()), Some(parent.gid()))
        {
            tracing::warn!(dir = %created.display(), error = %e, "could not give a new directory its parent's owner");
        }
    }
}

#[cfg(not(unix))]
mod owner {
    use std::fs::{self, File};
    use std::path::Path;

    use super::Error;

    pub(super) fn keep(
        _temp: &File,
        _target: &Path,
        _dir: &Path,
        _existing: Option<&fs::Metadata>,
    ) -> Result<(), Error> {
        Ok(())
    }

    pub(super) fn match_lock(_lock: &File, _target: &Path, _dir: &Path) {}

    pub(super) fn inherit_dir(_created: &Path) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credfile::managed_credentials;
    use crate::credfile::testutil::*;

    fn file_in(dir: &tempfile::TempDir) -> CredentialsFile {
        CredentialsFile::new(dir.path().join("credentials"))
    }

    fn temp_files(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    /// Issue 14: with a lock dir, nothing but the file itself is left beside it (nor beside a
    /// symlink's target), and every path to one real file locks the same lock file.
    #[cfg(unix)]
    #[test]
    fn issue_14_the_lock_file_lives_in_the_lock_dir_named_by_the_real_file() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = dir.path().join("run/rolecall");
        let dotfiles = dir.path().join("dotfiles");
        fs::create_dir_all(&dotfiles).unwrap();
        fs::write(dotfiles.join("credentials"), "[default]\n").unwrap();
        fs::create_dir_all(dir.path().join(".aws")).unwrap();
        let link = dir.path().join(".aws/credentials");
        std::os::unix::fs::symlink("../dotfiles/credentials", &link).unwrap();
        let via_link = CredentialsFile::new(link).with_lock_dir(runtime.clone());
        let direct =
            CredentialsFile::new(dotfiles.join("credentials")).with_lock_dir(runtime.clone());
        assert!(via_link.apply(&[upsert("dev", "A")]).unwrap());
        assert!(direct.apply(&[upsert("other", "B")]).unwrap());
        let names = |d: &Path| -> Vec<String> {
            let mut v: Vec<String> = fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(&dotfiles), ["credentials"]);
        assert_eq!(names(&dir.path().join(".aws")), ["credentials"]);
        let locks = names(&runtime);
        assert_eq!(locks.len(), 1, "{locks:?}");
        assert!(
            locks[0].starts_with("credentials.") && locks[0].ends_with(".lock"),
            "{locks:?}"
        );
        // another file of the same name gets its own lock
        let elsewhere =
            CredentialsFile::new(dir.path().join("credentials")).with_lock_dir(runtime.clone());
        assert!(elsewhere.apply(&[upsert("dev", "A")]).unwrap());
        assert_eq!(names(&runtime).len(), 2);
    }

    #[test]
    fn read_of_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(*file_in(&dir).read().unwrap(), "");
    }

    #[test]
    fn read_of_non_utf8_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = file_in(&dir);
        fs::write(file.path(), b"[x]\nregion = \xff\n").unwrap();
        assert!(matches!(file.read(), Err(Error::NotUtf8 { .. })));
        assert!(matches!(
            file.apply(&[upsert("dev", "A")]),
            Err(Error::NotUtf8 { .. })
        ));
        assert_eq!(fs::read(file.path()).unwrap(), b"[x]\nregion = \xff\n");
    }

    #[test]
    fn apply_writes_and_reports_change() {
        let dir = tempfile::tempdir().unwrap();
        let file = file_in(&dir);
        fs::write(file.path(), "# mine\r\n[default]\r\nregion = x").unwrap();
        assert!(file.apply(&[upsert("dev", "A")]).unwrap());
        assert_eq!(
            *file.read().unwrap(),
            expand("<dev:A:crlf>\r\n# mine\r\n[default]\r\nregion = x")
        );
        assert!(temp_files(dir.path()).is_empty());
        assert!(file.apply(&[remove("dev")]).unwrap());
        assert_eq!(*file.read().unwrap(), "# mine\r\n[default]\r\nregion = x");
    }

    #[cfg(unix)]
    #[test]
    fn new_file_is_0600_in_new_0700_directory() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = CredentialsFile::new(dir.path().join("home/.aws/credentials"));
        assert!(file.apply(&[upsert("dev", "A")]).unwrap());
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(file.path()), 0o600);
        assert_eq!(mode(&dir.path().join("home/.aws")), 0o700);
        assert_eq!(
            mode(&dir.path().join("home/.aws/.credentials.rolecall.lock")),
            0o600
        );
    }

    #[cfg(unix)]
    #[test]
    fn existing_file_keeps_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = file_in(&dir);
        fs::write(file.path(), "[default]\n").unwrap();
        fs::set_permissions(file.path(), fs::Permissions::from_mode(0o640)).unwrap();
        assert!(file.apply(&[upsert("dev", "A")]).unwrap());
        assert_eq!(
            fs::metadata(file.path()).unwrap().permissions().mode() & 0o777,
            0o640
        );
    }

    #[test]
    fn remove_from_missing_file_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let file = CredentialsFile::new(dir.path().join(".aws/credentials"));
        assert!(!file.apply(&[remove("dev")]).unwrap());
        assert!(!dir.path().join(".aws").exists());
    }

    #[cfg(unix)]
    #[test]
    fn symlink_is_kept_and_its_target_updated() {
        let dir = tempfile::tempdir().unwrap();
        let real_dir = dir.path().join("dotfiles");
        fs::create_dir(&real_dir).unwrap();
        let real = real_dir.join("aws-credentials");
        fs::write(&real, "[default]\n").unwrap();
        fs::create_dir(dir.path().join(".aws")).unwrap();
        let link = dir.path().join(".aws/credentials");
        std::os::unix::fs::symlink("../dotfiles/aws-credentials", &link).unwrap();

        let file = CredentialsFile::new(link.clone());
        assert!(file.apply(&[upsert("dev", "A")]).unwrap());
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            fs::read_to_string(&real).unwrap(),
            expand("<dev:A>\n[default]\n")
        );
        assert!(real_dir.join(".aws-credentials.rolecall.lock").exists());
        assert!(!dir.path().join(".aws/.credentials.rolecall.lock").exists());
    }

    #[cfg(unix)]
    #[test]
    fn dangling_symlink_gets_its_target_created() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("credentials");
        std::os::unix::fs::symlink("store/creds", &link).unwrap();
        let file = CredentialsFile::new(link.clone());
        assert!(file.apply(&[upsert("dev", "A")]).unwrap());
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("store/creds")).unwrap(),
            expand("<dev:A>\n")
        );
    }

    #[cfg(unix)]
    #[test]
    fn unchanged_content_is_not_written() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let file = file_in(&dir);
        file.apply(&[upsert("dev", "A")]).unwrap();
        let before = fs::metadata(file.path()).unwrap();
        assert!(!file.apply(&[upsert("dev", "A")]).unwrap());
        assert!(!file.apply(&[remove("absent")]).unwrap());
        let after = fs::metadata(file.path()).unwrap();
        assert_eq!(before.ino(), after.ino());
        assert_eq!(before.modified().unwrap(), after.modified().unwrap());
    }

    #[test]
    fn stale_temp_files_are_removed_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let file = file_in(&dir);
        fs::write(file.path(), "[default]\n").unwrap();
        let stale = dir.path().join(".credentials.rolecall.Ab12Cd.tmp");
        fs::write(&stale, "[half").unwrap();
        let foreign = dir.path().join(".config.rolecall.Ab12Cd.tmp");
        fs::write(&foreign, "").unwrap();
        file.apply(&[upsert("dev", "A")]).unwrap();
        assert!(!stale.exists());
        assert!(foreign.exists());
        assert_eq!(*file.read().unwrap(), expand("<dev:A>\n[default]\n"));
    }

    #[test]
    fn read_only_file_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let file = file_in(&dir);
        fs::write(file.path(), "[default]\n").unwrap();
        let mut perms = fs::metadata(file.path()).unwrap().permissions();
        perms.set_readonly(true);
        fs::set_permissions(file.path(), perms).unwrap();
        let err = file.apply(&[upsert("dev", "A")]).unwrap_err();
        assert!(matches!(err, Error::ReadOnly { .. }), "{err:?}");
        assert!(err.to_string().contains("chmod u+w"), "{err}");
        assert_eq!(*file.read().unwrap(), "[default]\n");
        assert!(temp_files(dir.path()).is_empty());
    }

    #[test]
    fn unusable_directory_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("not-a-dir"), "").unwrap();
        let file = CredentialsFile::new(dir.path().join("not-a-dir/credentials"));
        let err = file.apply(&[upsert("dev", "A")]).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Io {
                    op: IoOp::CreateDir,
                    ..
                }
            ),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.starts_with("could not create directory ") && msg.contains("not-a-dir"),
            "{msg}"
        );
    }

    #[test]
    fn refused_edit_leaves_file_and_directory_as_they_were() {
        let dir = tempfile::tempdir().unwrap();
        let file = file_in(&dir);
        fs::write(file.path(), "[dev]\nregion = x\n").unwrap();
        assert!(matches!(
            file.apply(&[upsert("dev", "A")]),
            Err(Error::NotOwned { .. })
        ));
        assert_eq!(*file.read().unwrap(), "[dev]\nregion = x\n");
        assert!(temp_files(dir.path()).is_empty());
    }

    #[test]
    fn concurrent_applies_lose_no_update() {
        const THREADS: usize = 8;
        const ROUNDS: usize = 20;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        fs::write(&path, "# user\n[default]\nregion = x\n").unwrap();
        std::thread::scope(|scope| {
            for t in 0..THREADS {
                let file = CredentialsFile::new(path.clone());
                scope.spawn(move || {
                    for round in 0..ROUNDS {
                        let tag = format!("{t}x{round}");
                        file.apply(&[upsert(&format!("p{t}"), &tag)]).unwrap();
                    }
                });
            }
        });
        let text = fs::read_to_string(&path).unwrap();
        for t in 0..THREADS {
            let (c, _) = managed_credentials(&text, &format!("p{t}")).unwrap();
            assert_eq!(c.access_key_id, format!("ASIA{t}x{}EXAMPLE", ROUNDS - 1));
        }
        assert_eq!(strip_managed(&text), "# user\n[default]\nregion = x\n");
        assert!(temp_files(dir.path()).is_empty());
    }

    // -----------------------------------------------------------------------------------------
    // Issue 13: tools that rewrite the file in place, root, hard links, bind mounts.

    /// Like Python's `open(path, "w")` in the AWS CLI: reads the file, empties it, and only
    /// then writes the text back, in a loop with pauses of random length, while rolecall
    /// writes. A write from a read of the emptied file would drop the user's sections.
    #[test]
    fn issue_13_a_tool_that_empties_and_rewrites_the_file_never_loses_the_users_sections() {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        const USER: &str = "# mine\n[personal]\naws_access_key_id = AKIAUSER\n\
                            aws_secret_access_key = usersecret\n";
        const REWRITES: usize = 30;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        fs::write(&path, USER).unwrap();
        let rewrites = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let mut written = 0;
        std::thread::scope(|scope| {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let text = fs::read(&path).unwrap();
                    let mut out = OpenOptions::new()
                        .write(true)
                        .truncate(true)
                        .open(&path)
                        .unwrap();
                    // the window in which the file is empty (a descheduled writer)
                    std::thread::sleep(Duration::from_millis(3));
                    out.write_all(&text).unwrap();
                    drop(out);
                    rewrites.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(fastrand::u64(0..100)));
                }
            });
            let file = CredentialsFile::new(path.clone());
            let mut round = 0;
            while rewrites.load(Ordering::Relaxed) < REWRITES {
                round += 1;
                let edit = if round % 2 == 0 {
                    remove("dev")
                } else {
                    upsert("dev", &round.to_string())
                };
                match file.apply(&[edit]) {
                    Ok(changed) => written += usize::from(changed),
                    Err(Error::Busy { .. }) => {}
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        panic!("{e}");
                    }
                }
            }
            stop.store(true, Ordering::Relaxed);
        });
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(strip_managed(&text), USER, "{text}");
        assert!(written > 0, "no pass ever wrote");
    }

    #[test]
    fn issue_13_a_file_changed_during_the_write_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let file = file_in(&dir);
        fs::write(file.path(), "[a]\n").unwrap();
        let target = Target {
            dir: dir.path(),
            path: file.path(),
            temp_prefix: ".credentials.rolecall.",
            named: file.path(),
            backup: None,
        };
        let mut lock = Lock::acquire(&dir.path().join(".credentials.rolecall.lock")).unwrap();
        // someone else wrote it just now: the attempt waits, then (unchanged) writes
        assert_eq!(
            target.attempt(&[upsert("dev", "A")], &mut lock).unwrap(),
            Some(true)
        );
        assert_eq!(*file.read().unwrap(), expand("<dev:A>\n[a]\n"));
        // what rolecall wrote is trusted: recorded in the lock, across lock holders
        drop(lock);
        let mut lock = Lock::acquire(&dir.path().join(".credentials.rolecall.lock")).unwrap();
        let written = Written::new(
            Stamp::of(&fs::metadata(file.path()).unwrap()),
            &file.read().unwrap(),
        );
        assert_eq!(lock.last_written(), Some(written));
        assert_eq!(Written::from_line(&written.to_line()), Some(written));
        assert_eq!(
            target.attempt(&[remove("dev")], &mut lock).unwrap(),
            Some(true)
        );
        assert_eq!(*file.read().unwrap(), "[a]\n");
    }

    #[cfg(unix)]
    #[test]
    fn issue_13_a_hard_linked_file_is_refused_and_both_names_kept() {
        let dir = tempfile::tempdir().unwrap();
        let file = file_in(&dir);
        fs::write(file.path(), "[default]\n").unwrap();
        let other = dir.path().join("other-name");
        fs::hard_link(file.path(), &other).unwrap();
        let err = file.apply(&[upsert("dev", "A")]).unwrap_err();
        assert!(matches!(err, Error::HardLinked { links: 2, .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("2 hard links") && msg.contains("ln -sf"),
            "{msg}"
        );
        assert_eq!(fs::read_to_string(file.path()).unwrap(), "[default]\n");
        assert_eq!(fs::read_to_string(&other).unwrap(), "[default]\n");
        assert!(temp_files(dir.path()).is_empty());
    }

    #[test]
    fn issue_13_ebusy_from_the_rename_names_the_bind_mount() {
        let busy = io::Error::from(io::ErrorKind::ResourceBusy);
        assert!(is_busy(&busy));
        assert!(!is_busy(&io::Error::from(io::ErrorKind::PermissionDenied)));
        let msg = Error::MountPoint {
            path: PathBuf::from("/root/.aws/credentials"),
        }
        .to_string();
        assert!(
            msg.contains("mount point") && msg.contains("mount its directory instead"),
            "{msg}"
        );
    }

    /// The tests run as root here, as `sudo -E rolecall` does; they need it to hand files to
    /// another user.
    #[cfg(unix)]
    fn assert_root(dir: &Path) {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            fs::metadata(dir).unwrap().uid(),
            0,
            "this test needs root (as sudo -E rolecall runs)"
        );
    }

    #[cfg(unix)]
    #[test]
    fn issue_13_as_root_an_existing_file_keeps_its_owner_and_the_lock_gets_it() {
        use std::os::unix::fs::{MetadataExt, chown};
        let dir = tempfile::tempdir().unwrap();
        assert_root(dir.path());
        chown(dir.path(), Some(4242), Some(4243)).unwrap();
        let file = file_in(&dir);
        fs::write(file.path(), "[default]\n").unwrap();
        chown(file.path(), Some(4242), Some(4243)).unwrap();
        assert!(file.apply(&[upsert("dev", "A")]).unwrap());
        let owner = |p: &Path| {
            let m = fs::metadata(p).unwrap();
            (m.uid(), m.gid())
        };
        assert_eq!(owner(file.path()), (4242, 4243));
        assert_eq!(
            owner(&dir.path().join(".credentials.rolecall.lock")),
            (4242, 4243)
        );
        assert_eq!(*file.read().unwrap(), expand("<dev:A>\n[default]\n"));
    }

    #[cfg(unix)]
    #[test]
    fn issue_13_as_root_a_new_file_and_directory_get_the_owner_of_their_parent() {
        use std::os::unix::fs::{MetadataExt, chown};
        let dir = tempfile::tempdir().unwrap();
        assert_root(dir.path());
        let home = dir.path().join("home");
        fs::create_dir(&home).unwrap();
        chown(&home, Some(4242), Some(4243)).unwrap();
        let file = CredentialsFile::new(home.join(".aws/credentials"));
        assert!(file.apply(&[upsert("dev", "A")]).unwrap());
        for path in [
            home.join(".aws"),
            home.join(".aws/credentials"),
            home.join(".aws/.credentials.rolecall.lock"),
        ] {
            let m = fs::metadata(&path).unwrap();
            assert_eq!((m.uid(), m.gid()), (4242, 4243), "{}", path.display());
        }
    }
}
