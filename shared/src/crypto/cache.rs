//! The cache of unwrapped data keys: in memory only, bounded in time and in count, never
//! logged or written. It saves unwraps (KMS calls), never the read of the key item: whether a
//! key still exists is asked of the key table on every use (`store/data_keys.rs`), so a
//! cached key cannot outlive its destruction.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::{DataKey, Generation};

/// Unwrapped keys by reference and generation, each kept at most `ttl`, at most `capacity` in all.
#[derive(Debug)]
pub struct KeyCache {
    entries: HashMap<(String, Generation), (Arc<DataKey>, i64)>,
    capacity: usize,
    ttl_ms: i64,
}

impl KeyCache {
    pub fn new(capacity: usize, ttl: Duration) -> KeyCache {
        KeyCache { entries: HashMap::new(), capacity: capacity.max(1), ttl_ms: ttl.as_millis() as i64 }
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

    /// Forgets every generation of `key_ref` (after destroying it).
    pub fn forget(&mut self, key_ref: &str) {
        self.entries.retain(|(cached, _), _| cached != key_ref);
    }

    /// The count and time bounds it was made with.
    pub fn bounds(&self) -> (usize, Duration) {
        (self.capacity, Duration::from_millis(self.ttl_ms as u64))
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
        let mut cache = KeyCache::new(10, Duration::from_secs(60));
        let key = Arc::new(DataKey::generate());
        cache.insert("CUST#a", Arc::clone(&key), 0);
        assert!(cache.get("CUST#a", &key.generation, 59_999).is_some());
        assert!(cache.get("CUST#a", &[0; 16], 1).is_none(), "another generation");
        assert!(cache.get("CUST#a", &key.generation, 60_000).is_none());
        assert!(cache.is_empty(), "an expired key is dropped when met");
    }

    #[test]
    fn the_count_is_bounded_and_the_oldest_goes_first() {
        let mut cache = KeyCache::new(2, Duration::from_secs(60));
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
        let mut cache = KeyCache::new(10, Duration::from_secs(60));
        let (a, b) = (Arc::new(DataKey::generate()), Arc::new(DataKey::generate()));
        cache.insert("CUST#a", Arc::clone(&a), 0);
        cache.insert("CUST#a", Arc::clone(&b), 0);
        cache.insert("CUST#b", Arc::new(DataKey::generate()), 0);
        cache.forget("CUST#a");
        assert_eq!(cache.len(), 1);
    }
}
