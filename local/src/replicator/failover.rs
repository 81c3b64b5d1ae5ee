//! Moving a region's sessions to another region, and what a region had not replicated: the
//! replicator rewrites the home map under a new epoch (`POST /failover?from=&to=`, which
//! `make failover` calls), and measures the RPO of the move, the items `from` acknowledged
//! that `to` lacks at that moment. When a region comes back up, the same list, for every other
//! region, is what it returns with ([`Replicator::unreplicated_from`]).
//!
//! **The fence.** Every session with such an item is fenced in the home map (`fenced`): its new
//! home writes nothing of it (the gateway answers 503 `session_fenced` to a write and serves a
//! read marked stale; the summarize function skips it) until the old home is up and has
//! delivered all of it ([`Replicator::lift_fences`]). So a late write of the old home never
//! meets a new write on the same key, and no acknowledged turn is overwritten or dropped.
//! Customers' partitions (registry, ledger, memory) are not fenced: they are named by a salted
//! hash the replicator cannot tie to a customer. So a purge, which lists the registry, waits
//! while any fence stands (503 `purge_fenced`, `tidewater::Error::PurgeFenced`): the old home
//! may still deliver a session of the customer whose registry entry the new home lacks.
use std::collections::BTreeMap;

use serde::Serialize;
use tidewater::home::{HomeMap, Homes};

use super::Replicator;
use crate::mesh::{ItemKey, Region};

/// What one region had written that another lacked, at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Unreplicated {
    /// Items of any kind.
    pub items: usize,
    /// The turns among them (`SK` `TURN#…`), each as `PK SK`: acknowledged turns.
    pub turns: Vec<String>,
}

/// The answer of a failover: the new home map and its RPO.
#[derive(Debug, Clone, Serialize)]
pub struct Failover {
    pub epoch: u64,
    pub moved: BTreeMap<String, String>,
    /// The sessions fenced until their writes from `from` have arrived.
    pub fenced: usize,
    /// What `from` had acknowledged and `to` lacked when the move was made.
    pub unreplicated: Unreplicated,
}

/// Whether a failover fences the sessions the new home lacks writes of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fence {
    /// Every such session waits for the old home (the default here).
    Sessions,
    /// None, as on AWS, which lists nothing unreplicated: the turns the new home writes are
    /// keyed by the new epoch ([`tidewater::chain`]), so the old home's late turns stay
    /// beside them, unmerged, and nothing is overwritten (`fence=off`).
    Off,
}

/// Why a failover was refused.
#[derive(Debug, thiserror::Error)]
pub enum FailoverError {
    #[error("no region {0:?}")]
    UnknownRegion(String),
    #[error("a region cannot fail over to itself")]
    SameRegion,
    #[error("the replicator was started without HOME_MAP_FILE")]
    NoHomeMap,
    #[error("the home map: {0}")]
    HomeMap(String),
}

