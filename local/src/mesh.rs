//! Multi-region replication as DynamoDB global tables (MREC) do it, as pure state: which
//! change goes to which region when, and whether a region applies it. No I/O and no clock:
//! every call takes "now", and [`crate::replicator`] does the writes.
//!
//! The semantics, from AWS's documentation of MREC global tables:
//! - **Each item replicates on its own**, asynchronously, after the lag plus a random jitter,
//!   so the items of one transaction may arrive apart and in any order.
//! - **Several writes to one item may arrive as one**: a change still queued for a region is
//!   replaced by a newer change to the same item (it keeps its place in the queue).
//! - **Last writer wins per item** on a hidden write stamp: the writing region's clock (with
//!   its skew) at the write, never below the stamp of what the item held there plus one, ties
//!   broken by region. Deletes have stamps too (tombstones), so an older update arriving after
//!   a delete is dropped and never brings the item back. A region applies a change only when
//!   its stamp is newer than the stamp of the item's state there.
//! - **Faults:** replication paused per direction (`from → to`), a region down (its queues are
//!   held both ways and delivered when it is up again), and reordering (the jitter).
use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use serde_json::Value;

/// Microseconds since the Unix epoch.
pub type Micros = i64;
/// A region, by its index in [`Mesh::regions`].
pub type Region = usize;

/// An item of a table: the table and its key attributes as canonical JSON (DynamoDB's wire
/// form, attributes in name order), so one item always has one `ItemKey`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemKey {
    pub table: String,
    pub key: String,
}

impl ItemKey {
    /// The key of `table`'s item whose key attributes are `key` (a JSON object).
    pub fn new(table: &str, key: &serde_json::Map<String, Value>) -> ItemKey {
        // serde_json's map keeps names in order, so equal keys serialise equally.
        ItemKey { table: table.to_owned(), key: Value::Object(key.clone()).to_string() }
    }
}

/// The hidden write stamp an item's state carries: last writer wins on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp {
    pub at: Micros,
    pub region: Region,
}

/// One item's new state, written in `stamp.region`: its whole image, or `None` for a delete.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub id: u64,
    pub key: ItemKey,
    pub image: Option<Value>,
    pub stamp: Stamp,
}

/// A change on its way to a region.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub to: Region,
    pub change: Change,
}

#[derive(Debug, Clone)]
struct Queued {
    due: Micros,
    change: Change,
}

/// How replication behaves: lag, jitter and each region's clock skew.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The least time a change takes to reach another region.
    pub lag: Micros,
    /// A further random delay of up to this much, drawn per change and region: it reorders.
    pub jitter: Micros,
    /// Added to the clock of each region (by index) when it stamps a write; missing is 0.
    pub skew: Vec<Micros>,
}

/// What `GET /status` shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// Changes not yet applied (or found stale) in every region.
    pub pending: usize,
    pub paused: Vec<Direction>,
    pub down: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Direction {
    pub from: String,
    pub to: String,
}

/// The replication state of every region: see the module docs.
pub struct Mesh {
    regions: Vec<String>,
    pub settings: Settings,
    rng: fastrand::Rng,
    next_id: u64,
    /// `(from, to)` → the changes waiting for `to`, at most one per item.
    queues: BTreeMap<(Region, Region), Vec<Queued>>,
    /// Taken by [`Mesh::due`] and not yet [`Mesh::applied`] or [`Mesh::failed`].
    in_flight: Vec<Delivery>,
    /// Per region, the stamp of each item's state there (tombstones included). Tombstones are
    /// kept for the life of the process: a delayed older update may arrive at any time.
    stamps: Vec<HashMap<ItemKey, Stamp>>,
    paused: BTreeSet<(Region, Region)>,
    down: BTreeSet<Region>,
}

impl Mesh {
    pub fn new(regions: Vec<String>, settings: Settings, seed: u64) -> Mesh {
        let stamps = regions.iter().map(|_| HashMap::new()).collect();
        Mesh {
            regions,
            settings,
            rng: fastrand::Rng::with_seed(seed),
            next_id: 1,
            queues: BTreeMap::new(),
            in_flight: Vec::new(),
            stamps,
            paused: BTreeSet::new(),
            down: BTreeSet::new(),
        }
    }

    pub fn regions(&self) -> &[String] {
        &self.regions
    }

