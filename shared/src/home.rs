//! The home region of a session or a customer: the one region where its items are written,
//! known from the request alone, without a read.
//!
//! **Slots.** Every session and every signed-in customer belongs to one of [`SLOTS`] slots,
//! fixed for its life:
//! - a signed-in customer's slot is a stable hash of the customer id ([`customer_slot`]), and
//!   every session they create lives there too, because their purge ledger, their registry and
//!   each session's META are written together in one transaction;
//! - a server-made session id is a UUIDv8 that carries its slot ([`new_session_id`]): version
//!   8, the nibble after it `7`, the next byte the slot (`xxxxxxxx-xxxx-87SS-…`), still a
//!   hyphenated UUID that passes validation;
//! - a guest's client-chosen id that carries no slot gets a stable hash of the id ([`id_slot`]).
//!
//! **Regions.** `REGIONS` lists the regions in a fixed order, the same everywhere. Slot `s`
//! belongs to `REGIONS[s % n]` unless the home map moved that region: a failover moves every
//! slot of a region to another one and raises the epoch ([`HomeMap`]). Regions are added
//! only at the end of the list, and a slot's home changes only through the map.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How many slots there are: one byte of a session id.
pub const SLOTS: usize = 256;
/// The nibble after the version in a session id that carries a slot.
const SLOT_MARKER: u8 = 0x87;

/// A session id that carries `slot`: random apart from the version, the marker and the slot.
pub fn new_session_id(slot: u8) -> Uuid {
    let mut bytes = Uuid::new_v4().into_bytes();
    bytes[6] = SLOT_MARKER;
    bytes[7] = slot;
    Uuid::from_bytes(bytes)
}

/// The slot a session id carries, when it was made by [`new_session_id`] (or looks like it).
pub fn carried_slot(id: &Uuid) -> Option<u8> {
    let bytes = id.as_bytes();
    (bytes[6] == SLOT_MARKER && bytes[8] & 0xC0 == 0x80).then_some(bytes[7])
}

/// The slot of a session id: the one it carries, else a stable hash of the id.
pub fn id_slot(id: &Uuid) -> u8 {
    carried_slot(id).unwrap_or_else(|| stable_hash(id.hyphenated().to_string().as_bytes()))
}

/// The slot of a signed-in customer, and of every session they own.
pub fn customer_slot(customer_id: &str) -> u8 {
    stable_hash(customer_id.as_bytes())
}

/// FNV-1a (64 bits) folded to a byte: the same on every machine and every release.
fn stable_hash(bytes: &[u8]) -> u8 {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x100_0000_01b3));
    (hash ^ (hash >> 32) ^ (hash >> 16) ^ (hash >> 8)) as u8
}

/// Who asks, as far as the home rule needs to know.
#[derive(Debug, Clone, Copy)]
pub struct Asker<'a> {
    pub customer_id: &'a str,
    pub guest: bool,
    /// `support` or `privacy`: may act on other customers' sessions.
    pub staff: bool,
}

/// The slot whose home serves a request on session `id`. A signed-in customer's own
/// sessions live in their slot; staff acting on a session go where its id points when it
/// carries a slot; a guest's session is where its id points.
pub fn session_request_slot(asker: Asker<'_>, id: &Uuid) -> u8 {
    match (asker.guest, asker.staff, carried_slot(id)) {
        (true, _, _) => id_slot(id),
        (false, true, Some(slot)) => slot,
        _ => customer_slot(asker.customer_id),
    }
}

/// Which region is home to each slot: the regions in their fixed order, and the regions a
/// failover moved, with the epoch of the last move. Serialized as the home map file
/// (`{"epoch": 1, "moved": {"us-east-1": "eu-west-1"}}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HomeMap {
    #[serde(default)]
    pub epoch: u64,
    /// A region whose slots now belong to another: from → to.
    #[serde(default)]
    pub moved: BTreeMap<String, String>,
    /// Sessions a failover moved while their old home had writes the new one lacked: session
    /// id → the old home. Nothing writes them until those writes have arrived, so that a late
    /// write of the old home never meets a new one on the same key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fenced: BTreeMap<String, String>,
    /// Regions a failover moved away from without fencing sessions (as on AWS, which lists
    /// nothing unreplicated), whose late writes may still arrive. The turns the new home
    /// writes meanwhile are keyed by the new epoch ([`crate::chain`]); what no key can keep
    /// apart is a customer's registry, so no purge runs until each is back and delivered.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub awaiting: std::collections::BTreeSet<String>,
}

impl HomeMap {
    /// Whether writes to `session` wait for its old home's writes to arrive.
    pub fn is_fenced(&self, session: &Uuid) -> bool {
        self.fenced.contains_key(&session.hyphenated().to_string())
    }
}

