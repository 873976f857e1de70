//! Locks that survive a panic elsewhere. A `std` lock whose holder panicked is "poisoned", and `lock().expect(…)`
//! would then panic in every later request too, turning one bug into an outage. What these locks guard (caches,
//! in-memory heads rebuilt from a durable log, counters) stays usable, so the guard is taken as it is.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub trait MutexExt<T> {
    fn lock_unpoisoned(&self) -> MutexGuard<'_, T>;
}

impl<T> MutexExt<T> for Mutex<T> {
    fn lock_unpoisoned(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub trait RwLockExt<T> {
    fn read_unpoisoned(&self) -> RwLockReadGuard<'_, T>;
    fn write_unpoisoned(&self) -> RwLockWriteGuard<'_, T>;
}

impl<T> RwLockExt<T> for RwLock<T> {
    fn read_unpoisoned(&self) -> RwLockReadGuard<'_, T> {
        self.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_unpoisoned(&self) -> RwLockWriteGuard<'_, T> {
        self.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_poisoned_by_a_panic_stays_usable() {
        let cache = std::sync::Arc::new(Mutex::new(vec![1]));
        let holder = cache.clone();
        let _ = std::thread::spawn(move || {
            let _guard = holder.lock().unwrap();
            panic!("a bug while holding the lock");
        })
        .join();
        assert!(cache.is_poisoned());
        cache.lock_unpoisoned().push(2);
        assert_eq!(*cache.lock_unpoisoned(), vec![1, 2]);
    }
}
