//! Moving a region's sessions to another region, and what a region had not replicated: the
//! replicator rewrites the home map under a new epoch (`POST /failover?from=&to=`, which
//! `make failover` calls), and measures the RPO of the move, the items `from` acknowledged
//! that `to` lacks at that moment. When a region comes back up, the same list, for every other
//! region, is what it returns with ([`Replicator::unreplicated_from`]).
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
    /// What `from` had acknowledged and `to` lacked when the move was made.
    pub unreplicated: Unreplicated,
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
    pub fn fail_over(&self, from: &str, to: &str) -> Result<Failover, FailoverError> {
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
        // Measured before the new map is visible, so no write under it is counted.
        let unreplicated = self.unreplicated(from_region, to_region);
        let text = serde_json::to_string(&homes.map).map_err(|e| FailoverError::HomeMap(e.to_string()))?;
        let written = path.with_extension("json.new");
        std::fs::write(&written, text).and_then(|()| std::fs::rename(&written, &path)).map_err(|e| FailoverError::HomeMap(e.to_string()))?;
        Ok(Failover { epoch: homes.map.epoch, moved: homes.map.moved, unreplicated })
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

    fn item(sort_key: &str) -> ItemKey {
        let key = json!({"PK": {"S": "SESSION#s"}, "SK": {"S": sort_key}});
        ItemKey::new("t", key.as_object().unwrap())
    }

    #[test]
    fn a_failover_rewrites_the_home_map_under_a_new_epoch_and_counts_the_turns_the_new_home_lacks() {
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
        let failover = replicator.fail_over("us-east-1", "eu-west-1").unwrap();
        // then the map names the move under epoch 1, every reader sees it, and the RPO is one turn;
        assert_eq!((failover.epoch, failover.moved["us-east-1"].as_str()), (1, "eu-west-1"));
        let map: HomeMap = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(map.epoch, 1);
        assert_eq!(failover.unreplicated, Unreplicated { items: 2, turns: vec!["SESSION#s TURN#0000000001".into()] });
        // the east, returning, reports the same, and failing back raises the epoch again.
        assert_eq!(replicator.unreplicated_from(0)["eu-west-1"].turns.len(), 1);
        assert_eq!(replicator.fail_over("eu-west-1", "us-east-1").unwrap().epoch, 2);
        assert!(matches!(replicator.fail_over("us-east-1", "us-east-1"), Err(FailoverError::SameRegion)));
        assert!(matches!(replicator.fail_over("us-east-1", "mars"), Err(FailoverError::UnknownRegion(_))));
        let _ = std::fs::remove_file(path);
    }
}