/// The regions and their home map: everything needed to name a slot's home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Homes {
    pub regions: Vec<String>,
    pub map: HomeMap,
}

impl Homes {
    /// `REGIONS` (comma-separated, in their fixed order) and the home map. `None` when fewer
    /// than one region is named: a single-region deployment has no homes to tell apart.
    pub fn new(regions: &str, map: HomeMap) -> Option<Homes> {
        let regions: Vec<String> = regions.split(',').map(str::trim).filter(|r| !r.is_empty()).map(str::to_owned).collect();
        (!regions.is_empty()).then_some(Homes { regions, map })
    }

    /// The region home to `slot`: its region by position, followed through the moves.
    pub fn home_of(&self, slot: u8) -> &str {
        self.home_of_region(self.region_of(slot))
    }

    /// The region `slot` belongs to by position, before any move: the region named in a
    /// guest day's key ([`crate::keys::regional_guest_data_key`]), fixed for the slot's life.
    pub fn region_of(&self, slot: u8) -> &str {
        &self.regions[usize::from(slot) % self.regions.len()]
    }

    /// The region home to the slots of `region` now: `region` itself, followed through the
    /// moves (a chain of moves is followed to its end; a cycle stops where it closes).
    pub fn home_of_region<'a>(&'a self, region: &'a str) -> &'a str {
        let mut region = region;
        for _ in 0..self.regions.len() {
            match self.map.moved.get(region) {
                Some(to) if to != region => region = to,
                _ => break,
            }
        }
        region
    }

    /// A slot whose home is `region`, for a session made there without a slot of its own (a
    /// guest's); `None` when every slot of `region` has moved away.
    pub fn slot_homed_in(&self, region: &str) -> Option<u8> {
        (0..SLOTS).map(|slot| slot as u8).find(|slot| self.home_of(*slot) == region)
    }

    /// Moves every slot whose home is `from` to `to`, under a new epoch.
    pub fn fail_over(&mut self, from: &str, to: &str) {
        for target in self.map.moved.values_mut().filter(|target| target.as_str() == from) {
            *target = to.to_owned();
        }
        self.map.moved.insert(from.to_owned(), to.to_owned());
        self.map.moved.remove(to);
        self.map.epoch += 1;
    }
}

/// Where the home map comes from: fixed (`HOME_MAP`, JSON), or a file read again at every
/// call (`HOME_MAP_FILE`, which `make failover` rewrites), so that a failover reaches a running
/// stack. A missing file is the empty map; an unreadable one is an error, never a guess.
#[derive(Debug, Clone)]
pub enum HomeSource {
    Fixed(Homes),
    File { regions: String, path: std::path::PathBuf },
}

