//! Edits to the config file that keep the user's comments and layout.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use super::{Config, Error};

/// A change to the settings the tray app's Settings window edits; `None` leaves a key as it
/// is. Durations are taken as the user wrote them (`"15m"`) and checked like a hand edit of
/// the file, so a refused value gets the message the CLI gives for that file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SettingsChange {
    /// `refresh_before`, e.g. `"15m"`.
    pub refresh_before: Option<String>,
    /// `notify_before`, e.g. `"10m"`.
    pub notify_before: Option<String>,
    /// `end_sessions_on_quit`.
    pub end_sessions_on_quit: Option<bool>,
}

/// Changes `[settings]` in the config file at `path` (see [`SettingsChange`]) under the
/// editor's lock, and returns the config now in force. A key is written only when its value
/// differs from the one in force, so nothing else in the file changes and an unchanged window
/// writes nothing; a refused change leaves the file as it was. Blocks while another editor
/// holds the lock: call it off the async runtime.
pub fn change_settings(path: &Path, change: &SettingsChange) -> Result<Config, Error> {
    let mut ed = ConfigEditor::open(path)?;
    if ed.change_settings(change) {
        ed.save()
    } else {
        Ok(ed.config)
    }
}

/// Edits the config file in place, keeping comments and layout, and writes it atomically.
pub struct ConfigEditor {
    /// The path as given, for messages.
    path: PathBuf,
    /// The file finally named by `path` (after symlinks), which is the one replaced.
    target: PathBuf,
    /// `target`'s directory, where the temp and lock files live.
    dir: PathBuf,
    temp_prefix: String,
    doc: toml_edit::DocumentMut,
    /// The file as it was when opened.
    config: Config,
    _lock: Lock,
}

