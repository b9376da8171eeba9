//! B+trees of byte-string keys and values over pages.
//!
//! A tree maps byte-string keys, ordered by plain byte comparison, to
//! byte-string values. It lives in pages reached through the
//! [`PageRead`](crate::storage::page::PageRead) and
//! [`PageWrite`](crate::storage::page::PageWrite) traits, so the same code
//! runs on a read snapshot, a write transaction and the in-memory test
//! store. A tree is named by its root page number, which never changes for
//! the life of the tree.
//!
//! - [`create`], [`get`], [`insert`], [`delete`], [`clear`], [`destroy`]:
//!   the operations on one tree;
//! - [`Cursor`] and [`Range`]: ordered traversal in both directions;
//! - [`verify`]: a full structural check for integrity checking;
//!   [`page_count`]: the pages a tree uses, for statistics;
//! - [`max_key_len`] and [`max_value_len`]: the size limits. Keys up to
//!   about a third of a page are accepted; values larger than about half
//!   a page go to overflow page chains.
//!
//! The page format is documented in `docs/format.md` (B+tree pages).
//!
//! Module layout: `node` (slotted node pages), `tree` (search and
//! structural changes), `overflow` (value chains), `cursor` (traversal),
//! `bulk` (bottom-up builds, for compaction), `verify` (checking).

pub(crate) mod bulk;
mod cursor;
mod node;
mod overflow;
mod tree;
mod verify;

pub use cursor::{prefix_bounds, Cursor, Range};
pub use tree::{
    clear, create, delete, destroy, get, get_guard, insert, insert_new, max_key_len, max_value_len,
    ValueGuard,
};
pub use verify::{page_count, verify, verify_all};

#[cfg(test)]
mod tests;