    pub fn region(&self, name: &str) -> Option<Region> {
        self.regions.iter().position(|region| region == name)
    }

    /// Records a write the application made in `region` (its new image, or `None` for a
    /// delete) and queues it for every other region. Returns the write's stamp.
    pub fn local_write(&mut self, region: Region, key: ItemKey, image: Option<Value>, now: Micros) -> Stamp {
        let skew = self.settings.skew.get(region).copied().unwrap_or(0);
        let floor = self.stamps[region].get(&key).map_or(Micros::MIN, |stamp| stamp.at.saturating_add(1));
        let stamp = Stamp { at: (now + skew).max(floor), region };
        self.stamps[region].insert(key.clone(), stamp);
        let change = Change { id: self.next_id, key, image, stamp };
        self.next_id += 1;
        for to in (0..self.regions.len()).filter(|&to| to != region) {
            let delay = self.settings.lag + self.jitter();
            let queue = self.queues.entry((region, to)).or_default();
            match queue.iter_mut().find(|queued| queued.change.key == change.key) {
                // Coalesced: the queued change now carries the newest state.
                Some(queued) => queued.change = change.clone(),
                None => queue.push(Queued { due: now + delay, change: change.clone() }),
            }
        }
        stamp
    }

    fn jitter(&mut self) -> Micros {
        if self.settings.jitter > 0 { self.rng.i64(0..=self.settings.jitter) } else { 0 }
    }

    /// Takes every change due by `now` on a direction neither paused nor touching a region
    /// that is down, earliest first. Each must end in [`Mesh::applied`] or [`Mesh::failed`].
    pub fn due(&mut self, now: Micros) -> Vec<Delivery> {
        let mut due = Vec::new();
        for (&(from, to), queue) in &mut self.queues {
            if self.paused.contains(&(from, to)) || self.down.contains(&from) || self.down.contains(&to) {
                continue;
            }
            let (ready, waiting): (Vec<Queued>, Vec<Queued>) = queue.drain(..).partition(|queued| queued.due <= now);
            *queue = waiting;
            due.extend(ready.into_iter().map(|queued| (queued.due, Delivery { to, change: queued.change })));
        }
        due.sort_by_key(|(at, delivery)| (*at, delivery.change.id));
        let due: Vec<Delivery> = due.into_iter().map(|(_, delivery)| delivery).collect();
        self.in_flight.extend(due.iter().cloned());
        due
    }

    /// Whether `delivery`'s region must write it: its stamp is newer than the item's there.
    /// A stale change (last writer wins) is dropped by [`Mesh::applied`] without a write.
    pub fn wins(&self, delivery: &Delivery) -> bool {
        self.stamps[delivery.to].get(&delivery.change.key).is_none_or(|held| delivery.change.stamp > *held)
    }

    /// `delivery` was written in its region (or lost to a newer state there).
    pub fn applied(&mut self, delivery: &Delivery) {
        if self.wins(delivery) {
            self.stamps[delivery.to].insert(delivery.change.key.clone(), delivery.change.stamp);
        }
        self.in_flight.retain(|held| held != delivery);
    }

    /// Writing `delivery` failed: it is queued again, due after `retry`, unless a newer change
    /// to the item has been queued for that region meanwhile.
    pub fn failed(&mut self, delivery: &Delivery, now: Micros, retry: Micros) {
        self.in_flight.retain(|held| held != delivery);
        let queue = self.queues.entry((delivery.change.stamp.region, delivery.to)).or_default();
        if !queue.iter().any(|queued| queued.change.key == delivery.change.key) {
            queue.push(Queued { due: now + retry, change: delivery.change.clone() });
        }
    }

    /// Stops (or with `on` false, restarts) replication on the directions that match: `from`
    /// and `to` each name one region, or every region when `None`.
    pub fn pause(&mut self, from: Option<Region>, to: Option<Region>, on: bool) {
        let count = self.regions.len();
        for a in (0..count).filter(|&a| from.is_none_or(|f| f == a)) {
            for b in (0..count).filter(|&b| b != a && to.is_none_or(|t| t == b)) {
                if on {
                    self.paused.insert((a, b));
                } else {
                    self.paused.remove(&(a, b));
                }
            }
        }
    }

