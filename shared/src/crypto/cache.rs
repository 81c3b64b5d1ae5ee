//! The cache of unwrapped data keys: in memory only, bounded in time and in count, never
//! logged or written. It saves unwraps (KMS calls); and, for a short lease after a read of
//! the key item found the key, that read too.
//!
//! **A lease.** A read of the key item that finds the key grants a lease on it, dated before
//! the read was sent: for `lease` from then, a use of the key skips the read; after it, the
//! next use reads the item again. A purge waits out the lease after destroying a key before
//! it issues its receipt (`store/purge`), so a lease taken before the destruction has run out
//! by the receipt, and after the receipt no instance, however warm, opens the key's content.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::{DataKey, Generation};
use crate::clock::Stamp;

/// The longest lease any function may hold (`KEY_LEASE_MS` above it is refused at init, and a
/// cache built from a configuration holds no longer one): what a purge waits out, whatever
/// its own setting, so no function configured otherwise outlasts the purge's wait. A second:
/// a key read a second spares most reads of a busy customer's key already.
pub const MAX_KEY_LEASE: Duration = Duration::from_millis(3_000);

/// Unwrapped keys by reference and generation, each kept at most `ttl`, at most `capacity` in
/// all; and the leases on them, at most `capacity` too.
#[derive(Debug)]
pub struct KeyCache {
    entries: HashMap<(String, Generation), (Arc<DataKey>, i64)>,
    leases: HashMap<String, Lease>,
    capacity: usize,
    ttl_ms: i64,
    lease: Duration,
}

/// What a read of a key item found, and when it was sent.
#[derive(Debug, Clone, Copy)]
struct Lease {
    generation: Generation,
    /// A guest key's `until` as read (or moved since by this instance); it only grows.
    until: Option<i64>,
    read_at: Stamp,
}

impl KeyCache {
    pub fn new(capacity: usize, ttl: Duration, lease: Duration) -> KeyCache {
        let capacity = capacity.max(1);
        KeyCache { entries: HashMap::new(), leases: HashMap::new(), capacity, ttl_ms: ttl.as_millis() as i64, lease }
    }

    /// The key `key_ref`, its guest `until` and when the read that found it was sent, without
    /// a read, while a lease on it runs at `now` ([`KeyCache::runs`]).
    pub fn leased(&mut self, key_ref: &str, now: Stamp, now_ms: i64) -> Option<(Arc<DataKey>, Option<i64>, Stamp)> {
        let lease = *self.leases.get(key_ref)?;
        if !self.runs(lease.read_at, now) {
            self.leases.remove(key_ref);
            return None;
        }
        let key = self.get(key_ref, &lease.generation, now_ms)?;
        Some((key, lease.until, lease.read_at))
    }

    /// Whether a lease from a read sent at `read_at` still runs at `now`: less than the lease
    /// passed since, on both scales of the clock ([`Stamp::elapsed_to`]; a clock set back ends it).
    pub fn runs(&self, read_at: Stamp, now: Stamp) -> bool {
        read_at.elapsed_to(now).is_some_and(|held| held < self.lease)
    }

    /// Grants a lease on `key_ref` of `generation` (cached already), found by a read sent at
    /// `read_at`. When the leases are at their bound, drops the run-out ones; if none has,
    /// grants nothing (the next use reads).
    pub fn grant(&mut self, key_ref: &str, generation: Generation, until: Option<i64>, read_at: Stamp) {
        if self.lease.is_zero() {
            return;
        }
        if self.leases.len() >= self.capacity && !self.leases.contains_key(key_ref) {
            let bound = self.lease;
            self.leases.retain(|_, l| l.read_at.elapsed_to(read_at).is_some_and(|held| held < bound));
            if self.leases.len() >= self.capacity {
                return;
            }
        }
        self.leases.insert(key_ref.to_owned(), Lease { generation, until, read_at });
    }

    /// Notes that this instance moved `key_ref`'s guest `until` to `until`.
    pub fn moved_until(&mut self, key_ref: &str, until: i64) {
        if let Some(lease) = self.leases.get_mut(key_ref) {
            lease.until = lease.until.map(|held| held.max(until));
        }
    }

    /// The key `key_ref` of `generation`, if cached and not older than the cache's time bound.
    pub fn get(&mut self, key_ref: &str, generation: &Generation, now_ms: i64) -> Option<Arc<DataKey>> {
        let entry = (key_ref.to_owned(), *generation);
        match self.entries.get(&entry) {
            Some((key, expires)) if *expires > now_ms => Some(Arc::clone(key)),
            Some(_) => {
                self.entries.remove(&entry);
                None
            }
            None => None,
        }
    }

