//! The key scheme: the only place that spells the item key prefixes.
use uuid::Uuid;

pub const PK: &str = "PK";
pub const SK: &str = "SK";
pub const GSI1: &str = "GSI1";
pub const GSI1PK: &str = "GSI1PK";
pub const GSI1SK: &str = "GSI1SK";

/// A session's record. `~` sorts after every `TURN#` key, so one newest-first Query from
/// [`LATEST_SUMMARY`] down to a turn reads the summary, the session and the newest turns.
pub const META: &str = "~META";
/// The latest rolling summary of a session; it sorts right after [`META`].
pub const LATEST_SUMMARY: &str = "~SUMMARY";
pub const TURN_PREFIX: &str = "TURN#";
pub const SUMMARY_PREFIX: &str = "SUMMARY#";
pub const RESPONSE_PREFIX: &str = "RESP#";
/// Sort key of a deletion receipt, under `PK = RECEIPT#<receipt_id>`.
pub const RECEIPT: &str = "RECEIPT";
/// Sort key of a customer's purge ledger, under `PK = PRIVACY#<customer_hash>`.
pub const PURGE_LEDGER: &str = "LEDGER";
pub const PENDING_PREFIX: &str = "PENDING#";
/// Under `PK = PRIVACY#<customer_hash>`: one entry per session of the customer, removed only
/// once every item of the session is gone, so that a purge finds every session.
pub const REGISTRY_PREFIX: &str = "SESSION#";
/// Sort key prefix of one long-term fact, under `PK = MEMORY#<customer_hash>`.
pub const FACT_PREFIX: &str = "FACT#";
/// Under `PK = PRIVACY#<customer_hash>`: the id of the customer's last receipt, which a purge
/// that finds nothing left to delete answers again.
pub const LAST_RECEIPT: &str = "RECEIPT";
/// The janitor's work partition: one item per destructive operation in flight or cut off.
pub const WORK_PK: &str = "JANITOR";
/// Sort key prefix of a work item: `DUE#<epoch seconds, 10 digits>#<task>`, so that one Query
/// reads what is overdue, oldest first.
pub const WORK_PREFIX: &str = "DUE#";

/// The key table's hash key: the data key of one signed-in customer, named by its
/// `customer_hash` (as the privacy partition is), so that a purge finished by the janitor,
/// which knows only the hash, destroys it too. Deleted by the purge.
pub fn customer_data_key(customer_hash: &str) -> String {
    format!("CUST#{customer_hash}")
}

/// The key table's hash key, with several regions: the data key a customer's content is
/// sealed under in `region` (`CUST#<region>#<customer hash>`). Only `region` creates it, so
/// that the customer's old home and new home never write one key item across a failover and
/// last writer wins never drops a key content was sealed under; any region opens it, by the
/// name in the envelope. The purge destroys every region's and the older
/// [`customer_data_key`].
pub fn regional_customer_data_key(region: &str, customer_hash: &str) -> String {
    format!("CUST#{region}#{customer_hash}")
}

/// The key table's hash key: the data key of the guest sessions created on `day`
/// (`yyyy-mm-dd`), in a single-region deployment (and of every guest session sealed before
/// day keys were named by region). Deleted by the janitor once every such session has expired.
pub fn guest_data_key(day: &str) -> String {
    format!("{GUEST_KEY_PREFIX}{day}")
}

/// The key table's hash key, with several regions: the data key of the guest sessions created
/// on `day` whose slots belong to `region` by position (`GUEST#<region>#<yyyy-mm-dd>`). Only
/// the home of those slots creates it, moves its `until` and destroys it, so that no two
/// regions ever write it at once and last writer wins never drops a key content was sealed
/// under.
pub fn regional_guest_data_key(region: &str, day: &str) -> String {
    format!("{GUEST_KEY_PREFIX}{region}#{day}")
}

/// The region a guest day's key is named by (`GUEST#<region>#<day>`); `None` for a
/// single-region (or older) `GUEST#<day>` and for every other key.
pub fn guest_key_region(key_ref: &str) -> Option<&str> {
    let (region, _day) = key_ref.strip_prefix(GUEST_KEY_PREFIX)?.split_once('#')?;
    Some(region)
}

/// The key of the same day named by the day alone (`GUEST#<day>`), of a guest day's key named
/// by its region: the key that sessions made that day before day keys named a region use.
pub fn unregioned_guest_key(key_ref: &str) -> Option<String> {
    let (_region, day) = key_ref.strip_prefix(GUEST_KEY_PREFIX)?.split_once('#')?;
    Some(guest_data_key(day))
}

pub const GUEST_KEY_PREFIX: &str = "GUEST#";

pub fn session_pk(session_id: &Uuid) -> String {
    format!("SESSION#{session_id}")
}

