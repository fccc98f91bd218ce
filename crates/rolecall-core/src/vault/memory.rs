//! [`MemoryStore`]: a [`SecretStore`] in process memory, for unit tests and the demo. It is only
//! ever used when a caller injects it explicitly; nothing falls back to it when the keychain
//! fails. It can play a locked keychain or a failing one, so callers can test their handling.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{Error, SecretStore};
use crate::credentials::{ExposeSecret, SecretString};

/// Makes the error a failing [`MemoryStore`] returns, from the account asked for.
pub type FailWith = fn(account: &str) -> Error;

/// An in-memory [`SecretStore`]: a map behind a mutex. Secrets are wiped when replaced, deleted
/// or dropped (they are [`SecretString`]s).
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: BTreeMap<String, SecretString>,
    locked: bool,
    fail_with: Option<FailWith>,
}

impl MemoryStore {
    /// An empty, unlocked store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Plays a locked keychain: while `locked`, every call fails with [`Error::Locked`].
    pub fn set_locked(&self, locked: bool) {
        self.state().locked = locked;
    }

    /// Plays a failing keychain: while set, every call fails with the error `fail` makes.
    pub fn fail_with(&self, fail: Option<FailWith>) {
        self.state().fail_with = fail;
    }

    /// The accounts that hold a secret, sorted.
    pub fn accounts(&self) -> Vec<String> {
        self.state().entries.keys().cloned().collect()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The map stays consistent even if a holder panicked: every update is one insert/remove.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn check(state: &State, account: &str) -> Result<(), Error> {
        if let Some(fail) = state.fail_with {
            return Err(fail(account));
        }
        if state.locked {
            return Err(Error::Locked {
                account: account.to_string(),
            });
        }
        Ok(())
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("MemoryStore")
            .field("accounts", &state.entries.keys().collect::<Vec<_>>())
            .field("locked", &state.locked)
            .finish_non_exhaustive()
    }
}

impl SecretStore for MemoryStore {
    fn get(&self, account: &str) -> Result<Option<SecretString>, Error> {
        let state = self.state();
        Self::check(&state, account)?;
        Ok(state.entries.get(account).cloned())
    }

    fn set(&self, account: &str, secret: &SecretString) -> Result<(), Error> {
        let mut state = self.state();
        Self::check(&state, account)?;
        state.entries.insert(
            account.to_string(),
            SecretString::from(secret.expose_secret()),
        );
        Ok(())
    }

    fn delete(&self, account: &str) -> Result<bool, Error> {
        let mut state = self.state();
        Self::check(&state, account)?;
        Ok(state.entries.remove(account).is_some())
    }

    fn list_accounts(&self) -> Result<Option<Vec<String>>, Error> {
        let state = self.state();
        Self::check(&state, "")?;
        Ok(Some(state.entries.keys().cloned().collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_delete_round_trip() {
        let s = MemoryStore::new();
        assert!(s.get("source:a").unwrap().is_none());
        s.set("source:a", &SecretString::from("one")).unwrap();
        s.set("source:a", &SecretString::from("two")).unwrap();
        assert_eq!(s.get("source:a").unwrap().unwrap().expose_secret(), "two");
        assert!(s.delete("source:a").unwrap());
        assert!(!s.delete("source:a").unwrap());
    }

    #[test]
    fn locked_and_failing_modes() {
        let s = MemoryStore::new();
        s.set_locked(true);
        assert!(matches!(s.get("a"), Err(Error::Locked { account }) if account == "a"));
        s.set_locked(false);
        s.fail_with(Some(|account| Error::Denied {
            account: account.into(),
        }));
        assert!(matches!(s.delete("a"), Err(Error::Denied { .. })));
        s.fail_with(None);
        assert!(!s.delete("a").unwrap());
    }

    #[test]
    fn debug_lists_accounts_only() {
        let s = MemoryStore::new();
        s.set("source:a", &SecretString::from("hunter2hunter2"))
            .unwrap();
        let d = format!("{s:?}");
        assert!(d.contains("source:a"), "{d}");
        assert!(!d.contains("hunter2"), "{d}");
    }
}