impl Replicator {
    /// Moves every slot whose home is `from` to `to` under a new epoch, in the home map file
    /// every gateway and stream consumer reads, and says what `to` lacked of `from` then.
    pub fn fail_over(&self, from: &str, to: &str, fence: Fence) -> Result<Failover, FailoverError> {
        let (from_region, to_region, names) = {
            let mesh = self.mesh();
            let region = |name: &str| mesh.region(name).ok_or_else(|| FailoverError::UnknownRegion(name.to_owned()));
            (region(from)?, region(to)?, mesh.regions().join(","))
        };
        if from_region == to_region {
            return Err(FailoverError::SameRegion);
        }
        let path = self.home_map.lock().ok().and_then(|path| path.clone()).ok_or(FailoverError::NoHomeMap)?;
        let map = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| FailoverError::HomeMap(e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HomeMap::default(),
            Err(e) => return Err(FailoverError::HomeMap(e.to_string())),
        };
        let mut homes = Homes::new(&names, map).ok_or_else(|| FailoverError::HomeMap("no regions".into()))?;
        homes.fail_over(from, to);
        // Measured before the new map is visible, so no write under it is counted; every
        // session with such a write is fenced until it has arrived.
        let keys = self.mesh().unreplicated(from_region, to_region);
        match fence {
            Fence::Sessions => homes.map.fenced.extend(keys.iter().filter_map(session_of).map(|session| (session, from.to_owned()))),
            Fence::Off => {
                homes.map.awaiting.insert(from.to_owned());
            }
        }
        write_map(&path, &homes.map)?;
        if !homes.map.fenced.is_empty() || !homes.map.awaiting.is_empty() {
            self.fences.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let unreplicated = Unreplicated { items: keys.len(), turns: keys.iter().filter_map(turn_key).collect() };
        Ok(Failover { epoch: homes.map.epoch, moved: homes.map.moved, fenced: homes.map.fenced.len(), unreplicated })
    }

    /// Lifts the fence of every session whose old home is up and has nothing of it left to
    /// deliver, and stops awaiting a region failed over without fences once it is up and has
    /// nothing left to deliver. Called after each round of deliveries while any fence stands.
    pub fn lift_fences(&self) {
        if !self.fences.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let Some(path) = self.home_map.lock().ok().and_then(|path| path.clone()) else { return };
        let Some(mut map) = std::fs::read_to_string(&path).ok().and_then(|text| serde_json::from_str::<HomeMap>(&text).ok()) else {
            return;
        };
        let (waiting, delivering, down) = {
            let mesh = self.mesh();
            let regions = mesh.regions().len();
            let mut waiting = std::collections::BTreeSet::new();
            let mut delivering = std::collections::BTreeSet::new();
            for (from, to) in (0..regions).flat_map(|from| (0..regions).map(move |to| (from, to))).filter(|(from, to)| from != to) {
                let unreplicated = mesh.unreplicated(from, to);
                waiting.extend(unreplicated.iter().filter_map(session_of));
                if !unreplicated.is_empty() {
                    delivering.insert(mesh.regions()[from].clone());
                }
            }
            let down: Vec<String> =
                mesh.regions().iter().enumerate().filter(|(region, _)| mesh.is_down(*region)).map(|(_, name)| name.clone()).collect();
            (waiting, delivering, down)
        };
        let before = (map.fenced.len(), map.awaiting.len());
        map.fenced.retain(|session, old_home| waiting.contains(session) || down.contains(old_home));
        map.awaiting.retain(|region| delivering.contains(region) || down.contains(region));
        if (map.fenced.len(), map.awaiting.len()) != before {
            println!(
                "replicator: lifted {} fences, {} remain; awaiting {:?}",
                before.0 - map.fenced.len(),
                map.fenced.len(),
                map.awaiting
            );
            if write_map(&path, &map).is_err() {
                return;
            }
        }
        if map.fenced.is_empty() && map.awaiting.is_empty() {
            self.fences.store(false, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// What `region` has written that each other region still lacks, by region name.
    pub fn unreplicated_from(&self, region: Region) -> BTreeMap<String, Unreplicated> {
        let names = self.mesh().regions().to_vec();
        (0..names.len()).filter(|other| *other != region).map(|other| (names[other].clone(), self.unreplicated(region, other))).collect()
    }

    fn unreplicated(&self, from: Region, to: Region) -> Unreplicated {
        let keys = self.mesh().unreplicated(from, to);
        Unreplicated { items: keys.len(), turns: keys.iter().filter_map(turn_key).collect() }
    }
}

/// Writes the home map whole, so that no reader sees half of it.
fn write_map(path: &std::path::Path, map: &HomeMap) -> Result<(), FailoverError> {
    let text = serde_json::to_string(map).map_err(|e| FailoverError::HomeMap(e.to_string()))?;
    let written = path.with_extension("json.new");
    std::fs::write(&written, text).and_then(|()| std::fs::rename(&written, path)).map_err(|e| FailoverError::HomeMap(e.to_string()))
}

/// The session id of an item key in a session's partition.
fn session_of(key: &ItemKey) -> Option<String> {
    let attributes: serde_json::Value = serde_json::from_str(&key.key).ok()?;
    let id = tidewater::keys::session_id_from_pk(attributes["PK"]["S"].as_str()?)?;
    Some(id.hyphenated().to_string())
}

/// `PK SK` of an item key that names a turn.
fn turn_key(key: &ItemKey) -> Option<String> {
    let attributes: serde_json::Value = serde_json::from_str(&key.key).ok()?;
    let sort_key = attributes["SK"]["S"].as_str().filter(|sk| sk.starts_with(tidewater::keys::TURN_PREFIX))?;
    Some(format!("{} {sort_key}", attributes["PK"]["S"].as_str().unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tidewater::clock::Clock;

    use super::*;
    use crate::mesh::{Mesh, Settings};
    use crate::replicator::Replica;

    const SESSION: &str = "6f1c2a9e-3b4d-4c8a-9e21-5a7b8c9d0e1f";

    fn item(sort_key: &str) -> ItemKey {
        let key = json!({"PK": {"S": format!("SESSION#{SESSION}")}, "SK": {"S": sort_key}});
        ItemKey::new("t", key.as_object().unwrap())
    }

    #[test]
    fn a_failover_rewrites_the_home_map_under_a_new_epoch_counts_the_turns_the_new_home_lacks_and_fences_them() {
        // Given two regions, east → west paused, and a turn with its META acknowledged in the east,
        let names = vec!["us-east-1".to_owned(), "eu-west-1".to_owned()];
        let replicas = names.iter().map(|name| Replica { name: name.clone(), upstream: "http://127.0.0.1:1".into() });
        let replicator = Replicator::new(replicas.collect(), Mesh::new(names, Settings::default(), 1), Clock::system());
        let path = std::env::temp_dir().join(format!("home-map-{}.json", uuid::Uuid::new_v4()));
        replicator.set_home_map(path.clone());
        replicator.with_mesh(|mesh| {
            mesh.pause(Some(0), Some(1), true);
            mesh.local_write(0, item("TURN#0000000001"), Some(json!({})), 0);
            mesh.local_write(0, item("~META"), Some(json!({})), 0);
        });
        // when the east fails over to the west,
        let failover = replicator.fail_over("us-east-1", "eu-west-1", Fence::Sessions).unwrap();
        // then the map names the move under epoch 1, every reader sees it, and the RPO is one turn;
        assert_eq!((failover.epoch, failover.moved["us-east-1"].as_str()), (1, "eu-west-1"));
        let map: HomeMap = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(map.epoch, 1);
        let turn = format!("SESSION#{SESSION} TURN#0000000001");
        assert_eq!(failover.unreplicated, Unreplicated { items: 2, turns: vec![turn] });
        // the session is fenced until the east's writes have arrived, however long that takes,
        assert_eq!((failover.fenced, map.fenced[SESSION].as_str()), (1, "us-east-1"));
        replicator.lift_fences();
        assert_eq!(replicator.unreplicated_from(0)["eu-west-1"].turns.len(), 1, "the east returns with it");
        let read_map = || serde_json::from_str::<HomeMap>(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(read_map().fenced.len(), 1);
        replicator.with_mesh(|mesh| {
            mesh.pause(None, None, false);
            for delivery in mesh.due(i64::MAX / 2) {
                mesh.applied(&delivery);
            }
        });
        replicator.lift_fences();
        assert!(read_map().fenced.is_empty(), "lifted once delivered");
        // and failing back raises the epoch again.
        assert_eq!(replicator.fail_over("eu-west-1", "us-east-1", Fence::Sessions).unwrap().epoch, 2);
        assert!(matches!(replicator.fail_over("us-east-1", "us-east-1", Fence::Sessions), Err(FailoverError::SameRegion)));
        assert!(matches!(replicator.fail_over("us-east-1", "mars", Fence::Sessions), Err(FailoverError::UnknownRegion(_))));
        let _ = std::fs::remove_file(path);
    }
}
