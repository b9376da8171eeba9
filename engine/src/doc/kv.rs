//! Key-value namespaces: plain byte keyspaces living in the same file and
//! the same transactions as collections. Namespace `ns` is the catalog tree
//! `$kv/<ns>`, so user namespaces never collide with the engine's trees.

use std::ops::Bound;

use crate::doc::collection::{check_component_name, refuse_nul_in_new_name};
use crate::error::Result;
use crate::txn::EngineTrees;
use crate::txn::{ReadTxn, ReadableTxn, Tree, WriteTxn};

/// A boxed stream of `(key, value)` pairs.
pub type KvIter<'a> = Box<dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> + 'a>;

fn tree_name(ns: &str) -> Result<String> {
    check_component_name("namespace", ns)?;
    Ok(format!("$kv/{ns}"))
}

fn find<T: ReadableTxn>(txn: &T, ns: &str) -> Result<Option<Tree>> {
    txn.find_engine_tree(&tree_name(ns)?)
}

/// `get` in namespace `ns` (a missing namespace is empty).
pub fn kv_get<T: ReadableTxn>(txn: &T, ns: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
    match find(txn, ns)? {
        Some(t) => txn.get(&t, key),
        None => Ok(None),
    }
}

/// The number of entries in namespace `ns` (0 for a missing one), kept
/// with its tree in the catalog: no walk.
pub fn kv_count<T: ReadableTxn>(txn: &T, ns: &str) -> Result<u64> {
    match find(txn, ns)? {
        Some(t) => txn.count(&t),
        None => Ok(0),
    }
}

/// Entries of `ns` with keys in the bounds, forward or backward.
pub fn kv_range<'a, T: ReadableTxn>(
    txn: &'a T,
    ns: &str,
    start: Bound<&[u8]>,
    end: Bound<&[u8]>,
    reverse: bool,
) -> Result<KvIter<'a>> {
    match find(txn, ns)? {
        Some(t) => Ok(Box::new(txn.range(&t, start, end, reverse)?)),
        None => Ok(Box::new(std::iter::empty())),
    }
}

/// Entries of `ns` whose key starts with `prefix`, forward or backward.
pub fn kv_prefix<'a, T: ReadableTxn>(
    txn: &'a T,
    ns: &str,
    prefix: &[u8],
    reverse: bool,
) -> Result<KvIter<'a>> {
    match find(txn, ns)? {
        Some(t) => Ok(Box::new(txn.prefix(&t, prefix, reverse)?)),
        None => Ok(Box::new(std::iter::empty())),
    }
}

/// Names of all key-value namespaces, in byte order.
pub fn kv_namespaces<T: ReadableTxn>(txn: &T) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for tree in txn.list_trees()? {
        if let Some(ns) = tree.strip_prefix("$kv/") {
            out.push(ns.to_string());
        }
    }
    Ok(out)
}

impl ReadTxn {
    /// Names of all key-value namespaces, in byte order.
    pub fn kv_list(&self) -> Result<Vec<String>> {
        kv_namespaces(self)
    }

    /// The value of `key` in namespace `ns`.
    pub fn kv_get(&self, ns: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        kv_get(self, ns, key)
    }

    /// The number of entries in namespace `ns` (0 for a missing one).
    pub fn kv_count(&self, ns: &str) -> Result<u64> {
        kv_count(self, ns)
    }

    /// Entries of namespace `ns` in a key range.
    pub fn kv_range(
        &self,
        ns: &str,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        reverse: bool,
    ) -> Result<KvIter<'_>> {
        kv_range(self, ns, start, end, reverse)
    }

    /// Entries of namespace `ns` with a key prefix.
    pub fn kv_prefix(&self, ns: &str, prefix: &[u8], reverse: bool) -> Result<KvIter<'_>> {
        kv_prefix(self, ns, prefix, reverse)
    }
}

impl WriteTxn {
    /// Stores `value` under `key` in namespace `ns` (created on first use);
    /// true if it replaced a value.
    pub fn kv_put(&mut self, ns: &str, key: &[u8], value: &[u8]) -> Result<bool> {
        let (t, _) = self.namespace_tree(ns)?;
        self.insert(&t, key, value)
    }

    /// Creates namespace `ns` if it is missing, so that it exists (and is
    /// listed, exported and backed up) while empty; true if it was created.
    pub fn kv_create(&mut self, ns: &str) -> Result<bool> {
        self.namespace_tree(ns).map(|(_, created)| created)
    }

    /// The tree of namespace `ns`, created if missing (a new name may hold
    /// no NUL); true if it was created.
    fn namespace_tree(&mut self, ns: &str) -> Result<(Tree, bool)> {
        let name = tree_name(ns)?;
        if let Some(t) = self.find_engine_tree(&name)? {
            return Ok((t, false));
        }
        refuse_nul_in_new_name("namespace", ns)?;
        Ok((self.create_engine_tree(&name)?, true))
    }

    /// Deletes `key` from namespace `ns`; true if it existed.
    pub fn kv_delete(&mut self, ns: &str, key: &[u8]) -> Result<bool> {
        match find(self, ns)? {
            Some(t) => self.delete(&t, key),
            None => Ok(false),
        }
    }

    /// Drops namespace `ns` and all its entries (no-op if missing); true
    /// if it existed.
    pub fn kv_drop(&mut self, ns: &str) -> Result<bool> {
        let name = tree_name(ns)?;
        if self.find_engine_tree(&name)?.is_none() {
            return Ok(false);
        }
        self.drop_engine_tree(&name)?;
        Ok(true)
    }

    /// Names of all key-value namespaces, in byte order.
    pub fn kv_list(&self) -> Result<Vec<String>> {
        kv_namespaces(self)
    }

    /// The value of `key` in namespace `ns`, as this transaction sees it.
    pub fn kv_get(&self, ns: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        kv_get(self, ns, key)
    }

    /// The number of entries in namespace `ns`, as this transaction sees
    /// it (0 for a missing one).
    pub fn kv_count(&self, ns: &str) -> Result<u64> {
        kv_count(self, ns)
    }

    /// Entries of namespace `ns` in a key range.
    pub fn kv_range(
        &self,
        ns: &str,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        reverse: bool,
    ) -> Result<KvIter<'_>> {
        kv_range(self, ns, start, end, reverse)
    }

    /// Entries of namespace `ns` with a key prefix.
    pub fn kv_prefix(&self, ns: &str, prefix: &[u8], reverse: bool) -> Result<KvIter<'_>> {
        kv_prefix(self, ns, prefix, reverse)
    }
}
