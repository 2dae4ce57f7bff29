//! Caps on open WatchTransaction streams, per user and per instance, so one user
//! opening streams without end cannot take the instance's memory and doorbell work
//! from the others. A [`WatchPermit`] is taken before the stream subscribes and freed
//! when the stream is dropped, however it ends.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

/// Which cap a new stream ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitHit {
    #[error("this user already has {0} WatchTransaction streams open")]
    User(usize),
    #[error("this instance already serves {0} WatchTransaction streams")]
    Instance(usize),
}

/// The caps and the streams counted against them. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WatchLimits {
    inner: Arc<Counts>,
}

#[derive(Debug)]
struct Counts {
    per_user: usize,
    per_instance: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_user: HashMap<String, usize>,
}

impl WatchLimits {
    pub fn new(per_user: usize, per_instance: usize) -> Self {
        WatchLimits {
            inner: Arc::new(Counts {
                per_user,
                per_instance,
                open: Mutex::new(Open::default()),
            }),
        }
    }

    /// Counts a stream for `user` (or only against the instance cap for `None`: a
    /// service acting for many users), if both caps allow it.
    pub fn acquire(&self, user: Option<&str>) -> Result<WatchPermit, LimitHit> {
        let counts = &self.inner;
        let mut open = counts.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.total >= counts.per_instance {
            return Err(LimitHit::Instance(counts.per_instance));
        }
        if let Some(user) = user {
            let mine = open.by_user.entry(user.to_owned()).or_default();
            if *mine >= counts.per_user {
                return Err(LimitHit::User(counts.per_user));
            }
            *mine += 1;
        }
        open.total += 1;
        Ok(WatchPermit {
            limits: self.inner.clone(),
            user: user.map(str::to_owned),
        })
    }

    /// Streams counted on this instance.
    pub fn open(&self) -> usize {
        self.inner
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }
}

/// One counted stream; dropping it frees its place.
#[derive(Debug)]
pub struct WatchPermit {
    limits: Arc<Counts>,
    user: Option<String>,
}

impl Drop for WatchPermit {
    fn drop(&mut self) {
        let mut open = self
            .limits
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(user) = &self.user
            && let Some(mine) = open.by_user.get_mut(user)
        {
            *mine = mine.saturating_sub(1);
            if *mine == 0 {
                open.by_user.remove(user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_at_the_cap_is_refused_while_others_still_get_streams() {
        let limits = WatchLimits::new(2, 10);
        let first = limits.acquire(Some("mallory")).expect("1st");
        let _second = limits.acquire(Some("mallory")).expect("2nd");
        assert_eq!(
            limits.acquire(Some("mallory")).err(),
            Some(LimitHit::User(2))
        );
        let _alice = limits.acquire(Some("alice")).expect("another user");
        drop(first);
        let _third = limits.acquire(Some("mallory")).expect("a freed place");
        assert_eq!(limits.open(), 3);
    }

    #[test]
    fn the_instance_cap_counts_every_stream_and_frees_them_on_drop() {
        let limits = WatchLimits::new(5, 3);
        let permits: Vec<_> = ["a", "b"]
            .iter()
            .map(|u| limits.acquire(Some(u)).expect("under the cap"))
            .chain([limits.acquire(None).expect("a service stream")])
            .collect();
        assert_eq!(limits.acquire(Some("c")).err(), Some(LimitHit::Instance(3)));
        assert_eq!(limits.acquire(None).err(), Some(LimitHit::Instance(3)));
        drop(permits);
        assert_eq!(limits.open(), 0);
        assert!(limits.inner.open.lock().expect("lock").by_user.is_empty());
    }
}