    /// Takes `region` down (or back up): while down, nothing replicates to or from it.
    pub fn set_down(&mut self, region: Region, down: bool) {
        if down {
            self.down.insert(region);
        } else {
            self.down.remove(&region);
        }
    }

    pub fn is_down(&self, region: Region) -> bool {
        self.down.contains(&region)
    }

    /// The items written in `from` whose latest change has not reached `to` yet (queued or
    /// being written): what `from` acknowledged and `to` lacks, by item, in key order.
    pub fn unreplicated(&self, from: Region, to: Region) -> Vec<ItemKey> {
        let queued = self.queues.get(&(from, to)).into_iter().flatten().map(|queued| &queued.change);
        let in_flight = self.in_flight.iter().filter(|d| d.to == to && d.change.stamp.region == from).map(|d| &d.change);
        let keys: BTreeSet<ItemKey> = queued.chain(in_flight).map(|change| change.key.clone()).collect();
        keys.into_iter().collect()
    }

    pub fn status(&self) -> Status {
        let queued = self.queues.values().flatten().map(|queued| queued.change.id);
        let pending: BTreeSet<u64> = queued.chain(self.in_flight.iter().map(|d| d.change.id)).collect();
        let name = |region: Region| self.regions[region].clone();
        Status {
            pending: pending.len(),
            paused: self.paused.iter().map(|&(from, to)| Direction { from: name(from), to: name(to) }).collect(),
            down: self.down.iter().map(|&region| name(region)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECOND: Micros = 1_000_000;
    const EAST: Region = 0;
    const WEST: Region = 1;

    fn mesh(settings: Settings) -> Mesh {
        Mesh::new(vec!["us-east-1".into(), "eu-west-1".into()], settings, 7)
    }

    fn lagged(lag: Micros) -> Mesh {
        mesh(Settings { lag, ..Settings::default() })
    }

    fn key(sort_key: &str) -> ItemKey {
        let key = json!({"PK": {"S": "SESSION#1"}, "SK": {"S": sort_key}});
        ItemKey::new("t", key.as_object().unwrap())
    }

    fn image(text: &str) -> Option<Value> {
        Some(json!({"PK": {"S": "SESSION#1"}, "SK": {"S": "META"}, "v": {"S": text}}))
    }

    /// Delivers everything due at `now`, in order, as the replicator does: the winners are
    /// "written" into `tables`, one map of item → image per region.
    fn deliver(mesh: &mut Mesh, now: Micros, tables: &mut [HashMap<ItemKey, Option<Value>>]) -> Vec<Delivery> {
        let due = mesh.due(now);
        for delivery in &due {
            if mesh.wins(delivery) {
                tables[delivery.to].insert(delivery.change.key.clone(), delivery.change.image.clone());
            }
            mesh.applied(delivery);
        }
        due
    }

    fn write(mesh: &mut Mesh, tables: &mut [HashMap<ItemKey, Option<Value>>], region: Region, key: ItemKey, image: Option<Value>, now: Micros) {
        tables[region].insert(key.clone(), image.clone());
        mesh.local_write(region, key, image, now);
    }

    #[test]
    fn a_write_reaches_the_other_region_after_the_lag_and_not_before() {
        let mut mesh = lagged(SECOND);
        let mut tables = vec![HashMap::new(), HashMap::new()];
        write(&mut mesh, &mut tables, EAST, key("META"), image("a"), 0);

        assert!(deliver(&mut mesh, SECOND - 1, &mut tables).is_empty());
        assert_eq!(mesh.status().pending, 1);
        assert_eq!(deliver(&mut mesh, SECOND, &mut tables).len(), 1);
        assert_eq!(tables[WEST][&key("META")], image("a"));
        assert_eq!(mesh.status().pending, 0);
    }

    #[test]
    fn a_delete_stops_an_older_update_that_arrives_after_it() {
        // Given an update in the east and, later, a delete of the item in the west,
        let mut mesh = lagged(SECOND);
        let mut tables = vec![HashMap::new(), HashMap::new()];
        write(&mut mesh, &mut tables, EAST, key("META"), image("old"), 0);
        write(&mut mesh, &mut tables, WEST, key("META"), None, 10);
        // when both arrive where they were not written,
        deliver(&mut mesh, SECOND + 10, &mut tables);
        // then the tombstone wins in both regions: the update does not bring the item back.
        assert_eq!(tables[EAST][&key("META")], None);
        assert_eq!(tables[WEST][&key("META")], None);
    }

    #[test]
    fn an_older_update_held_back_by_a_pause_is_dropped_by_the_tombstone() {
        let mut mesh = lagged(0);
        let mut tables = vec![HashMap::new(), HashMap::new()];
        mesh.pause(Some(EAST), Some(WEST), true);
        write(&mut mesh, &mut tables, EAST, key("META"), image("old"), 0);
        write(&mut mesh, &mut tables, WEST, key("META"), None, 5);
        deliver(&mut mesh, 10, &mut tables);
        assert_eq!(tables[EAST][&key("META")], None);

        mesh.pause(Some(EAST), Some(WEST), false);
        let late = deliver(&mut mesh, 20, &mut tables);
        assert_eq!(late.len(), 1, "the held update is delivered");
        assert_eq!(tables[WEST][&key("META")], None, "and loses to the delete");
        assert_eq!(mesh.status().pending, 0);
    }

    #[test]
    fn the_items_of_one_transaction_may_arrive_apart() {
        // Given three items written together, with a jitter as large as the lag,
        let mut mesh = mesh(Settings { lag: SECOND, jitter: SECOND, skew: vec![] });
        let mut tables = vec![HashMap::new(), HashMap::new()];
        for sort_key in ["RESP#1", "TURN#1", "~META"] {
            write(&mut mesh, &mut tables, EAST, key(sort_key), image(sort_key), 0);
        }
        // then there is a moment when some of them have arrived in the west and some have not.
        let mut partial = false;
        let mut now = 0;
        while now <= 2 * SECOND {
            deliver(&mut mesh, now, &mut tables);
            let arrived = tables[WEST].len();
            partial |= arrived > 0 && arrived < 3;
            now += SECOND / 100;
        }
        assert!(partial, "with seed 7 the three arrive at different times");
        assert_eq!(tables[WEST].len(), 3);
    }

    #[test]
    fn writes_to_one_item_still_queued_arrive_as_one() {
        let mut mesh = lagged(SECOND);
        let mut tables = vec![HashMap::new(), HashMap::new()];
        for (at, text) in [(0, "1"), (10, "2"), (20, "3")] {
            write(&mut mesh, &mut tables, EAST, key("META"), image(text), at);
        }
        assert_eq!(mesh.status().pending, 1);
        let arrived = deliver(&mut mesh, SECOND, &mut tables);
        assert_eq!(arrived.len(), 1, "one replicated write, at the first one's time");
        assert_eq!(tables[WEST][&key("META")], image("3"));
    }

    #[test]
    fn a_region_whose_clock_runs_ahead_wins_a_concurrent_write_it_made_earlier() {
        // Given the east clock 2 s ahead, the east writes at t=0 and the west at t=1 s,
        let mut mesh = mesh(Settings { lag: 3 * SECOND, jitter: 0, skew: vec![2 * SECOND, 0] });
        let mut tables = vec![HashMap::new(), HashMap::new()];
        write(&mut mesh, &mut tables, EAST, key("META"), image("east"), 0);
        write(&mut mesh, &mut tables, WEST, key("META"), image("west"), SECOND);
        deliver(&mut mesh, 5 * SECOND, &mut tables);
        // then both regions converge on the east's write: its stamp (2 s) beats the west's (1 s).
        assert_eq!(tables[EAST][&key("META")], image("east"));
        assert_eq!(tables[WEST][&key("META")], image("east"));
    }

    #[test]
    fn a_write_after_a_replicated_one_is_stamped_after_it_whatever_the_local_clock() {
        // A region whose clock lags behind still overwrites what it has seen: its stamp is
        // never below the stamp of the state it replaces, so its write replicates and wins.
        let mut mesh = mesh(Settings { lag: 0, jitter: 0, skew: vec![10 * SECOND, 0] });
        let mut tables = vec![HashMap::new(), HashMap::new()];
        write(&mut mesh, &mut tables, EAST, key("META"), image("east"), 0);
        deliver(&mut mesh, 0, &mut tables);
        write(&mut mesh, &mut tables, WEST, key("META"), image("west"), SECOND);
        deliver(&mut mesh, SECOND, &mut tables);
        assert_eq!(tables[EAST][&key("META")], image("west"));
    }

    #[test]
    fn a_region_down_holds_its_queues_both_ways_until_it_is_up() {
        let mut mesh = lagged(0);
        let mut tables = vec![HashMap::new(), HashMap::new()];
        write(&mut mesh, &mut tables, EAST, key("A"), image("a"), 0);
        mesh.set_down(WEST, true);
        write(&mut mesh, &mut tables, WEST, key("B"), image("b"), 0);
        assert!(deliver(&mut mesh, SECOND, &mut tables).is_empty());
        assert_eq!(mesh.status().down, ["eu-west-1"]);
        assert_eq!(mesh.status().pending, 2);

        mesh.set_down(WEST, false);
        assert_eq!(deliver(&mut mesh, SECOND, &mut tables).len(), 2);
        assert_eq!(tables[WEST][&key("A")], image("a"));
        assert_eq!(tables[EAST][&key("B")], image("b"));
    }

    #[test]
    fn what_a_region_wrote_and_another_lacks_is_listed_until_it_is_delivered() {
        let mut mesh = lagged(0);
        let mut tables = vec![HashMap::new(), HashMap::new()];
        mesh.pause(Some(EAST), Some(WEST), true);
        write(&mut mesh, &mut tables, EAST, key("TURN#2"), image("b"), 0);
        write(&mut mesh, &mut tables, EAST, key("TURN#1"), image("a"), 0);
        write(&mut mesh, &mut tables, EAST, key("TURN#1"), image("a2"), 1);
        write(&mut mesh, &mut tables, WEST, key("META"), image("m"), 0);
        assert_eq!(mesh.unreplicated(EAST, WEST), [key("TURN#1"), key("TURN#2")], "one entry per item, in key order");
        assert!(mesh.unreplicated(WEST, EAST).iter().all(|k| *k == key("META")));
        mesh.pause(None, None, false);
        deliver(&mut mesh, SECOND, &mut tables);
        assert!(mesh.unreplicated(EAST, WEST).is_empty());
    }

    #[test]
    fn a_pause_without_regions_stops_every_direction_and_resume_restarts_them() {
        let mut mesh = lagged(0);
        mesh.pause(None, None, true);
        assert_eq!(mesh.status().paused.len(), 2);
        mesh.pause(None, Some(WEST), false);
        assert_eq!(mesh.status().paused, [Direction { from: "eu-west-1".into(), to: "us-east-1".into() }]);
    }

    #[test]
    fn a_failed_write_is_queued_again_unless_a_newer_change_overtook_it() {
        let mut mesh = lagged(0);
        let mut tables = vec![HashMap::new(), HashMap::new()];
        write(&mut mesh, &mut tables, EAST, key("META"), image("1"), 0);
        let first = mesh.due(0).remove(0);
        mesh.failed(&first, 0, 100);
        assert_eq!(mesh.status().pending, 1);
        assert!(mesh.due(99).is_empty());
        let again = mesh.due(100).remove(0);
        assert_eq!(again, first);

        write(&mut mesh, &mut tables, EAST, key("META"), image("2"), 200);
        mesh.failed(&again, 200, 100);
        let next = mesh.due(300);
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].change.image, image("2"));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Step {
            Write { region: Region, item: usize, delete: bool },
            Pause { from: Region, on: bool },
            Down { region: Region, on: bool },
            Wait { micros: Micros },
        }

        fn step() -> impl Strategy<Value = Step> {
            prop_oneof![
                6 => (0..3usize, 0..3usize, any::<bool>()).prop_map(|(region, item, delete)| Step::Write { region, item, delete }),
                1 => (0..3usize, any::<bool>()).prop_map(|(from, on)| Step::Pause { from, on }),
                1 => (0..3usize, any::<bool>()).prop_map(|(region, on)| Step::Down { region, on }),
                3 => (0..2 * SECOND).prop_map(|micros| Step::Wait { micros }),
            ]
        }

        /// Three regions half a second apart, and their tables.
        fn three_regions(skew: Vec<Micros>, jitter: Micros, seed: u64) -> (Mesh, Vec<HashMap<ItemKey, Option<Value>>>) {
            let regions = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
            (Mesh::new(regions, Settings { lag: SECOND / 2, jitter, skew }, seed), vec![HashMap::new(), HashMap::new(), HashMap::new()])
        }

        /// A write made by step `n`: its region, item, image and stamp.
        struct Written {
            region: Region,
            key: ItemKey,
            image: Option<Value>,
            stamp: Stamp,
        }

        /// Takes `step` (the `n`th) in `mesh` and `tables`: a write's image names its step.
        fn take(mesh: &mut Mesh, tables: &mut [HashMap<ItemKey, Option<Value>>], n: usize, step: Step, now: &mut Micros) -> Option<Written> {
            match step {
                Step::Write { region, item, delete } => {
                    let key = key(&format!("ITEM#{item}"));
                    let image = if delete { None } else { image(&n.to_string()) };
                    tables[region].insert(key.clone(), image.clone());
                    let stamp = mesh.local_write(region, key.clone(), image.clone(), *now);
                    return Some(Written { region, key, image, stamp });
                }
                Step::Pause { from, on } => mesh.pause(Some(from), None, on),
                Step::Down { region, on } => mesh.set_down(region, on),
                Step::Wait { micros } => *now += micros,
            }
            None
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, rng_seed: proptest::test_runner::RngSeed::Fixed(21), ..ProptestConfig::default() })]

