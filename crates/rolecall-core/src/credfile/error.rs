//! Errors of the credentials-file writer. No variant carries a secret.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// What can go wrong while editing the credentials file or the AWS config file. No variant carries a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The edit names a section that exists but was not written by rolecall.
    #[error(
        "section [{name}] in {path} was not written by rolecall; {advice}",
        advice = not_owned_advice(name, *role_profile)
    )]
    NotOwned {
        /// The section name.
        name: String,
        /// The credentials file.
        path: PathBuf,
        /// It is a role profile of the user's (`role_arn` or `source_profile`, awscli_bastion's
        /// layout): `rolecall import` takes it over (issue 17).
        role_profile: bool,
    },
    /// The section carries rolecall's marker, but its content is no longer what rolecall wrote
    /// (its fingerprint does not match): someone edited it, by hand or with `aws configure set`,
    /// so it is the user's now and is neither overwritten nor removed.
    #[error(
        "section [{name}] in {path} was changed since rolecall wrote it (by hand or by aws \
         configure), so rolecall leaves it alone; to keep it as yours, delete its line \
         x_rolecall_managed; to hand it back, {advice}",
        advice = hand_back(name)
    )]
    Changed {
        /// The section name.
        name: String,
        /// The credentials file.
        path: PathBuf,
    },
    /// `rolecall use --adopt` would overwrite a section holding the user's long-lived access
    /// key (an access key id and secret without a session token): refused, so that nothing
    /// rolecall writes or removes is ever the user's own key.
    #[error(
        "section [{name}] in {path} holds your long-lived access key …{key_tail}, which rolecall \
         will not overwrite; move it into the keychain first with \
         \"rolecall keys import {name} --scrub\" (stores it as source {name:?} and removes the \
         section), then run the command again"
    )]
    LongLivedKey {
        /// The section name.
        name: String,
        /// The credentials file.
        path: PathBuf,
        /// The last 4 characters of the access key id (never the whole id).
        key_tail: String,
    },
    /// The file has more than one section of that name, which configparser (so the AWS CLI)
    /// refuses to read; rolecall will not guess which one is meant.
    #[error(
        "found more than one section [{name}] in {path}, which the aws cli cannot read either; \
         merge them into one or rename one, then retry"
    )]
    Duplicate {
        /// The section name.
        name: String,
        /// The credentials file.
        path: PathBuf,
    },
    /// The profile has no long-lived access key that `rolecall keys import` could take.
    #[error("profile [{name}] in {path} {reason}")]
    NoStaticKey {
        /// The section name.
        name: String,
        /// The credentials file.
        path: PathBuf,
        /// Why there is no usable key.
        reason: StaticKeyProblem,
    },
    /// The profile name cannot be written as a section header that reads back as the same name.
    #[error(
        "profile name {name:?} cannot be a section of the credentials file: it must be non-empty, \
         without control characters or surrounding spaces, and not \"DEFAULT\" (which botocore \
         applies to every profile); rename the profile"
    )]
    InvalidName {
        /// The rejected name.
        name: String,
    },
    /// The profile name cannot be written as a `[profile NAME]` header of the config file that
    /// botocore (which splits it like a shell would) and the Rust SDK read back as that name.
    #[error(
        "profile name {name:?} cannot be a profile of the aws config file: it must be non-empty, \
         without spaces, quotes, backslashes or control characters, and not \"DEFAULT\"; \
         choose another name"
    )]
    InvalidProfileName {
        /// The rejected name.
        name: String,
    },
    /// A value to write would corrupt the file or read back differently (the value itself is
    /// not shown: it may be a secret).
    #[error(
        "profile [{name}]: cannot write {key}: the value is empty, out of range, or contains \
         whitespace or control characters; the file was not changed"
    )]
    InvalidValue {
        /// The section name.
        name: String,
        /// The key whose value was rejected.
        key: &'static str,
    },
    /// There is nowhere to add a new section without changing how the AWS tools read the
    /// user's lines: the file starts with a key outside any section or an indented line (which
    /// a section above it would swallow as a key or continuation line), has no header that
    /// starts a line to insert before, and does not end with a newline to append after.
    #[error(
        "cannot add a section to {path}: line {line} is outside any [section] or indented, so \
         the aws tools would read it as part of the new section; put a section header above it, \
         remove its indentation, or end the file with a newline, then retry"
    )]
    NoRoom {
        /// The credentials file.
        path: PathBuf,
        /// The 1-based line number of the line in the way.
        line: usize,
    },
    /// A section header that [`Edit::CommentOut`](super::Edit::CommentOut) depends on is
    /// indented: configparser reads an indented `[x]` below a key as part of that key's value,
    /// so rolecall cannot tell where the section's keys end the way the AWS CLI does.
    #[error(
        "cannot change profile [{name}] in {path}: line {line} is an indented section header,          which the aws cli may read as part of the value above it; remove its indentation,          then retry"
    )]
    IndentedHeader {
        /// The profile to change.
        name: String,
        /// The file.
        path: PathBuf,
        /// The 1-based line number of the indented header.
        line: usize,
    },
    /// The file is not UTF-8, so it cannot be spliced without risking the user's bytes.
    #[error("file {path} is not valid UTF-8; save it as UTF-8, then retry")]
    NotUtf8 {
        /// The credentials file.
        path: PathBuf,
    },
    /// The user made the file read-only; rolecall respects that.
    #[error(
        "file {path} is read-only; make it writable (chmod u+w) to let rolecall \
         update it"
    )]
    ReadOnly {
        /// The credentials file.
        path: PathBuf,
    },
    /// Another program kept rewriting the file in place (the AWS CLI empties it, then writes
    /// it), so rolecall never got a read it could trust and wrote nothing.
    #[error(
        "file {path} kept changing while rolecall tried to update it (another \
         program is writing it); the file was not changed; retry when that program is done"
    )]
    Busy {
        /// The credentials file.
        path: PathBuf,
    },
    /// The file has more than one hard link. Rolecall replaces the file to update it (temp file
    /// and rename, so no reader ever sees a partial file), which would leave the other names
    /// with the old content.
    #[error(
        "file {path} has {links} hard links, and rolecall updates it by replacing \
         it, which would leave the other links with the old content; make the other names \
         symlinks to it (ln -sf), then retry"
    )]
    HardLinked {
        /// The credentials file.
        path: PathBuf,
        /// How many names the file has.
        links: u64,
    },
    /// The file is a mount point (a bind-mounted file, as with `docker -v …/credentials:…`),
    /// which a rename cannot replace.
    #[error(
        "file {path} is a mount point (a bind-mounted file, as with docker -v \
         ~/.aws/credentials:...), which rolecall cannot replace; mount its directory instead \
         (docker -v ~/.aws:/root/.aws), then retry; the file was not changed"
    )]
    MountPoint {
        /// The credentials file.
        path: PathBuf,
    },
    /// The file belongs to another user, and rolecall (not running as root) cannot give the new
    /// version that owner.
    #[error(
        "file {path} belongs to user id {uid}, and rolecall cannot keep that owner; \
         run rolecall as that user, then retry; the file was not changed"
    )]
    ForeignOwner {
        /// The credentials file.
        path: PathBuf,
        /// The file's owner.
        uid: u32,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A file-system operation failed.
    #[error("could not {op} {path}; {advice}", advice = .op.advice())]
    Io {
        /// What was being done.
        op: IoOp,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

/// How to let rolecall take over the section `name`, naming only flags that exist: only `use`
/// (which writes `[default]`) has `--adopt`; any other section is handed back by deleting it.
fn not_owned_advice(name: &str, role_profile: bool) -> String {
    if role_profile && name != "default" {
        format!(
            "it is a role profile (role_arn/source_profile): run \"rolecall import\", which \
             moves its role into rolecall and takes the section over, then \"rolecall refresh \
             {name}\"; or rename it"
        )
    } else {
        format!("rename it, or {}", hand_back(name))
    }
}

fn hand_back(name: &str) -> String {
    if name == "default" {
        "run \"rolecall use PROFILE --adopt\" to let rolecall manage it".to_owned()
    } else {
        format!("delete it and run \"rolecall refresh {name}\" to let rolecall manage it")
    }
}

/// The file-system operation behind an [`Error::Io`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IoOp {
    /// Reading the credentials file (or resolving its symlink).
    Read,
    /// Creating the directory that holds the file.
    CreateDir,
    /// Taking the advisory lock.
    Lock,
    /// Writing the new content to a temp file.
    Write,
    /// Flushing the temp file to disk.
    Sync,
    /// Renaming the temp file over the credentials file.
    Rename,
}

impl IoOp {
    fn advice(self) -> &'static str {
        match self {
            IoOp::Read => "check that it exists and is readable by you",
            IoOp::CreateDir => "check the permissions of its parent directory",
            IoOp::Lock => {
                "the lock file lives beside the file or in the runtime dir; check that its directory is \
                 writable"
            }
            IoOp::Write => {
                "check that the directory is writable and the disk is not full; the file was not \
                 changed"
            }
            IoOp::Sync => "check the disk; the file was not changed",
            IoOp::Rename => "check that the directory is writable; the file was not changed",
        }
    }
}

impl fmt::Display for IoOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IoOp::Read => "read",
            IoOp::CreateDir => "create directory",
            IoOp::Lock => "lock",
            IoOp::Write => "write the new content of",
            IoOp::Sync => "flush to disk the new content of",
            IoOp::Rename => "replace",
        })
    }
}

/// Why [`static_key`](super::static_key) found no long-lived key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StaticKeyProblem {
    /// There is no section of that name.
    Missing,
    /// The section lacks `aws_access_key_id` or `aws_secret_access_key`.
    NoKey,
    /// The section has a session token: its key is temporary.
    Temporary,
    /// rolecall wrote the section: it holds temporary credentials.
    Managed,
}

impl fmt::Display for StaticKeyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StaticKeyProblem::Missing => "does not exist; check the name (it is case-sensitive)",
            StaticKeyProblem::NoKey => {
                "has no aws_access_key_id and aws_secret_access_key pair; add the key to rolecall \
                 by hand instead"
            }
            StaticKeyProblem::Temporary => {
                "holds temporary credentials (it has a session token); import the long-lived key \
                 they came from instead"
            }
            StaticKeyProblem::Managed => {
                "was written by rolecall and holds temporary credentials; import the long-lived \
                 key they came from instead"
            }
        })
    }
}
