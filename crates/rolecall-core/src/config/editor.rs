//! Edits to the config file that keep the user's comments and layout.

use std::path::{Path, PathBuf};

use super::{Config, Error};

/// Edits the config file in place, keeping comments and layout, and writes it atomically.
pub struct ConfigEditor {
    path: PathBuf,
    doc: toml_edit::DocumentMut,
}

impl ConfigEditor {
    /// Opens the config file for editing (a missing file starts empty).
    pub fn open(path: &Path) -> Result<ConfigEditor, Error> {
        let text = match std::fs::read_to_string(path) {
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
        Config::parse(&text, path)?;
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
            doc,
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
            Some(v) => {
                t.insert(key, toml_edit::value(v));
            }
            None => {
                t.remove(key);
            }
        }
    }

    /// Validates the edited text and writes it atomically; returns the new config.
    pub fn save(self) -> Result<Config, Error> {
        let text = self.doc.to_string();
        let config = Config::parse(&text, &self.path)?;
        write_atomic(&self.path, text.as_bytes()).map_err(|source| Error::Write {
            path: self.path.clone(),
            source,
        })?;
        Ok(config)
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".config.")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
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
}