/// The session id of a `SESSION#<uuid>` partition key.
pub fn session_id_from_pk(pk: &str) -> Option<Uuid> {
    pk.strip_prefix("SESSION#")?.parse().ok()
}

pub fn customer_pk(customer_id: &str) -> String {
    format!("CUSTOMER#{customer_id}")
}

/// Deletion receipts live under their own partition and never expire.
pub fn receipt_pk(receipt_id: &Uuid) -> String {
    format!("RECEIPT#{receipt_id}")
}

/// The privacy partition of one customer: the purge ledger and the pending-deletion
/// markers. It is named by the salted hash of the customer id, never the id itself.
pub fn privacy_pk(customer_hash: &str) -> String {
    format!("PRIVACY#{customer_hash}")
}

/// The long-term memory of one customer: their facts, named like the privacy partition by
/// the salted hash of the customer id. (`CUSTOMER#<sub>` is the customer index's key, never a table key.)
pub fn memory_pk(customer_hash: &str) -> String {
    format!("MEMORY#{customer_hash}")
}

/// A fact's key: its id is derived from its kind and subject, so a restatement lands on it.
pub fn fact_sk(fact_id: &str) -> String {
    format!("{FACT_PREFIX}{fact_id}")
}

/// A marker naming a session whose deletion has begun and not yet finished.
pub fn pending_sk(session_id: &Uuid) -> String {
    format!("{PENDING_PREFIX}{session_id}")
}

/// A customer's registry entry for one session.
pub fn registry_sk(session_id: &Uuid) -> String {
    format!("{REGISTRY_PREFIX}{session_id}")
}

/// A work item due at `due_epoch_seconds` for `task` ([`session_pk`] or [`purge_task`]).
pub fn work_sk(due_epoch_seconds: i64, task: &str) -> String {
    format!("{WORK_PREFIX}{:010}#{task}", due_epoch_seconds.max(0))
}

/// When a work item falls due, from its sort key ([`work_sk`]).
pub fn work_due(sk: &str) -> Option<i64> {
    sk.strip_prefix(WORK_PREFIX)?.split('#').next()?.parse().ok()
}

/// The upper bound of the sort keys of work items due at `now_epoch_seconds`.
pub fn work_due_bound(now_epoch_seconds: i64) -> String {
    format!("{WORK_PREFIX}{:010}#~", now_epoch_seconds.max(0))
}

/// The task of a purge in the work partition.
pub fn purge_task(customer_hash: &str) -> String {
    format!("PURGE#{customer_hash}")
}

pub fn session_id_from_pending_sk(sk: &str) -> Option<Uuid> {
    Uuid::parse_str(sk.strip_prefix(PENDING_PREFIX)?).ok()
}

/// Zero-padded so that sort keys, compared as bytes, order turns by index.
pub fn turn_sk(turn_index: u64) -> String {
    format!("{TURN_PREFIX}{turn_index:010}")
}

/// The key of turn `turn_index` written under failover `epoch` ([`crate::chain`]): epoch 0
/// is [`turn_sk`]; a later epoch adds `#<epoch>`, so the turns a new home writes never share a
/// key with those an old home wrote and had not replicated, and still sort by index.
pub fn epoch_turn_sk(turn_index: u64, epoch: u64) -> String {
    match epoch {
        0 => turn_sk(turn_index),
        _ => format!("{TURN_PREFIX}{turn_index:010}#{epoch:06}"),
    }
}

/// A sort key after every turn's and before [`META`]: the end of a range of turns with no
/// last index.
pub const TURN_RANGE_END: &str = "TURN#~";

/// The greatest sort key of turn `turn_index` in any epoch: the inclusive upper bound of a
/// range of turns that ends at it.
pub fn turn_sk_bound(turn_index: u64) -> String {
    format!("{TURN_PREFIX}{turn_index:010}#~")
}

/// A summary is named by the last turn it covers, so windows sort in order.
pub fn summary_sk(through_turn: u64) -> String {
    format!("{SUMMARY_PREFIX}{through_turn:010}")
}

/// The idempotency record of one `response_id`: its key is derived from the id, so a
/// second append with the same id collides with the first for the life of the session.
pub fn response_sk(response_id: &str) -> String {
    format!("{RESPONSE_PREFIX}{response_id}")
}

pub fn turn_index_from_sk(sk: &str) -> Option<u64> {
    turn_key_parts(sk).map(|(index, _epoch)| index)
}