            /// Whatever the writes, skews, pauses and outages, once every fault is lifted and
            /// the lag has passed, every region holds the same state of every item: that of the
            /// write with the greatest stamp.
            #[test]
            fn every_region_converges_on_the_last_writer(
                steps in proptest::collection::vec(step(), 1..60),
                skew in proptest::collection::vec(-SECOND..SECOND, 3),
                jitter in 0..SECOND,
                seed in any::<u64>(),
            ) {
                let (mut mesh, mut tables) = three_regions(skew, jitter, seed);
                let mut last: HashMap<ItemKey, (Stamp, Option<Value>)> = HashMap::new();
                let mut now = 0;
                for (n, step) in steps.into_iter().enumerate() {
                    if let Some(Written { key, image, stamp, .. }) = take(&mut mesh, &mut tables, n, step, &mut now) {
                        if last.get(&key).is_none_or(|(held, _)| stamp > *held) {
                            last.insert(key, (stamp, image));
                        }
                    }
                    deliver(&mut mesh, now, &mut tables);
                }
                mesh.pause(None, None, false);
                for region in 0..3 {
                    mesh.set_down(region, false);
                }
                deliver(&mut mesh, now + 10 * SECOND, &mut tables);
                prop_assert_eq!(mesh.status().pending, 0);
                for (key, (_, image)) in &last {
                    for table in &tables {
                        prop_assert_eq!(table.get(key), Some(image));
                    }
                }
            }

