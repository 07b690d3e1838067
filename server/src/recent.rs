//! A small shared cache of what was computed from a name recently (see [`RecentNames`]), held
//! by the directory and used by the operations.

use std::collections::HashMap;

/// The results of recent computations from a name that depend only on the schema (the
/// normalized forms of DNs), shared by every connection: a mail server that opens a connection
/// per lookup binds as the same DN and searches under the same base each time. The schema does
/// not change while the server runs, so an entry never goes stale; the oldest is dropped past
/// `cap` names.
#[derive(Debug)]
pub struct RecentNames<V> {
    names: std::sync::Mutex<Names<V>>,
    cap: usize,
}

/// The names by value, and their order of arrival for dropping the oldest.
#[derive(Debug)]
struct Names<V> {
    /// Each name is stored once, shared by the map and the order.
    map: HashMap<std::sync::Arc<str>, V>,
    order: std::collections::VecDeque<std::sync::Arc<str>>,
}

impl<V: Clone> RecentNames<V> {
    pub fn new(cap: usize) -> RecentNames<V> {
        RecentNames {
            names: std::sync::Mutex::new(Names {
                map: HashMap::new(),
                order: std::collections::VecDeque::new(),
            }),
            cap: cap.max(1),
        }
    }

    pub fn get(&self, name: &str) -> Option<V> {
        let names = self.names.lock().ok()?;
        names.map.get(name).cloned()
    }

    pub fn put(&self, name: &str, value: V) {
        if let Ok(mut names) = self.names.lock() {
            if names.map.contains_key(name) {
                return;
            }
            if names.order.len() >= self.cap {
                if let Some(oldest) = names.order.pop_front() {
                    names.map.remove(&oldest);
                }
            }
            let name: std::sync::Arc<str> = std::sync::Arc::from(name);
            names.order.push_back(name.clone());
            names.map.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_names_keep_the_newest_cap_names() {
        let names = RecentNames::new(3);
        for (i, n) in ["a", "b", "c"].iter().enumerate() {
            names.put(n, i);
        }
        names.put("a", 9); // already there: kept as it was
        assert_eq!(names.get("a"), Some(0));
        names.put("d", 3); // drops the oldest, "a"
        assert_eq!(names.get("a"), None);
        assert_eq!(
            ["b", "c", "d"].map(|n| names.get(n)),
            [Some(1), Some(2), Some(3)]
        );
    }
}