    /// Keeps `key`; when full, drops the expired keys, then the one closest to expiry.
    pub fn insert(&mut self, key_ref: &str, key: Arc<DataKey>, now_ms: i64) {
        if self.entries.len() >= self.capacity {
            self.entries.retain(|_, (_, expires)| *expires > now_ms);
        }
        if self.entries.len() >= self.capacity {
            if let Some(oldest) = self.entries.iter().min_by_key(|(_, (_, expires))| *expires).map(|(k, _)| k.clone()) {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert((key_ref.to_owned(), key.generation), (key, now_ms + self.ttl_ms));
    }

    /// Forgets every generation of `key_ref` and its lease (after destroying it, or a read
    /// that found it gone).
    pub fn forget(&mut self, key_ref: &str) {
        self.entries.retain(|(cached, _), _| cached != key_ref);
        self.leases.remove(key_ref);
    }

    /// The count, time and lease bounds it was made with.
    pub fn bounds(&self) -> (usize, Duration, Duration) {
        (self.capacity, Duration::from_millis(self.ttl_ms as u64), self.lease)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_served_until_its_time_bound() {
        let mut cache = KeyCache::new(10, Duration::from_secs(60), Duration::ZERO);
        let key = Arc::new(DataKey::generate());
        cache.insert("CUST#a", Arc::clone(&key), 0);
        assert!(cache.get("CUST#a", &key.generation, 59_999).is_some());
        assert!(cache.get("CUST#a", &[0; 16], 1).is_none(), "another generation");
        assert!(cache.get("CUST#a", &key.generation, 60_000).is_none());
        assert!(cache.is_empty(), "an expired key is dropped when met");
    }

    #[test]
    fn the_count_is_bounded_and_the_oldest_goes_first() {
        let mut cache = KeyCache::new(2, Duration::from_secs(60), Duration::ZERO);
        let keys: Vec<_> = (0..3).map(|_| Arc::new(DataKey::generate())).collect();
        for (at, key) in keys.iter().enumerate() {
            cache.insert(&format!("CUST#{at}"), Arc::clone(key), at as i64);
        }
        assert_eq!(cache.len(), 2);
        assert!(cache.get("CUST#0", &keys[0].generation, 3).is_none());
        assert!(cache.get("CUST#2", &keys[2].generation, 3).is_some());
    }

    #[test]
    fn forgetting_a_reference_drops_every_generation_of_it() {
        let mut cache = KeyCache::new(10, Duration::from_secs(60), Duration::ZERO);
        let (a, b) = (Arc::new(DataKey::generate()), Arc::new(DataKey::generate()));
        cache.insert("CUST#a", Arc::clone(&a), 0);
        cache.insert("CUST#a", Arc::clone(&b), 0);
        cache.insert("CUST#b", Arc::new(DataKey::generate()), 0);
        cache.forget("CUST#a");
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_lease_serves_the_key_until_its_bound_and_not_across_a_clock_set_back() {
        let clock = crate::clock::Clock::manual();
        // (a lease of a minute: the real time the test takes, which the clock counts too, is a sliver of it)
        let mut cache = KeyCache::new(10, Duration::from_secs(3_600), Duration::from_secs(60));
        let key = Arc::new(DataKey::generate());
        let read_at = clock.stamp();
        cache.insert("CUST#a", Arc::clone(&key), clock.now_epoch_millis());
        cache.grant("CUST#a", key.generation, None, read_at);
        clock.advance(Duration::from_secs(59));
        assert!(cache.leased("CUST#a", clock.stamp(), clock.now_epoch_millis()).is_some());
        clock.advance(Duration::from_secs(1));
        assert!(cache.leased("CUST#a", clock.stamp(), clock.now_epoch_millis()).is_none(), "the lease ran out");
        assert!(cache.get("CUST#a", &key.generation, clock.now_epoch_millis()).is_some(), "the unwrapped key stays cached");

        cache.grant("CUST#a", key.generation, None, clock.stamp());
        clock.rewind(Duration::from_secs(10));
        assert!(cache.leased("CUST#a", clock.stamp(), clock.now_epoch_millis()).is_none(), "a clock set back ends the lease");
    }

    #[test]
    fn leases_are_bounded_in_count_and_forgotten_with_their_key() {
        let clock = crate::clock::Clock::manual();
        let mut cache = KeyCache::new(2, Duration::from_secs(60), Duration::from_millis(1_000));
        let keys: Vec<_> = (0..3).map(|_| Arc::new(DataKey::generate())).collect();
        for (at, key) in keys.iter().enumerate() {
            cache.insert(&format!("CUST#{at}"), Arc::clone(key), clock.now_epoch_millis());
            cache.grant(&format!("CUST#{at}"), key.generation, None, clock.stamp());
        }
        assert_eq!(cache.leases.len(), 2, "no lease over the bound while all run");
        clock.advance(Duration::from_secs(2));
        cache.grant("CUST#2", keys[2].generation, None, clock.stamp());
        assert_eq!(cache.leases.len(), 1, "run-out leases make room");
        cache.forget("CUST#2");
        assert!(cache.leased("CUST#2", clock.stamp(), clock.now_epoch_millis()).is_none());
        assert!(cache.leases.is_empty());
    }
}