            /// A failover's RPO, its fence and what a returning region reports all rest on
            /// this: at every moment, each item whose latest write in one region another
            /// region does not hold yet (its state there is older) is listed as unreplicated
            /// from the one to the other, whether queued, held by a pause or an outage, or
            /// queued again after a failed write.
            #[test]
            fn every_write_a_region_lacks_is_listed_as_unreplicated(
                steps in proptest::collection::vec(step(), 1..60),
                failing in proptest::collection::vec(any::<bool>(), 60),
                skew in proptest::collection::vec(-SECOND..SECOND, 3),
                jitter in 0..SECOND,
                seed in any::<u64>(),
            ) {
                let (mut mesh, mut tables) = three_regions(skew, jitter, seed);
                let mut latest: HashMap<(Region, ItemKey), Stamp> = HashMap::new();
                let mut now = 0;
                for (n, step) in steps.into_iter().enumerate() {
                    if let Some(Written { region, key, stamp, .. }) = take(&mut mesh, &mut tables, n, step, &mut now) {
                        latest.insert((region, key), stamp);
                    }
                    if failing[n] {
                        // The writes into the regions fail this round: queued again.
                        for delivery in mesh.due(now) {
                            mesh.failed(&delivery, now, SECOND / 5);
                        }
                    } else {
                        deliver(&mut mesh, now, &mut tables);
                    }
                    for ((from, key), stamp) in &latest {
                        for to in (0..3).filter(|to| to != from) {
                            let lacks = mesh.stamps[to].get(key).is_none_or(|held| held < stamp);
                            prop_assert!(!lacks || mesh.unreplicated(*from, to).contains(key), "{key:?} of {from} missing in {to} but not listed");
                        }
                    }
                }
            }
        }
    }
}