impl ConfigEditor {
    /// Opens the config file for editing (a missing file starts empty), and holds an exclusive
    /// lock until the editor is saved or dropped, so that another Rolecall's edit (`keys add`
    /// racing the agent's `use`) starts from this one's result instead of overwriting it.
    /// A symlinked file is edited at its target and stays a symlink. Blocks while another
    /// editor holds the lock: call it off the async runtime.
    pub fn open(path: &Path) -> Result<ConfigEditor, Error> {
        let target = resolve_symlinks(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let (dir, file_name) = dir_and_name(&target).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        std::fs::create_dir_all(&dir).map_err(|source| Error::Write {
            path: path.to_path_buf(),
            source,
        })?;
        let lock = Lock::acquire(&dir.join(format!(".{file_name}.rolecall.lock")))?;
        let text = match std::fs::read_to_string(&target) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(Error::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        // validate first, so that an edit never builds on a broken file
        let config = Config::parse(&text, path)?;
        let doc = text
            .parse::<toml_edit::DocumentMut>()
            .map_err(|e| Error::Syntax {
                path: path.to_path_buf(),
                line: None,
                column: None,
                message: e.message().to_string(),
            })?;
        Ok(ConfigEditor {
            path: path.to_path_buf(),
            target,
            dir,
            temp_prefix: format!(".{file_name}.rolecall."),
            doc,
            config,
            _lock: lock,
        })
    }

    fn table(&mut self, section: &str) -> &mut toml_edit::Table {
        let root = self.doc.as_table_mut();
        let item = root.entry(section).or_insert_with(|| {
            let mut t = toml_edit::Table::new();
            t.set_implicit(true);
            toml_edit::Item::Table(t)
        });
        if !item.is_table() {
            // the file was validated, so `section` can only be an inline table here
            *item = toml_edit::Item::Table(toml_edit::Table::new());
        }
        item.as_table_mut().expect("just made sure it is a table")
    }

    /// Sets `[section.name]` to the given key/values (string values), replacing the keys given
    /// and keeping others.
    pub fn set_entry(&mut self, section: &str, name: &str, values: &[(&str, Option<String>)]) {
        let t = self.table(section);
        if !t.contains_key(name) {
            t.insert(name, toml_edit::Item::Table(toml_edit::Table::new()));
        }
        if let Some(entry) = t.get_mut(name).and_then(toml_edit::Item::as_table_mut) {
            for (k, v) in values {
                match v {
                    Some(v) => {
                        entry.insert(k, toml_edit::value(v.as_str()));
                    }
                    None => {
                        entry.remove(k);
                    }
                }
            }
        }
    }

    /// Whether `[section.name]` exists.
    pub fn has_entry(&self, section: &str, name: &str) -> bool {
        self.doc.get(section).and_then(|s| s.get(name)).is_some()
    }

    /// Removes `[section.name]`; returns whether it existed.
    pub fn remove_entry(&mut self, section: &str, name: &str) -> bool {
        self.table(section).remove(name).is_some()
    }

    /// Sets or removes a `[settings]` key.
    pub fn set_setting(&mut self, key: &str, value: Option<&str>) {
        let t = self.table("settings");
        match value {
            Some(v) => set_value(t, key, v.into()),
            None => {
                t.remove(key);
                // a `[settings]` header left with nothing under it (after `use --none`) would
                // clash with a `[settings]` block the user appends later; keep one that
                // carries the user's comment
                let bare = t.is_empty()
                    && !t
                        .decor()
                        .prefix()
                        .and_then(|p| p.as_str())
                        .is_some_and(|p| p.contains('#'));
                if bare {
                    self.doc.as_table_mut().remove("settings");
                }
            }
        }
    }

    /// Applies `change` to `[settings]`, writing only the keys whose value differs from the
    /// one in force when the file was opened; returns whether anything was written.
    pub fn change_settings(&mut self, change: &SettingsChange) -> bool {
        let now = &self.config.settings;
        let durations = [
            ("refresh_before", &change.refresh_before, now.refresh_before),
            ("notify_before", &change.notify_before, now.notify_before),
        ];
        let end_on_quit = now.end_sessions_on_quit;
        let mut changed = false;
        for (key, wanted, now) in durations {
            let Some(wanted) = wanted.as_deref().map(str::trim) else {
                continue;
            };
            // a value that does not parse is written too: `save` refuses it with the
            // message a hand edit gets
            if humantime::parse_duration(wanted).is_ok_and(|d| d == now) {
                continue;
            }
            self.set_setting(key, Some(wanted));
            changed = true;
        }
        if let Some(on) = change.end_sessions_on_quit
            && on != end_on_quit
        {
            set_value(self.table("settings"), "end_sessions_on_quit", on.into());
            changed = true;
        }
        changed
    }

    /// Validates the edited text and writes it atomically (temp file beside the target,
    /// fsync, rename, fsync of the directory); returns the new config. The file keeps its
    /// permission bits. The lock is released when this returns.
    pub fn save(self) -> Result<Config, Error> {
        let text = self.doc.to_string();
        let config = Config::parse(&text, &self.path)?;
        remove_stale_temp_files(&self.dir, &self.temp_prefix);
        write_atomic(&self.dir, &self.target, &self.temp_prefix, text.as_bytes()).map_err(
            |source| Error::Write {
                path: self.path.clone(),
                source,
            },
        )?;
        Ok(config)
    }
}

/// Sets `key` in `table` to `value`; a value already there keeps its spacing and the comment
/// after it.
fn set_value(table: &mut toml_edit::Table, key: &str, value: toml_edit::Value) {
    match table.get_mut(key).and_then(toml_edit::Item::as_value_mut) {
        Some(old) => {
            let decor = old.decor().clone();
            *old = value;
            *old.decor_mut() = decor;
        }
        None => {
            table.insert(key, toml_edit::value(value));
        }
    }
}

/// The file `path` finally names. Writing through a rename onto a symlink would replace the
/// link with a plain file (dotfile managers link the config into their repository), so the
/// rename must target the real file, and the temp file live in its directory. A dangling link
/// is followed to where the file will be created.
pub(crate) fn resolve_symlinks(path: &Path) -> io::Result<PathBuf> {
    // Linux's own limit (MAXSYMLINKS) on links followed in one lookup.
    const MAX_LINKS: usize = 40;
    let mut current = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                if let Ok(real) = fs::canonicalize(&current) {
                    return Ok(real);
                }
                let target = fs::read_link(&current)?;
                current = match current.parent() {
                    Some(dir) => dir.join(target),
                    None => target,
                };
            }
            Ok(_) => return Ok(current),
            // not there yet: creating the directory or the file reports what is wrong
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(current);
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("too many levels of symbolic links"))
}

fn dir_and_name(target: &Path) -> io::Result<(PathBuf, String)> {
    let name = target
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"))?;
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((dir, name.to_string()))
}

/// An exclusive advisory lock on a sidecar file, released on drop. The lock file is never
/// deleted: deleting it would let two editors lock two different inodes. A sidecar rather
/// than the config itself, because the config's inode is replaced by every save.
struct Lock(File);

impl Lock {
    fn acquire(path: &Path) -> Result<Lock, Error> {
        let lock_error = |source| Error::Lock {
            path: path.to_path_buf(),
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
        // closing the file releases the lock too; unlocking first just makes it prompt
        let _ = self.0.unlock();
    }
}

/// Deletes temp files a killed editor left behind; only called under the lock.
fn remove_stale_temp_files(dir: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(prefix)
            && name.ends_with(".tmp")
            && let Err(e) = fs::remove_file(entry.path())
        {
            tracing::debug!(file = name, error = %e, "could not remove a stale temp file");
        }
    }
}

