//! The engine's few uses of a second thread. Work that splits into
//! independent parts (encrypting a large commit's pages, encoding a large
//! JSON batch) runs partly on a scoped helper thread beside the caller's,
//! when the process may use more than one CPU. Nothing outlives the call
//! that started it, and a thread that cannot be had only means the caller
//! does all the work itself. The C ABI reads long lists of ids this way.

use std::sync::OnceLock;

/// Whether this process may run on more than one CPU, so that a second
/// thread can work beside the caller's. Asked once.
pub fn spare_core() -> bool {
    static SPARE: OnceLock<bool> = OnceLock::new();
    *SPARE.get_or_init(|| std::thread::available_parallelism().is_ok_and(|n| n.get() > 1))
}

/// `work(front)` and `work(back)` of `items` split in two halves, the back
/// one on a scoped second thread, concatenated in order. With no spare CPU
/// or fewer than `min_items` items, or when no thread can be started, the
/// caller's thread does it all. The first error (front half first) is the
/// result.
pub fn in_two_halves<T: Sync, R: Send, E: Send>(
    items: &[T],
    min_items: usize,
    work: impl Fn(&[T], usize) -> Result<Vec<R>, E> + Sync,
) -> Result<Vec<R>, E> {
    if items.len() < min_items.max(2) || !spare_core() {
        return work(items, 0);
    }
    let mid = items.len() / 2;
    let (front, back) = items.split_at(mid);
    let (done, rest) = beside(|| work(front, 0), || work(back, mid));
    let mut done = done?;
    done.extend(rest?);
    Ok(done)
}

/// [`in_two_halves`] for work that changes the items in place:
/// `work(front, 0)` and `work(back, mid)`, under the same conditions. The
/// first error (front half first) is the result.
pub fn in_two_halves_mut<T: Send, E: Send>(
    items: &mut [T],
    min_items: usize,
    work: impl Fn(&mut [T], usize) -> Result<(), E> + Sync,
) -> Result<(), E> {
    if items.len() < min_items.max(2) || !spare_core() {
        return work(items, 0);
    }
    let mid = items.len() / 2;
    let (front, back) = items.split_at_mut(mid);
    let (done, rest) = beside(|| work(front, 0), || work(back, mid));
    done.and(rest)
}

/// `front()` on the caller's thread and `back()` on a scoped helper thread
/// beside it, or after it on the caller's when no thread can be started.
fn beside<A, B: Send>(front: impl FnOnce() -> A, back: impl FnOnce() -> B + Send) -> (A, B) {
    // Whichever thread takes `back` runs it: the helper, or the caller
    // when the helper could not be started.
    let back = std::sync::Mutex::new(Some(back));
    let run_back = || back.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take().map(|f| f());
    std::thread::scope(|scope| {
        let helper = std::thread::Builder::new().name("obj-helper".into()).spawn_scoped(scope, run_back);
        let a = front();
        let b = match helper {
            Ok(handle) => handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Err(_) => run_back(),
        };
        (a, b.expect("back runs on one thread or the other"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_come_back_in_order_with_their_offsets() {
        let items: Vec<u32> = (0..1000).collect();
        let out = in_two_halves(&items, 10, |part, at| {
            Ok::<_, ()>(part.iter().enumerate().map(|(k, v)| (at + k, *v * 2)).collect())
        })
        .unwrap();
        assert_eq!(out.len(), 1000);
        assert!(out.iter().enumerate().all(|(k, &(at, v))| at == k && v == 2 * k as u32));
    }

    #[test]
    fn both_halves_change_their_items_in_place() {
        let mut items: Vec<usize> = vec![0; 1000];
        in_two_halves_mut(&mut items, 10, |part, at| {
            part.iter_mut().enumerate().for_each(|(k, v)| *v = at + k);
            Ok::<_, ()>(())
        })
        .unwrap();
        assert!(items.iter().enumerate().all(|(k, &v)| v == k));
        let r = in_two_halves_mut(&mut items, 10, |_, at| if at == 0 { Err("front") } else { Err("back") });
        assert_eq!(r, Err("front"), "the front half's error first");
        let r = in_two_halves_mut(&mut items, 10, |part, _| if part[0] == 0 { Ok(()) } else { Err(part[0]) });
        assert_eq!(r, Err(500), "the back half's error comes through");
    }

    #[test]
    fn small_inputs_stay_on_the_callers_thread_and_errors_come_through() {
        let caller = std::thread::current().id();
        let items = [1, 2, 3];
        in_two_halves(&items, 10, |_, _| {
            assert_eq!(std::thread::current().id(), caller);
            Ok::<Vec<()>, ()>(Vec::new())
        })
        .unwrap();
        let items: Vec<u32> = (0..100).collect();
        let r =
            in_two_halves(&items, 10, |part, _| if part.contains(&70) { Err(70) } else { Ok(part.to_vec()) });
        assert_eq!(r, Err(70));
        let r: Result<Vec<()>, _> =
            in_two_halves(&items, 10, |part, _| if part[0] == 0 { Err(0) } else { Err(1) });
        assert_eq!(r, Err(0), "the front half's error first");
    }
}
