//! The catalog: the tree of trees.
//!
//! A B+tree rooted at `Header::catalog_root` maps each tree's name (UTF-8
//! bytes) to its [`TreeMeta`]: root page, entry count and serial. A tree's
//! root page moves only in a compaction, so the catalog changes only when
//! trees are created, dropped or moved, or when their entry counts, which
//! commits keep in page 0 meanwhile, are folded back into it (see
//! `storage::header::TreeCount`).

use serde::{Deserialize, Serialize};

use crate::error::{Error, PageNo, Result};
use crate::storage::header::Header;

/// Longest tree name in bytes.
pub const MAX_TREE_NAME: usize = 512;

/// What the catalog stores for one tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeMeta {
    /// Root page (fixed for the tree's life, but for compaction).
    pub root: PageNo,
    /// Number of entries.
    pub entries: u64,
    /// Random at the tree's creation, kept for its life: a handle to a
    /// dropped tree is told from a new tree of the same name that took
    /// over its root page. 0 for trees created before serials existed
    /// (their catalog records end after `entries`).
    pub serial: u64,
}

/// The catalog record of trees created before serials existed.
#[derive(Deserialize)]
struct TreeMetaV1 {
    root: PageNo,
    entries: u64,
}

impl TreeMeta {
    /// Encodes for the catalog.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("TreeMeta always serializes")
    }

    /// Decodes a catalog value of tree `name` (a record without a serial
    /// gives serial 0).
    pub fn decode(bytes: &[u8], name: &str) -> Result<TreeMeta> {
        postcard::from_bytes(bytes)
            .or_else(|_| {
                postcard::from_bytes(bytes).map(|v1: TreeMetaV1| TreeMeta {
                    root: v1.root,
                    entries: v1.entries,
                    serial: 0,
                })
            })
            .map_err(|e| {
                Error::corruption(None, format!("catalog entry of tree {name:?} is unreadable: {e}"))
            })
    }

    /// This record with the entry count that is current in the state
    /// whose header is `header`: the one page 0 holds for the tree, if it
    /// holds one, else the record's own.
    pub fn current(self, header: &Header) -> TreeMeta {
        match header.tree_count(self.root, self.serial) {
            Some(entries) => TreeMeta { entries, ..self },
            None => self,
        }
    }

    /// A fresh serial for a tree being created.
    pub fn new_serial() -> Result<u64> {
        let mut b = [0u8; 8];
        crate::storage::crypto::random_bytes(&mut b)?;
        // Never 0, which means "no serial recorded".
        Ok(u64::from_le_bytes(b).max(1))
    }
}

/// Checks a tree name: non-empty, at most [`MAX_TREE_NAME`] bytes.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid("tree name is empty"));
    }
    if name.len() > MAX_TREE_NAME {
        return Err(Error::invalid(format!(
            "tree name is {} bytes; the limit is {MAX_TREE_NAME}",
            name.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_without_a_serial_read_as_serial_0_and_old_readers_skip_it() {
        #[derive(Serialize)]
        struct V1 {
            root: PageNo,
            entries: u64,
        }
        let old = postcard::to_allocvec(&V1 { root: 7, entries: 300 }).unwrap();
        assert_eq!(TreeMeta::decode(&old, "t").unwrap(), TreeMeta { root: 7, entries: 300, serial: 0 });
        let new = TreeMeta { root: 7, entries: 300, serial: u64::MAX }.encode();
        assert_eq!(TreeMeta::decode(&new, "t").unwrap().serial, u64::MAX);
        // What a reader from before serials does with the longer record.
        let seen: TreeMetaV1 = postcard::from_bytes(&new).unwrap();
        assert_eq!((seen.root, seen.entries), (7, 300));
        assert!(TreeMeta::decode(&[0x80], "t").is_err());
        assert!(TreeMeta::new_serial().unwrap() != 0);
    }
}