/// The index and the failover epoch a turn's sort key names ([`epoch_turn_sk`]).
pub fn turn_key_parts(sk: &str) -> Option<(u64, u64)> {
    let rest = sk.strip_prefix(TURN_PREFIX)?;
    let (index, epoch) = match rest.split_once('#') {
        Some((index, epoch)) => (index, epoch.parse().ok().filter(|&e| e > 0)?),
        None => (rest, 0),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(index).then(|| index.parse().ok()).flatten().map(|index| (index, epoch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_keys_sort_in_index_order() {
        assert!(turn_sk(9) < turn_sk(10));
        assert!(turn_sk(99_999) < turn_sk(100_000));
        assert_eq!(turn_index_from_sk(&turn_sk(42)), Some(42));
    }

    #[test]
    fn a_turn_of_a_later_epoch_sorts_beside_its_index_and_names_both() {
        let later = epoch_turn_sk(42, 3);
        assert_eq!(later, "TURN#0000000042#000003");
        assert_eq!(epoch_turn_sk(42, 0), turn_sk(42));
        assert!(turn_sk(42) < later && later < turn_sk(43));
        assert!(later < turn_sk_bound(42) && turn_sk_bound(42) < turn_sk(43));
        assert_eq!(turn_key_parts(&later), Some((42, 3)));
        assert_eq!(turn_key_parts(&turn_sk(42)), Some((42, 0)));
        assert_eq!(turn_index_from_sk(&later), Some(42));
        assert_eq!(turn_key_parts("TURN#0000000042#000000"), None);
        assert_eq!(turn_key_parts("TURN#0000000042#x"), None);
        assert_eq!(turn_key_parts("TURN#+42"), None);
    }

    #[test]
    fn the_session_head_sorts_after_every_turn() {
        assert!(turn_sk(9_999_999_999).as_str() < META);
        assert!(turn_sk_bound(9_999_999_999).as_str() < META);
        assert!(turn_sk_bound(9_999_999_999).as_str() < TURN_RANGE_END && TURN_RANGE_END < META);
        assert!(META < LATEST_SUMMARY);
        assert!(summary_sk(20) < turn_sk(1));
        assert!(response_sk("r1").as_str() < turn_sk(1).as_str());
    }

    #[test]
    fn session_keys_round_trip() {
        let id = Uuid::new_v4();
        assert_eq!(session_id_from_pk(&session_pk(&id)), Some(id));
        assert_eq!(session_id_from_pk("CUSTOMER#alice"), None);
    }

    #[test]
    fn pending_markers_name_their_session() {
        let id = Uuid::new_v4();
        assert_eq!(session_id_from_pending_sk(&pending_sk(&id)), Some(id));
        assert_eq!(session_id_from_pending_sk(PURGE_LEDGER), None);
    }

    #[test]
    fn memory_keys_name_the_hash_and_the_fact() {
        assert_eq!(memory_pk("ab12"), "MEMORY#ab12");
        assert_eq!(fact_sk("0f"), "FACT#0f");
        assert_ne!(memory_pk("alice"), customer_pk("alice"));
    }

    #[test]
    fn work_items_sort_by_due_time_and_the_bound_takes_all_due_at_that_second() {
        let id = Uuid::new_v4();
        let early = work_sk(1_700_000_000, &session_pk(&id));
        let late = work_sk(1_700_000_001, &purge_task("ab"));
        assert!(early < late);
        assert!(early.as_str() <= work_due_bound(1_700_000_000).as_str());
        assert!(late.as_str() > work_due_bound(1_700_000_000).as_str());
        assert!(late.as_str() <= work_due_bound(1_700_000_001).as_str());
        assert!(WORK_PREFIX < early.as_str());
        assert_eq!(work_due(&work_sk(1_700_000_000, &purge_task("abc"))), Some(1_700_000_000));
        assert_eq!(work_due("SESSION#x"), None);
    }

    #[test]
    fn a_customers_key_names_the_region_that_made_it() {
        assert_eq!(regional_customer_data_key("eu-west-1", "0f3a"), "CUST#eu-west-1#0f3a");
        assert_ne!(regional_customer_data_key("eu-west-1", "0f3a"), regional_customer_data_key("us-east-1", "0f3a"));
        assert_eq!(customer_data_key("0f3a"), "CUST#0f3a");
    }

    #[test]
    fn a_guest_day_key_names_its_region_or_none() {
        let regional = regional_guest_data_key("eu-west-1", "2026-12-07");
        assert_eq!(regional, "GUEST#eu-west-1#2026-12-07");
        assert_eq!(guest_key_region(&regional), Some("eu-west-1"));
        assert_eq!(unregioned_guest_key(&regional).as_deref(), Some("GUEST#2026-12-07"));
        assert_eq!(unregioned_guest_key("GUEST#2026-12-07"), None);
        assert_eq!(guest_key_region(&guest_data_key("2026-12-07")), None);
        assert_eq!(guest_key_region(&customer_data_key("abc")), None);
    }

    #[test]
    fn malformed_turn_keys_are_rejected() {
        assert_eq!(turn_index_from_sk("TURN#abc"), None);
        assert_eq!(turn_index_from_sk("SUMMARY#0000000001"), None);
    }
}
