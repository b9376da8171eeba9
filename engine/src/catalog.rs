//! The catalog: the tree of trees.
//!
//! A B+tree rooted at `Header::catalog_root` maps each tree's name (UTF-8
//! bytes) to its [`TreeMeta`]: root page and entry count. A tree's root page
//! never moves, so the catalog changes only when trees are created, dropped,
//! or change their entry count.

use serde::{Deserialize, Serialize};

use crate::error::{Error, PageNo, Result};

/// Longest tree name in bytes.
pub const MAX_TREE_NAME: usize = 512;

/// What the catalog stores for one tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeMeta {
    /// Root page (fixed for the tree's life).
    pub root: PageNo,
    /// Number of entries.
    pub entries: u64,
}

impl TreeMeta {
    /// Encodes for the catalog.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("TreeMeta always serializes")
    }

    /// Decodes a catalog value of tree `name`.
    pub fn decode(bytes: &[u8], name: &str) -> Result<TreeMeta> {
        postcard::from_bytes(bytes).map_err(|e| {
            Error::corruption(None, format!("catalog entry of tree {name:?} is unreadable: {e}"))
        })
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
