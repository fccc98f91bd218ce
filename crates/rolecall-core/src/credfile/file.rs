//! Locked atomic writing: the file at one path, read and written under an advisory lock
//! through a temp file and a rename.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use zeroize::{Zeroize, Zeroizing};

use super::{Edit, Error, IoOp, splice};

/// The shared credentials file at one path, read and written safely.
#[derive(Debug, Clone)]
pub struct CredentialsFile {
    path: PathBuf,
}

impl CredentialsFile {
    /// The file at `path` (usually `~/.aws/credentials` or `AWS_SHARED_CREDENTIALS_FILE`,
    /// from `config::Paths`). Nothing is touched until [`read`](Self::read) or
    /// [`apply`](Self::apply).
    pub fn new(path: PathBuf) -> Self {
        CredentialsFile { path }
    }

    /// The path given to [`new`](Self::new).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's text; empty when it does not exist.
    pub fn read(&self) -> Result<String, Error> {
        read_text(&self.path)
    }

    /// Applies `edits` under an advisory lock: read, [`splice`], and if the text changed, write
    /// it atomically (temp file, fsync, rename, fsync of the directory). Returns whether the
    /// file changed; nothing is written when it did not. A symlink is followed and left in
    /// place. A new file is created with mode 0600 (its directory 0700); an existing one keeps
    /// its mode. Blocks while another rolecall holds the lock, so call it off the async
    /// runtime.
    pub fn apply(&self, edits: &[Edit]) -> Result<bool, Error> {
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

        let _lock = Lock::acquire(&dir.join(format!(".{file_name}.rolecall.lock")))?;
        let temp_prefix = format!(".{file_name}.rolecall.");
        remove_stale_temp_files(&dir, &temp_prefix);

        let existing = match fs::metadata(&target) {
            Ok(meta) => Some(meta),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(Error::Io {
                    op: IoOp::Read,
                    path: target,
                    source,
                });
            }
        };
        let old = Zeroizing::new(read_text(&target)?);
        let new = Zeroizing::new(splice(&old, edits, &self.path)?);
        if *new == *old {
            return Ok(false);
        }
        if existing
            .as_ref()
            .is_some_and(|m| m.permissions().readonly())
        {
            return Err(Error::ReadOnly { path: target });
        }
        write_atomically(
            &dir,
            &target,
            &temp_prefix,
            new.as_bytes(),
            existing.as_ref(),
        )?;
        tracing::debug!(path = %target.display(), "credentials file updated");
        Ok(true)
    }
}

fn read_text(path: &Path) -> Result<String, Error> {
    match fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes).map_err(|e| {
            e.into_bytes().zeroize();
            Error::NotUtf8 {
                path: path.to_owned(),
            }
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(Error::Io {
            op: IoOp::Read,
            path: path.to_owned(),
            source,
        }),
    }
}

/// The file the path finally names. Dotfile managers make `~/.aws/credentials` a symlink;
/// writing through a rename onto the link would replace the link with a plain file, so the
/// rename must target the real file (and the temp file live in its directory).
fn resolve_symlinks(path: &Path) -> Result<PathBuf, Error> {
    // Linux's own limit (MAXSYMLINKS) on links followed in one lookup.
    const MAX_LINKS: usize = 40;
    let mut current = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        let read_error = |path: &Path, source| Error::Io {
            op: IoOp::Read,
            path: path.to_owned(),
            source,
        };
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                if let Ok(real) = fs::canonicalize(&current) {
                    return Ok(real);
                }
                // A dangling link: follow it one step; the file will be created at its target.
                let target = fs::read_link(&current).map_err(|e| read_error(&current, e))?;
                current = match current.parent() {
                    Some(dir) => dir.join(target),
                    None => target,
                };
            }
            Ok(_) => return Ok(current),
            // Not there (yet): creating the directory will report what is wrong.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(current);
            }
            Err(e) => return Err(read_error(&current, e)),
        }
    }
    Err(Error::Io {
        op: IoOp::Read,
        path: path.to_owned(),
        source: io::Error::other("too many levels of symbolic links"),
    })
}

fn create_dir(dir: &Path) -> Result<(), Error> {
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
/// never deleted: deleting it would let two writers lock two different inodes.
struct Lock(File);

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
        let file = options.open(path).map_err(lock_error)?;
        file.lock().map_err(lock_error)?;
        Ok(Lock(file))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlocking first just makes it prompt.
        let _ = self.0.unlock();
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

fn write_atomically(
    dir: &Path,
    target: &Path,
    prefix: &str,
    bytes: &[u8],
    existing: Option<&fs::Metadata>,
) -> Result<(), Error> {
    let io_error = |op| {
        move |source| Error::Io {
            op,
            path: target.to_owned(),
            source,
        }
    };
    let mut temp = tempfile::Builder::new()
        .prefix(prefix)
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(io_error(IoOp::Write))?;
    temp.write_all(bytes).map_err(io_error(IoOp::Write))?;
    set_permissions(temp.as_file(), existing).map_err(io_error(IoOp::Write))?;
    temp.as_file().sync_all().map_err(io_error(IoOp::Sync))?;
    persist(temp, target).map_err(io_error(IoOp::Rename))?;
    sync_dir(dir);
    Ok(())
}

/// Renames the temp file over the target. On Windows a rename onto a file that another
/// program has open without delete sharing (Python's `open`, so the AWS CLI reading its
/// credentials) fails with "access denied" until that program closes it: retried for up to
/// about 2.5 s. Elsewhere the rename is atomic whatever else has the file open.
fn persist(temp: tempfile::NamedTempFile, target: &Path) -> io::Result<()> {
    const RETRIES: u32 = 8;
    let mut temp = temp;
    let mut delay = std::time::Duration::from_millis(10);
    let mut attempt = 0;
    loop {
        match temp.persist(target) {
            Ok(_) => return Ok(()),
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

    #[test]
    fn read_of_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(file_in(&dir).read().unwrap(), "");
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
            file.read().unwrap(),
            expand("<dev:A:crlf>\r\n# mine\r\n[default]\r\nregion = x")
        );
        assert!(temp_files(dir.path()).is_empty());
        assert!(file.apply(&[remove("dev")]).unwrap());
        assert_eq!(file.read().unwrap(), "# mine\r\n[default]\r\nregion = x");
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
        assert_eq!(file.read().unwrap(), expand("<dev:A>\n[default]\n"));
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
        assert_eq!(file.read().unwrap(), "[default]\n");
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
        assert_eq!(file.read().unwrap(), "[dev]\nregion = x\n");
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
}