impl HomeSource {
    /// From `REGIONS`, `HOME_MAP_FILE` and `HOME_MAP`; `None` without `REGIONS`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<HomeSource>, String> {
        let Some(regions) = lookup("REGIONS").filter(|r| !r.trim().is_empty()) else { return Ok(None) };
        if let Some(path) = lookup("HOME_MAP_FILE").filter(|p| !p.is_empty()) {
            return Ok(Some(HomeSource::File { regions, path: path.into() }));
        }
        let map = match lookup("HOME_MAP").filter(|m| !m.trim().is_empty()) {
            Some(json) => serde_json::from_str(&json).map_err(|e| format!("HOME_MAP is not a home map: {e}"))?,
            None => HomeMap::default(),
        };
        Ok(Homes::new(&regions, map).map(HomeSource::Fixed))
    }

    /// The homes as they are now.
    pub fn homes(&self) -> Result<Homes, String> {
        match self {
            HomeSource::Fixed(homes) => Ok(homes.clone()),
            HomeSource::File { regions, path } => {
                let map = match std::fs::read_to_string(path) {
                    Ok(text) => serde_json::from_str(&text).map_err(|e| format!("{}: not a home map: {e}", path.display()))?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => HomeMap::default(),
                    Err(e) => return Err(format!("{}: {e}", path.display())),
                };
                Homes::new(regions, map).ok_or_else(|| "REGIONS names no region".to_owned())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two() -> Homes {
        Homes::new("us-east-1, eu-west-1", HomeMap::default()).unwrap()
    }

    #[test]
    fn a_server_made_id_is_a_hyphenated_uuid_that_carries_its_slot() {
        for slot in [0u8, 1, 77, 255] {
            let id = new_session_id(slot);
            assert_eq!(carried_slot(&id), Some(slot));
            assert_eq!(id_slot(&id), slot);
            assert_eq!(id.get_version_num(), 8);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
            let text = id.hyphenated().to_string();
            assert_eq!(crate::model::hyphenated_uuid(&text), Some(id), "it passes validation");
        }
    }

    #[test]
    fn a_random_v4_id_carries_no_slot_and_hashes_to_the_same_slot_every_time() {
        let id = Uuid::parse_str("6f1c2a9e-3b4d-4c8a-9e21-5a7b8c9d0e1f").unwrap();
        assert_eq!(carried_slot(&id), None);
        assert_eq!(id_slot(&id), id_slot(&id));
        // Pinned: a change of the hash would move every guest session of every deployment.
        assert_eq!(customer_slot("alice"), customer_slot("alice"));
        assert_eq!((customer_slot("alice"), customer_slot("bob"), id_slot(&id)), (PINNED.0, PINNED.1, PINNED.2));
    }
    const PINNED: (u8, u8, u8) = (37, 13, 196);

    #[test]
    fn hashed_slots_spread_over_both_regions() {
        let homes = two();
        let east = (0..1000).filter(|n| homes.home_of(customer_slot(&format!("customer-{n}"))) == "us-east-1").count();
        assert!((400..600).contains(&east), "{east} of 1000 in the east");
    }

    #[test]
    fn a_signed_in_customer_is_served_in_their_slot_and_staff_follow_the_id() {
        let alice = Asker { customer_id: "alice", guest: false, staff: false };
        let carol = Asker { customer_id: "carol", guest: false, staff: true };
        let guest = Asker { customer_id: "guest-7", guest: true, staff: false };
        let other_slot = customer_slot("alice").wrapping_add(1);
        let made = new_session_id(customer_slot("alice"));
        let chosen = Uuid::parse_str("6f1c2a9e-3b4d-4c8a-9e21-5a7b8c9d0e1f").unwrap();
        assert_eq!(session_request_slot(alice, &made), customer_slot("alice"));
        assert_eq!(session_request_slot(alice, &chosen), customer_slot("alice"), "a client-chosen id of hers");
        assert_eq!(session_request_slot(alice, &new_session_id(other_slot)), customer_slot("alice"));
        assert_eq!(session_request_slot(carol, &made), customer_slot("alice"), "support follows the id");
        assert_eq!(session_request_slot(carol, &chosen), customer_slot("carol"));
        assert_eq!(session_request_slot(guest, &chosen), id_slot(&chosen));
        assert_eq!(session_request_slot(guest, &new_session_id(9)), 9);
    }

    #[test]
    fn a_failover_moves_every_slot_of_a_region_under_a_new_epoch_and_back() {
        let mut homes = two();
        assert_eq!((homes.home_of(0), homes.home_of(1), homes.home_of(2)), ("us-east-1", "eu-west-1", "us-east-1"));
        assert_eq!(homes.slot_homed_in("eu-west-1"), Some(1));
        homes.fail_over("us-east-1", "eu-west-1");
        assert_eq!(homes.map.epoch, 1);
        assert!((0..=255u8).all(|slot| homes.home_of(slot) == "eu-west-1"));
        // A slot keeps the region it belongs to by position; that region's home moved.
        assert_eq!((homes.region_of(0), homes.home_of_region("us-east-1")), ("us-east-1", "eu-west-1"));
        assert_eq!(homes.slot_homed_in("us-east-1"), None);
        homes.fail_over("eu-west-1", "us-east-1");
        assert_eq!(homes.map.epoch, 2);
        assert!((0..=255u8).all(|slot| homes.home_of(slot) == "us-east-1"), "{:?}", homes.map);
    }

    #[test]
    fn the_home_map_comes_from_the_environment_or_a_file_read_at_each_call() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned())
        };
        assert!(HomeSource::from_lookup(env(&[])).unwrap().is_none());
        let fixed = HomeSource::from_lookup(env(&[("REGIONS", "a,b"), ("HOME_MAP", r#"{"epoch":3,"moved":{"a":"b"}}"#)]));
        let homes = fixed.unwrap().unwrap().homes().unwrap();
        assert_eq!((homes.map.epoch, homes.home_of(0)), (3, "b"));
        assert!(!homes.map.is_fenced(&Uuid::nil()));
        let fenced: HomeMap = serde_json::from_str(r#"{"fenced":{"00000000-0000-0000-0000-000000000000":"a"}}"#).unwrap();
        assert!(fenced.is_fenced(&Uuid::nil()));
        assert!(HomeSource::from_lookup(env(&[("REGIONS", "a"), ("HOME_MAP", "{")])).is_err());

        let path = std::env::temp_dir().join(format!("home-{}.json", Uuid::new_v4()));
        let source = HomeSource::File { regions: "a,b".into(), path: path.clone() };
        assert_eq!(source.homes().unwrap().home_of(0), "a", "no file: nothing moved");
        std::fs::write(&path, r#"{"epoch":1,"moved":{"a":"b"}}"#).unwrap();
        assert_eq!(source.homes().unwrap().home_of(0), "b");
        std::fs::write(&path, "not json").unwrap();
        assert!(source.homes().is_err());
        let _ = std::fs::remove_file(path);
    }
}
