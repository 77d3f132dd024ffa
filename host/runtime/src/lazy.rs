//! A value made on first use by whichever caller needs it first, while later callers wait for
//! that one make rather than starting their own: a plugin is compiled once however many
//! requests need it at the same moment. A failed make is reported to every caller that waited
//! on it and is not remembered: the next caller tries again (a full disk, a file being
//! replaced, a fix installed since).

use std::sync::{Condvar, Mutex, MutexGuard};

pub(crate) struct Lazy<T> {
    state: Mutex<State<T>>,
    changed: Condvar,
}

struct State<T> {
    value: Option<T>,
    /// Whether some caller is making the value now.
    making: bool,
    /// Counts the attempts, so that a waiter takes the failure of its own attempt only.
    attempt: u64,
    failure: Option<(u64, String)>,
}

impl<T: Clone> Lazy<T> {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State {
                value: None,
                making: false,
                attempt: 0,
                failure: None,
            }),
            changed: Condvar::new(),
        }
    }

    /// A value made already (an install compiles the plugin to check it).
    pub(crate) fn ready(value: T) -> Self {
        let lazy = Self::new();
        lazy.lock().value = Some(value);
        lazy
    }

    pub(crate) fn get(&self) -> Option<T> {
        self.lock().value.clone()
    }

    /// The value, made by `make` on this thread if nobody has made it and nobody is making it;
    /// else the value or the failure of the attempt under way.
    pub(crate) fn get_or_make(
        &self,
        make: impl FnOnce() -> Result<T, String>,
    ) -> Result<T, String> {
        let mut state = self.lock();
        loop {
            if let Some(value) = &state.value {
                return Ok(value.clone());
            }
            if !state.making {
                break;
            }
            let attempt = state.attempt;
            state = self
                .changed
                .wait_while(state, |s| s.making && s.attempt == attempt)
                .unwrap_or_else(|e| e.into_inner());
            if let Some((failed, message)) = &state.failure
                && *failed == attempt
            {
                return Err(message.clone());
            }
        }
        state.making = true;
        state.attempt += 1;
        let attempt = state.attempt;
        drop(state);
        // Should `make` panic, the guard still wakes the waiters with a failure.
        let mut guard = Attempt {
            lazy: self,
            attempt,
            outcome: Err("the compile panicked".into()),
        };
        guard.outcome = make();
        guard.outcome.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Publishes the outcome of one attempt when it ends, however it ends.
struct Attempt<'a, T: Clone> {
    lazy: &'a Lazy<T>,
    attempt: u64,
    outcome: Result<T, String>,
}

impl<T: Clone> Drop for Attempt<'_, T> {
    fn drop(&mut self) {
        let mut state = self.lazy.lock();
        match &self.outcome {
            Ok(value) => state.value = Some(value.clone()),
            Err(message) => state.failure = Some((self.attempt, message.clone())),
        }
        state.making = false;
        drop(state);
        self.lazy.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};
    use std::time::Duration;

    /// Runs `callers` threads that all ask at once; `make` sleeps so that they overlap.
    fn race(
        lazy: &Arc<Lazy<u32>>,
        makes: &Arc<AtomicUsize>,
        callers: usize,
        outcome: Result<u32, String>,
    ) -> Vec<Result<u32, String>> {
        let barrier = Arc::new(Barrier::new(callers));
        let threads: Vec<_> = (0..callers)
            .map(|_| {
                let (lazy, makes, barrier, outcome) = (
                    lazy.clone(),
                    makes.clone(),
                    barrier.clone(),
                    outcome.clone(),
                );
                std::thread::spawn(move || {
                    barrier.wait();
                    lazy.get_or_make(|| {
                        makes.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(200));
                        outcome
                    })
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    }

    #[test]
    fn concurrent_callers_make_the_value_once() {
        let (lazy, makes) = (Arc::new(Lazy::new()), Arc::new(AtomicUsize::new(0)));
        let results = race(&lazy, &makes, 8, Ok(7));
        assert_eq!(makes.load(Ordering::SeqCst), 1);
        assert!(results.iter().all(|r| r == &Ok(7)), "{results:?}");
        // Made once, kept.
        assert_eq!(lazy.get_or_make(|| Ok(8)), Ok(7));
        assert_eq!(makes.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_failure_reaches_every_waiter_and_the_next_caller_retries() {
        let (lazy, makes) = (Arc::new(Lazy::new()), Arc::new(AtomicUsize::new(0)));
        let results = race(&lazy, &makes, 6, Err("disk full".into()));
        assert_eq!(
            makes.load(Ordering::SeqCst),
            1,
            "one attempt for all six callers"
        );
        assert!(
            results.iter().all(|r| r == &Err("disk full".into())),
            "{results:?}"
        );
        assert_eq!(lazy.get(), None);
        // Not remembered: the next caller makes it again, and this time it works.
        let results = race(&lazy, &makes, 4, Ok(3));
        assert_eq!(makes.load(Ordering::SeqCst), 2);
        assert!(results.iter().all(|r| r == &Ok(3)), "{results:?}");
        assert_eq!(lazy.get(), Some(3));
    }

    #[test]
    fn a_panicking_make_fails_its_waiters_instead_of_hanging_them() {
        let lazy = Arc::new(Lazy::<u32>::new());
        let maker = {
            let lazy = lazy.clone();
            std::thread::spawn(move || {
                lazy.get_or_make(|| {
                    std::thread::sleep(Duration::from_millis(300));
                    panic!("boom")
                })
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        let waited = lazy.get_or_make(|| Ok(1));
        assert!(maker.join().is_err(), "the maker's thread panicked");
        // Either it waited on the panicking attempt (and was told), or it came after and made
        // the value itself; it never hangs.
        assert!(
            waited == Err("the compile panicked".into()) || waited == Ok(1),
            "{waited:?}"
        );
        assert_eq!(lazy.get_or_make(|| Ok(2)).unwrap(), waited.unwrap_or(2));
    }
}
