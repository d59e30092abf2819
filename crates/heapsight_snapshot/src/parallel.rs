//! Two pieces of work at once, for the steps that follow a capture (packing, numbering,
//! compressing), on threads of their own rather than a pool: a pool started in the
//! parent would not exist in a forked capture child.

use std::sync::Mutex;

/// Runs `a` on a helper thread and `b` on the calling one, and returns both results.
/// When the system refuses a thread, `a` runs after `b` on the calling thread. A panic
/// in either is resumed in the caller.
pub fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    RA: Send,
    B: FnOnce() -> RB,
{
    // A failed spawn drops its closure, so the work waits in a slot that either the
    // helper or the fallback takes.
    let work = Mutex::new(Some(a));
    let take = || work.lock().unwrap_or_else(|e| e.into_inner()).take();
    std::thread::scope(|scope| {
        let helper = std::thread::Builder::new().spawn_scoped(scope, || take().map(|a| a()));
        let rb = b();
        let ra = match helper.map(|h| h.join()) {
            Ok(Ok(Some(ra))) => ra,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Ok(Ok(None)) | Err(_) => match take() {
                Some(a) => a(),
                None => unreachable!("the helper took the work and returned its result"),
            },
        };
        (ra, rb)
    })
}

/// Runs `f` on each half of `items`, one half on a helper thread. `f` takes a whole
/// half so that its loop is compiled with the per-element work inlined.
pub fn halves_mut<T: Send>(items: &mut [T], f: impl Fn(&mut [T]) + Sync) {
    let (first, second) = items.split_at_mut(items.len() / 2);
    let f = &f;
    join(move || f(first), move || f(second));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_returns_both_results() {
        let (a, b) = join(|| 2 + 2, || "four");
        assert_eq!((a, b), (4, "four"));
    }

    #[test]
    fn halves_mut_reaches_every_element_once() {
        for len in [0, 1, 2, 3, 1001] {
            let mut items: Vec<u64> = (0..len).collect();
            halves_mut(&mut items, |half| {
                half.iter_mut().for_each(|x| *x = *x * 2 + 1)
            });
            assert_eq!(items, (0..len).map(|x| x * 2 + 1).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_panic_in_the_helper_reaches_the_caller() {
        let caught = std::panic::catch_unwind(|| join(|| panic!("helper"), || ()));
        assert!(caught.is_err());
    }
}
