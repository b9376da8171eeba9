//! What upper layers derived from one committed state of the database,
//! kept for the next transaction that starts from the same state.
//!
//! Opening a collection decodes its metadata, name dictionary and index
//! list from the catalog: several B+tree descents and allocations, more
//! than a whole point read costs. A program that reads one document per
//! transaction (`db.get(id)` in a loop) would pay that every time although
//! nothing changed in between. A commit counter names one committed state
//! for as long as a pager lives (every commit, in any process, raises it by
//! one, and only committed states are ever seen), so anything computed
//! purely from the state at counter `c` is valid for every later view at
//! `c`. The memo keeps such values for the newest counter only: a commit
//! makes the next view's counter differ, and the memo starts over.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A value derived from one committed state (see the module comment).
pub type Derived = Arc<dyn Any + Send + Sync>;

/// Most values kept for one state: a program touching more names than this
/// between two commits finds the memo emptied and refilled.
const MAX_ENTRIES: usize = 64;

/// See the module documentation.
#[derive(Default)]
pub struct SnapshotMemo {
    /// The commit counter the values belong to, and the values by name.
    state: Mutex<(u64, HashMap<String, Derived>)>,
}

impl std::fmt::Debug for SnapshotMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        write!(f, "SnapshotMemo(counter {}, {} values)", s.0, s.1.len())
    }
}

impl SnapshotMemo {
    /// The value kept under `name` for the state at commit counter `counter`.
    pub fn get(&self, counter: u64, name: &str) -> Option<Derived> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.0 != counter {
            return None;
        }
        s.1.get(name).cloned()
    }

    /// Keeps `value` under `name` for the state at `counter`. A newer
    /// counter drops the values of the older one; an older counter (a long
    /// reader behind the latest commit) keeps nothing.
    pub fn put(&self, counter: u64, name: &str, value: Derived) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if counter < s.0 {
            return;
        }
        if counter > s.0 || s.1.len() >= MAX_ENTRIES {
            s.1.clear();
            s.0 = counter;
        }
        s.1.insert(name.to_string(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get_u32(m: &SnapshotMemo, c: u64, name: &str) -> Option<u32> {
        m.get(c, name).map(|v| *v.downcast_ref::<u32>().expect("u32"))
    }

    #[test]
    fn values_live_for_one_counter() {
        let m = SnapshotMemo::default();
        m.put(5, "a", Arc::new(1u32));
        assert_eq!(get_u32(&m, 5, "a"), Some(1));
        assert_eq!(get_u32(&m, 4, "a"), None);
        assert_eq!(get_u32(&m, 6, "a"), None);
        // An older reader keeps nothing and disturbs nothing.
        m.put(4, "b", Arc::new(2u32));
        assert_eq!(get_u32(&m, 4, "b"), None);
        assert_eq!(get_u32(&m, 5, "a"), Some(1));
        // A newer counter starts over.
        m.put(6, "b", Arc::new(3u32));
        assert_eq!(get_u32(&m, 5, "a"), None);
        assert_eq!(get_u32(&m, 6, "a"), None);
        assert_eq!(get_u32(&m, 6, "b"), Some(3));
    }

    #[test]
    fn bounded() {
        let m = SnapshotMemo::default();
        for i in 0..(MAX_ENTRIES as u32 * 3) {
            m.put(1, &i.to_string(), Arc::new(i));
            assert!(m.state.lock().unwrap().1.len() <= MAX_ENTRIES);
            assert_eq!(get_u32(&m, 1, &i.to_string()), Some(i));
        }
    }
}
