//! The naming contexts (mail domains) the server holds: those of the configuration, and those a
//! global admin created at run time by adding a domain entry outside every existing one. Every
//! entry stored without a parent is the root of a naming context, so the list survives a
//! restart without a record of its own: at start the store's roots join the configured ones.
//!
//! Readers take a snapshot (`current`), which stays valid while the list changes.

use roster_schema::NormDn;
use std::sync::{Arc, RwLock};

/// One version of the list.
#[derive(Debug, Clone, Default)]
pub struct Contexts {
    /// Normalized DNs: the configured ones first, in their order, then the created ones.
    pub list: Vec<NormDn>,
    /// The same as written (configuration or the add that created them), for the root DSE.
    pub names: Vec<String>,
    /// How many of `list` come from the configuration.
    configured: usize,
}

impl Contexts {
    /// The naming context holding `ndn` (the deepest, should they nest).
    pub fn suffix_of(&self, ndn: &NormDn) -> Option<&NormDn> {
        self.list
            .iter()
            .filter(|s| ndn.is_within(s))
            .max_by_key(|s| s.rdns.len())
    }

    /// True if `ndn` is the DN of a naming context.
    pub fn contains(&self, ndn: &NormDn) -> bool {
        self.list.contains(ndn)
    }

    /// True if `ndn` names a context created at run time (which a delete of its entry ends).
    pub fn is_created(&self, ndn: &NormDn) -> bool {
        self.list.iter().skip(self.configured).any(|s| s == ndn)
    }
}

/// The shared, changing list.
#[derive(Debug, Default)]
pub struct NamingContexts {
    current: RwLock<Arc<Contexts>>,
}

impl NamingContexts {
    pub fn new(configured: Vec<(NormDn, String)>) -> NamingContexts {
        let configured_len = configured.len();
        let (list, names) = configured.into_iter().unzip();
        NamingContexts {
            current: RwLock::new(Arc::new(Contexts {
                list,
                names,
                configured: configured_len,
            })),
        }
    }

    /// The list as it is now.
    pub fn current(&self) -> Arc<Contexts> {
        match self.current.read() {
            Ok(c) => c.clone(),
            // A writer panicked between two whole versions: the last one is still whole.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn update(&self, change: impl FnOnce(&mut Contexts)) {
        let mut guard = match self.current.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut next = Contexts::clone(&guard);
        change(&mut next);
        *guard = Arc::new(next);
    }

    /// Adds a naming context (no-op if present).
    pub fn add(&self, ndn: NormDn, name: String) {
        self.update(|c| {
            if !c.list.contains(&ndn) {
                c.list.push(ndn);
                c.names.push(name);
            }
        });
    }

    /// Ends a naming context created at run time; configured ones stay.
    pub fn remove_created(&self, ndn: &NormDn) {
        self.update(|c| {
            if let Some(i) = c.list.iter().skip(c.configured).position(|s| s == ndn) {
                let i = i + c.configured;
                c.list.remove(i);
                c.names.remove(i);
            }
        });
    }
}