fn write_atomic(dir: &Path, target: &Path, prefix: &str, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let existing = match fs::metadata(target) {
        Ok(meta) => Some(meta.permissions()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(prefix)
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    // an existing file keeps its mode; a new one keeps the temp file's private 0600
    if let Some(permissions) = existing {
        tmp.as_file().set_permissions(permissions)?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(target).map_err(|e| e.error)?;
    // the rename is durable once the directory is synced (not possible on Windows)
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn editor_keeps_comments_and_validates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "# my settings\n[settings]\nrefresh_before = \"20m\" # keep\n",
        )
        .unwrap();
        let mut ed = ConfigEditor::open(&path).unwrap();
        ed.set_entry(
            "sources",
            "work",
            &[(
                "mfa_serial",
                Some("arn:aws:iam::111111111111:mfa/al".into()),
            )],
        );
        let c = ed.save().unwrap();
        assert!(c.sources.contains_key("work"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# my settings\n[settings]\nrefresh_before = \"20m\" # keep\n"),
            "{text}"
        );
        assert!(text.contains("[sources.work]"), "{text}");

        let mut ed = ConfigEditor::open(&path).unwrap();
        ed.set_setting("active", Some("missing"));
        let err = ed.save().unwrap_err().to_string();
        assert!(err.contains("settings.active"), "{err}");
        // a refused edit leaves the file as it was
        assert!(!std::fs::read_to_string(&path).unwrap().contains("missing"));
    }

    /// Dotfile managers make the config a symlink into their repository; an edit must change
    /// the file the link names and keep the link.
    #[cfg(unix)]
    #[test]
    fn symlinked_config_stays_a_symlink_after_an_edit() {
        let dir = tempfile::tempdir().unwrap();
        let real_dir = dir.path().join("dotfiles");
        std::fs::create_dir(&real_dir).unwrap();
        let real = real_dir.join("rolecall.toml");
        std::fs::write(&real, "# mine\n[settings]\nrefresh_before = \"20m\"\n").unwrap();
        let cfg_dir = dir.path().join("config/rolecall");
        std::fs::create_dir_all(&cfg_dir).unwrap();
        let link = cfg_dir.join("config.toml");
        std::os::unix::fs::symlink("../../dotfiles/rolecall.toml", &link).unwrap();

        let mut ed = ConfigEditor::open(&link).unwrap();
        ed.set_entry("sources", "work", &[("region", Some("eu-west-1".into()))]);
        ed.save().unwrap();

        let meta = std::fs::symlink_metadata(&link).unwrap();
        assert!(meta.file_type().is_symlink(), "the link was replaced");
        let text = std::fs::read_to_string(&real).unwrap();
        assert!(
            text.starts_with("# mine\n[settings]\nrefresh_before = \"20m\"\n"),
            "{text}"
        );
        assert!(text.contains("[sources.work]"), "{text}");
        // nothing but the link in the link's directory: temp and lock files live beside the target
        let names: Vec<_> = std::fs::read_dir(&cfg_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["config.toml"], "{names:?}");
    }

    /// A dangling link (the dotfile repository not populated yet) gets its target created.
    #[cfg(unix)]
    #[test]
    fn dangling_symlinked_config_gets_its_target_created() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("store")).unwrap();
        let link = dir.path().join("config.toml");
        std::os::unix::fs::symlink("store/rolecall.toml", &link).unwrap();
        let mut ed = ConfigEditor::open(&link).unwrap();
        ed.set_setting("refresh_before", Some("20m"));
        ed.save().unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let text = std::fs::read_to_string(dir.path().join("store/rolecall.toml")).unwrap();
        assert!(text.contains("refresh_before = \"20m\""), "{text}");
    }

    /// `keys add` racing the agent's `use`: each read-modify-write must see the other's result.
    #[test]
    fn concurrent_editors_lose_no_update() {
        const ROUNDS: usize = 60;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let barrier = std::sync::Barrier::new(2);
        std::thread::scope(|scope| {
            for who in ["a", "b"] {
                let (path, barrier) = (&path, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    for round in 0..ROUNDS {
                        let mut ed = ConfigEditor::open(path).unwrap();
                        ed.set_entry(
                            "sources",
                            &format!("{who}{round}"),
                            &[("region", Some("eu-west-1".into()))],
                        );
                        ed.save().unwrap();
                    }
                });
            }
        });
        let config = Config::load(&path).unwrap();
        let missing: Vec<String> = ["a", "b"]
            .iter()
            .flat_map(|who| (0..ROUNDS).map(move |r| format!("{who}{r}")))
            .filter(|name| !config.sources.contains_key(name))
            .collect();
        assert!(missing.is_empty(), "lost updates: {missing:?}");
    }

    const USERS_CONFIG: &str = "# my rolecall config\n\
        [settings]\n\
        refresh_before = \"20m\"   # keep this comment\n\
        active = \"dev\"\n\
        \n\
        [sources.work] # the bastion account\n\
        mfa_serial = \"arn:aws:iam::111111111111:mfa/al\"\n\
        \n\
        # roles\n\
        [profiles.dev]\n\
        source = \"work\"\n";

    fn change(
        refresh_before: Option<&str>,
        notify_before: Option<&str>,
        end_sessions_on_quit: Option<bool>,
    ) -> SettingsChange {
        SettingsChange {
            refresh_before: refresh_before.map(str::to_string),
            notify_before: notify_before.map(str::to_string),
            end_sessions_on_quit,
        }
    }

    /// The Settings window's changes land in `[settings]` and nowhere else: every other byte,
    /// comments included, stays.
    #[test]
    fn changed_settings_touch_no_other_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, USERS_CONFIG).unwrap();
        let config = change_settings(&path, &change(Some("30m"), Some("5m"), Some(true))).unwrap();
        assert_eq!(config.settings.refresh_before, Duration::from_secs(1800));
        assert_eq!(config.settings.notify_before, Duration::from_secs(300));
        assert!(config.settings.end_sessions_on_quit);
        let want = USERS_CONFIG
            .replace(
                "refresh_before = \"20m\"   # keep",
                "refresh_before = \"30m\"   # keep",
            )
            .replace(
                "active = \"dev\"\n",
                "active = \"dev\"\nnotify_before = \"5m\"\nend_sessions_on_quit = true\n",
            );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), want);
        assert!(Config::load(&path).unwrap().settings.end_sessions_on_quit);

        // and back off: the key stays, saying false
        change_settings(&path, &change(None, None, Some(false))).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("end_sessions_on_quit = false\n"), "{text}");
        assert!(!Config::load(&path).unwrap().settings.end_sessions_on_quit);
    }

    /// A window saved with the values in force (however they are written) writes nothing.
    #[test]
    fn unchanged_settings_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, USERS_CONFIG).unwrap();
        let before = std::fs::metadata(&path).unwrap().modified().unwrap();
        let same = change(Some(" 1200s "), Some("10m"), Some(false));
        change_settings(&path, &same).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), USERS_CONFIG);
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            before
        );

        // no file yet: the defaults are in force, and no file is made for them
        let missing = dir.path().join("none.toml");
        let defaults = change(Some("15m"), Some("10m"), Some(false));
        let config = change_settings(&missing, &defaults).unwrap();
        assert_eq!(config.settings.notify_before, Duration::from_secs(600));
        assert!(!missing.exists());
    }

    /// A value the file may not hold is refused with the message the CLI gives for a file that
    /// holds it, and the file stays as it was.
    #[rstest::rstest]
    #[case::below_the_minimum(
        change(Some("30s"), None, None),
        ("refresh_before = \"20m\"", "refresh_before = \"30s\""),
        "settings.refresh_before: 30s is too short: must be at least 1m"
    )]
    #[case::not_a_duration(
        change(None, Some("soon"), None),
        ("active = \"dev\"\n", "active = \"dev\"\nnotify_before = \"soon\"\n"),
        "expected a duration"
    )]
    fn refused_settings_leave_the_file_and_say_what_the_cli_says(
        #[case] refused: SettingsChange,
        #[case] hand_edit: (&str, &str),
        #[case] says: &str,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, USERS_CONFIG).unwrap();
        let err = change_settings(&path, &refused).unwrap_err().to_string();
        assert!(err.contains(says), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), USERS_CONFIG);

        // the CLI loading the same value written by hand says the same (file, line and all)
        let edited = USERS_CONFIG.replacen(hand_edit.0, hand_edit.1, 1);
        assert_ne!(edited, USERS_CONFIG);
        let by_hand = dir.path().join("by-hand").join("config.toml");
        std::fs::create_dir(by_hand.parent().unwrap()).unwrap();
        std::fs::write(&by_hand, edited).unwrap();
        let cli = Config::load(&by_hand).unwrap_err().to_string();
        assert_eq!(
            err,
            cli.replace(&by_hand.display().to_string(), &path.display().to_string())
        );
    }

    /// An edit keeps the file's permission bits (the rename would otherwise leave the temp
    /// file's 0600).
    #[cfg(unix)]
    #[test]
    fn an_edit_keeps_the_file_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut ed = ConfigEditor::open(&path).unwrap();
        ed.set_setting("refresh_before", Some("20m"));
        ed.save().unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "{mode:o}");
    }
}
