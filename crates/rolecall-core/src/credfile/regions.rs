//! Regions in the AWS config file (issue 15): the AWS CLI v2 and the SDKs read a profile's
//! `region` from `~/.aws/config`, not from the credentials file. So a managed profile with a
//! region also gets a managed `[profile NAME]` there, with `region = …`, written and removed by
//! the same splice writer; a profile the user wrote there is never touched.

use std::path::PathBuf;

use crate::config::Paths;

use super::{
    CredentialsFile, Edit, Error, FileKind, ProfileSection, inspect_as, managed_credential_process,
    splice_config,
};

/// Brings the config file's managed region sections in line with `regions`: for each profile,
/// `Some(region)` writes `[profile NAME]` with that region, `None` removes rolecall's section of
/// that name (if any). One locked, atomic update (lock in `lock_dir`). A name the file refuses
/// (the user's own `[profile NAME]`, whose settings stand; one changed since rolecall wrote it;
/// a name the config file cannot hold) is skipped and returned with the reason, the others
/// are written. Returns the skipped names; `Err` only when the file could not be written.
pub fn sync_regions(
    config_file: PathBuf,
    lock_dir: PathBuf,
    regions: &[(String, Option<String>)],
) -> Result<Vec<(String, Error)>, Error> {
    let file = CredentialsFile::new(config_file).with_lock_dir(lock_dir);
    let text = file.read()?;
    let managed: Vec<String> = inspect_as(FileKind::Config, &text)
        .managed()
        .map(|s| s.name.clone())
        .collect();
    let mut edits = Vec::new();
    let mut skipped = Vec::new();
    for (name, region) in regions {
        // a section `rolecall setup credential-process` wrote keeps its command
        let process = managed_credential_process(&text, name);
        let edit = match (region, process) {
            (None, None) if managed.contains(name) => Edit::Remove { name: name.clone() },
            // only rolecall's own section goes; a user's is no business of a removal
            (None, None) => continue,
            (region, credential_process) => Edit::Upsert {
                section: ProfileSection {
                    name: name.clone(),
                    region: region.clone(),
                    credential_process,
                },
                adopt: false,
            },
        };
        match splice_config(&text, std::slice::from_ref(&edit), file.path()) {
            Ok(_) => edits.push(edit),
            Err(e) => skipped.push((name.clone(), e)),
        }
    }
    if !edits.is_empty() {
        file.apply_config(&edits)?;
    }
    Ok(skipped)
}

/// [`sync_regions`] for the engine: on the blocking pool, into `paths.aws_config_file` (lock
/// in `paths.runtime_dir`). Never fails the caller: the credentials are what a pass is for, and
/// the region an extra, so a skipped name or a failed write is logged (with what to do) and
/// the pass goes on.
pub(crate) async fn update_regions(paths: &Paths, regions: Vec<(String, Option<String>)>) {
    if regions.is_empty() {
        return;
    }
    let (file, lock_dir) = (paths.aws_config_file.clone(), paths.runtime_dir.clone());
    let result =
        tokio::task::spawn_blocking(move || sync_regions(file.clone(), lock_dir, &regions)).await;
    match result {
        Ok(Ok(skipped)) => {
            for (profile, error) in skipped {
                tracing::info!(profile, reason = %error, "region not written to the aws config file");
            }
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, "could not write regions to the aws config file");
        }
        Err(error) => {
            tracing::warn!(%error, "writing regions to the aws config file stopped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn sync(dir: &tempfile::TempDir, regions: &[(&str, Option<&str>)]) -> Vec<String> {
        let regions: Vec<(String, Option<String>)> = regions
            .iter()
            .map(|(n, r)| ((*n).to_owned(), r.map(str::to_owned)))
            .collect();
        sync_regions(dir.path().join("config"), dir.path().join("run"), &regions)
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    }

    #[test]
    fn issue_15_regions_are_written_updated_and_removed_around_the_users_profiles() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        let user = "# mine\n[default]\nregion = us-east-1\n[profile work]\nregion = us-west-2\n";
        fs::write(&path, user).unwrap();
        // the user's own profiles are skipped, the others written
        assert_eq!(
            sync(
                &dir,
                &[
                    ("dev", Some("eu-west-1")),
                    ("work", Some("x")),
                    ("default", Some("x"))
                ]
            ),
            ["work", "default"]
        );
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.ends_with(user), "{text}");
        assert_eq!(
            super::super::region_of_config(&text, "dev").as_deref(),
            Some("eu-west-1")
        );
        sync(&dir, &[("dev", Some("eu-west-2"))]);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(
            super::super::region_of_config(&text, "dev").as_deref(),
            Some("eu-west-2")
        );
        // removal: rolecall's section goes, the user's stay (never removed by a None)
        assert!(sync(&dir, &[("dev", None), ("work", None)]).is_empty());
        assert_eq!(fs::read_to_string(&path).unwrap(), user);
        // nothing beside the file but the file
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2); // config, run/
    }

    #[test]
    fn issue_15_a_credential_process_section_keeps_its_command() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        let file = CredentialsFile::new(path.clone());
        let setup = ProfileSection {
            name: "dev".into(),
            region: None,
            credential_process: Some("/bin/rolecall credential-process dev".into()),
        };
        file.apply_config(&[Edit::Upsert {
            section: setup,
            adopt: false,
        }])
        .unwrap();
        let before = fs::read_to_string(&path).unwrap();
        sync(&dir, &[("dev", Some("eu-west-1"))]);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(
            managed_credential_process(&text, "dev").as_deref(),
            Some("/bin/rolecall credential-process dev")
        );
        assert_eq!(
            super::super::region_of_config(&text, "dev").as_deref(),
            Some("eu-west-1")
        );
        // a removal (clear, or no region any more) takes only the region
        sync(&dir, &[("dev", None)]);
        assert_eq!(fs::read_to_string(&path).unwrap(), before);
    }

    #[test]
    fn issue_15_a_missing_config_file_is_created_only_to_write_a_region() {
        let dir = tempfile::tempdir().unwrap();
        assert!(sync(&dir, &[("dev", None)]).is_empty());
        assert!(!dir.path().join("config").exists());
        sync(&dir, &[("dev", Some("eu-west-1"))]);
        assert!(dir.path().join("config").exists());
    }
}
