//! The JSON answers of the batch reads (`obj_doc_get_many`,
//! `obj_find_unique_many`): a list with one element per id or key. In a
//! read transaction a long list is written in two halves, the back one on
//! a scoped second thread (`obj_engine::parallel`): the snapshot is shared,
//! while a write transaction's own pages are not, so its lists stay on one
//! thread.

use obj_engine::parallel::in_two_halves;
use obj_engine::Error;

use crate::txn::CollView;

/// The fewest items a batch read answers on two threads (a thread costs
/// tens of microseconds to start; an item about one).
const PARALLEL_ITEMS: usize = 256;

/// Where one part of a batch answer lies in the whole list.
#[derive(Clone, Copy)]
pub(crate) struct Part {
    at: usize,
    total: usize,
}

impl Part {
    /// The part's buffer, opening the list when the part comes first.
    pub(crate) fn start(self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(64);
        if self.at == 0 {
            buf.push(b'[');
        }
        buf
    }

    /// Before the part's element `i`: the comma after the one before it.
    pub(crate) fn separate(self, buf: &mut Vec<u8>, i: usize) {
        if self.at + i > 0 {
            buf.push(b',');
        }
    }

    /// The position of the part's element `i` in the list (for messages).
    pub(crate) fn position(self, i: usize) -> usize {
        self.at + i
    }

    /// The elements after the part's element `i` of `len` that the part's
    /// buffer will hold: the later parts are appended to the first, so the
    /// first reserves room for the whole list.
    pub(crate) fn after(self, i: usize, len: usize) -> usize {
        len - i - 1 + if self.at == 0 { self.total - len } else { 0 }
    }
}

/// The JSON list answering `items`, each part written by `part` (which
/// uses its [`Part`] for the list's punctuation and room).
pub(crate) fn json_list<'v, T: Sync>(
    view: &Option<CollView<'v>>,
    items: &[T],
    part: impl Fn(&Option<CollView<'v>>, &[T], Part) -> Result<Vec<u8>, Error> + Sync,
) -> Result<Vec<u8>, Error> {
    let total = items.len();
    let mut buf = match view {
        Some(CollView::Read(c)) => {
            let c = *c;
            in_two_halves(items, PARALLEL_ITEMS, |items, at| {
                part(&Some(CollView::Read(c)), items, Part { at, total })
            })?
        }
        _ => part(view, items, Part { at: 0, total })?,
    };
    buf.push(b']');
    Ok(buf)
}
