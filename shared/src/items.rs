//! The stored shape of each item kind, converted with serde_dynamo.
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::chain::{Chain, Segment, UnmergedTurn};
use crate::model::{Role, Session, Summary, Turn};
use crate::{clock, codec, keys, Error};

/// How long after a session expires DynamoDB's TTL may delete its META: the `ttl` attribute
/// is the expiry plus this, and expiry itself is enforced on read ([`MetaItem::is_expired`])
/// and in every write's condition. With several regions each replica runs TTL on its own
/// copy, and a TTL delete replicates everywhere with a later stamp than the write it raced:
/// a replica whose copy lags the home's last ttl slide would delete a live session in every
/// region. This is the bound on replication lag that makes that impossible: a copy that lags
/// by less than it still carries a `ttl` past the live session's expiry. Seven days is far
/// above any replication lag DynamoDB global tables report (seconds; a region cut off for
/// longer is failed over, `crate::home`), and it is how long an expired session's items stay
/// stored (unreadable) before TTL and the sweep remove them.
pub const TTL_AFTER_EXPIRY_SECONDS: i64 = 7 * 86_400;

/// The condition that a META's session has not expired at `:now_secs`, with `:live_ttl` =
/// [`ttl_for_expiry`]`(now)`: a META written before the margin existed (no `ttl_margin`)
/// carries `ttl` = its expiry, and is held to that.
pub const LIVE_CONDITION: &str =
    "(#ttl > :live_ttl OR (attribute_not_exists(ttl_margin) AND #ttl > :now_secs))";

/// The `ttl` attribute of a session that expires at `expires_secs`.
pub fn ttl_for_expiry(expires_secs: i64) -> i64 {
    expires_secs.saturating_add(TTL_AFTER_EXPIRY_SECONDS)
}

/// `SK = ~META`: one per session. It carries the turn counter, the summary watermark and
/// the sparse customer-index keys (absent for guests). It stays small (no summary, no
/// turn content), so an append that updates it bills one write unit per KB of page context.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetaItem {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    pub session_id: Uuid,
    pub owner_id: String,
    pub guest: bool,
    /// Sealed in the table when it holds anything (`store/sealing.rs`). The store's readers
    /// that serve it open it first; a raw read (a write's own read of META, a condition's
    /// old item) leaves a sealed one closed, and it reads as empty ([`page_context_unless_sealed`]).
    #[serde(default, deserialize_with = "page_context_unless_sealed")]
    pub page_context: Map<String, Value>,
    pub turn_count: u64,
    #[serde(default)]
    pub summarized_through: u64,
    #[serde(default)]
    pub needs_summary: bool,
    /// How many turns were retracted; a context load reads this many more turns to find
    /// enough that were not.
    #[serde(default)]
    pub retracted_turns: u64,
    /// Flips on every `SUMMARY_REARM_TURNS`-th append while a due summary has not landed, so
    /// the stream filter fires again: a lost or failed trigger heals itself.
    #[serde(default)]
    pub summary_rearm: bool,
    pub created_at: String,
    pub updated_at: String,
    /// DynamoDB's TTL attribute: the expiry plus `ttl_margin`.
    pub ttl: i64,
    /// [`TTL_AFTER_EXPIRY_SECONDS`] on every META written since the margin exists; absent on
    /// an older one, whose `ttl` is its expiry (every write of it adds the margin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_margin: Option<i64>,
    pub version: u64,
    #[serde(rename = "GSI1PK", default, skip_serializing_if = "Option::is_none")]
    pub gsi1pk: Option<String>,
    /// The last activity as of the customer index's last move: it moves only when the
    /// activity is at least `RESUME_ORDER_STEP_SECONDS` newer, so appends rarely rewrite the index.
    #[serde(rename = "GSI1SK", default, skip_serializing_if = "Option::is_none")]
    pub gsi1sk: Option<String>,
    /// `turn_count` as of the customer index's last move; the session list shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed_turn_count: Option<u64>,
    /// The version the last PATCH replaced. With `page_context`, it tells the retry of a PATCH
    /// that was applied (its answer lost) from a change made since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patched_from: Option<u64>,
    /// The failover epochs the session's turns were written under after epoch 0 ([`crate::chain`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<Segment>,
    /// The failover epoch of the home that last moved `version` (0 is not stored): two homes
    /// count versions from the same number, so the ETag names the epoch too ([`MetaItem::tag`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub version_epoch: u64,
    /// The `version_epoch` that `patched_from` was counted under.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub patched_from_epoch: u64,
}

/// A page context as stored: the map itself, or, when still sealed (binary), an empty map.
fn page_context_unless_sealed<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Map<String, Value>, D::Error> {
    struct ClearOrSealed;
    impl<'de> serde::de::Visitor<'de> for ClearOrSealed {
        type Value = Map<String, Value>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a page context, as a map or sealed")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            Map::deserialize(serde::de::value::MapAccessDeserializer::new(map))
        }

        fn visit_bytes<E: serde::de::Error>(self, _sealed: &[u8]) -> Result<Self::Value, E> {
            Ok(Map::new())
        }

        fn visit_byte_buf<E: serde::de::Error>(self, _sealed: Vec<u8>) -> Result<Self::Value, E> {
            Ok(Map::new())
        }
    }
    deserializer.deserialize_any(ClearOrSealed)
}

impl MetaItem {
    /// When the session expires: its `ttl` less its `ttl_margin`.
    /// The version as its ETag names it: `version`, with the failover epoch of the home that
    /// counted it in the bits above [`VERSION_BITS`], so that after a failover no ETag the old
    /// home gave can name a body of the new home ([`crate::chain`]). `version` itself before
    /// any failover.
    pub fn tag(&self) -> u64 {
        version_tag(self.version_epoch, self.version)
    }

    /// [`MetaItem::tag`] of the version the last PATCH replaced.
    pub fn patched_from_tag(&self) -> Option<u64> {
        self.patched_from.map(|from| version_tag(self.patched_from_epoch, from))
    }

    /// Which item is each of the session's turns.
    pub fn chain(&self) -> Chain {
        Chain::new(&self.segments)
    }

    pub fn expires_secs(&self) -> i64 {
        self.ttl.saturating_sub(self.ttl_margin.unwrap_or(0))
    }

    pub fn is_expired(&self, now_epoch_seconds: i64) -> bool {
        self.expires_secs() <= now_epoch_seconds
    }

    /// The data key this session's content is sealed under: its customer's (named by
    /// `customer_key_ref` of the owner), or for a guest the key of the day the session was created,
    /// of `guest_region` when there are several regions ([`keys::regional_guest_data_key`],
    /// else [`keys::guest_data_key`]).
    pub fn data_key_ref(
        &self,
        guest_region: Option<&str>,
        customer_key_ref: impl FnOnce(&str) -> Result<String, Error>,
    ) -> Result<String, Error> {
        let day = self.created_at.get(..10).unwrap_or(&self.created_at);
        if self.guest {
            Ok(match guest_region {
                Some(region) => keys::regional_guest_data_key(region, day),
                None => keys::guest_data_key(day),
            })
        } else {
            customer_key_ref(&self.owner_id)
        }
    }

    pub fn session(&self) -> Session {
        Session {
            session_id: self.session_id,
            customer_id: (!self.guest).then(|| self.owner_id.clone()),
            page_context: self.page_context.clone(),
            turn_count: self.turn_count,
            created_at: self.created_at.clone(),
            updated_at: self.updated_at.clone(),
            expires_at: clock::format_epoch_seconds(self.expires_secs()),
        }
    }
}

/// `SK = TURN#<index>`: one turn, its content gzip-compressed. Like every item of a session
/// but META, it has no `ttl`: it lives exactly as long as its session, and goes when the
/// session is deleted or when TTL removes META (the sweep-expired function).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TurnItem {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    pub role: Role,
    #[serde(with = "serde_bytes")]
    pub content: Vec<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_count: Option<u32>,
    pub created_at: String,
    /// The turn's `item`, its JSON gzip-compressed like `content`.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    pub item: Option<Vec<u8>>,
    /// Set once, when the newest turn is retracted; it keeps its index and its response id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retracted_at: Option<String>,
}

impl TurnItem {
    /// The failover epoch the turn was written under (0 before any failover).
    pub fn epoch(&self) -> u64 {
        keys::turn_key_parts(&self.sk).map_or(0, |(_index, epoch)| epoch)
    }

    /// The turn as the export lists it when its session's order does not hold it.
    pub fn into_unmerged(self) -> Result<UnmergedTurn, Error> {
        let epoch = self.epoch();
        Ok(UnmergedTurn { epoch, turn: self.into_turn()? })
    }

    pub fn turn_index(&self) -> Result<u64, Error> {
        keys::turn_index_from_sk(&self.sk)
            .ok_or_else(|| Error::Corrupt(format!("bad turn key {:?}", self.sk).into()))
    }

    pub fn into_turn(self) -> Result<Turn, Error> {
        Ok(Turn {
            turn_index: self.turn_index()?,
            role: self.role,
            content: codec::decompress(&self.content)?,
            intent: self.intent,
            token_count: self.token_count,
            created_at: self.created_at,
            item: self.item.as_deref().map(codec::decompress_json).transpose()?,
            retracted_at: self.retracted_at,
        })
    }
}

/// `SK = RESP#<response_id>`: remembers which turn a response id produced, for as long as
/// the session lives, so a retry at any delay finds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResponseItem {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    pub turn_index: u64,
    pub payload_hash: String,
    /// The failover epoch the turn was written under ([`crate::chain`]); 0 is not stored.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub epoch: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// The bits of an ETag that count versions; the failover epoch is above them.
pub const VERSION_BITS: u32 = 40;

/// An ETag's number: `version` counted under failover `epoch`.
pub fn version_tag(epoch: u64, version: u64) -> u64 {
    (epoch << VERSION_BITS) | (version & ((1 << VERSION_BITS) - 1))
}

/// The failover epoch and the version an ETag's number names ([`version_tag`]).
pub fn tag_parts(tag: u64) -> (u64, u64) {
    (tag >> VERSION_BITS, tag & ((1 << VERSION_BITS) - 1))
}

/// `SK = ~SUMMARY`: a copy of the newest summary, read with META and the recent turns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LatestSummaryItem {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    pub through_turn: u64,
    #[serde(with = "serde_bytes")]
    pub text: Vec<u8>,
    pub created_at: String,
    /// The failover epoch of turn `through_turn` in the chain the summary was made from
    /// ([`crate::chain`]); 0 is not stored. A summary an old home made of its own turns,
    /// arriving after the new home wrote on, names another epoch than the session's chain.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub epoch: u64,
}

impl LatestSummaryItem {
    pub fn summary(&self) -> Result<Summary, Error> {
        Ok(Summary {
            text: codec::decompress(&self.text)?,
            through_turn: self.through_turn,
        })
    }
}

/// `SK = SUMMARY#<through_turn>`: the summary of one fixed window, kept as history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SummaryItem {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    pub through_turn: u64,
    #[serde(with = "serde_bytes")]
    pub text: Vec<u8>,
    pub created_at: String,
    /// As [`LatestSummaryItem::epoch`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub epoch: u64,
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use aws_sdk_dynamodb::primitives::Blob;
    use aws_sdk_dynamodb::types::AttributeValue;

    use super::*;

    fn meta(page_context: Option<AttributeValue>) -> HashMap<String, AttributeValue> {
        let s = |v: &str| AttributeValue::S(v.to_owned());
        let n = |v: &str| AttributeValue::N(v.to_owned());
        let mut item = HashMap::from([
            ("PK".to_owned(), s("SESSION#6f1c2a9e-3b4d-4c8a-9e21-5a7b8c9d0e1f")),
            ("SK".to_owned(), s(keys::META)),
            ("session_id".to_owned(), s("6f1c2a9e-3b4d-4c8a-9e21-5a7b8c9d0e1f")),
            ("owner_id".to_owned(), s("alice")),
            ("guest".to_owned(), AttributeValue::Bool(false)),
            ("turn_count".to_owned(), n("2")),
            ("created_at".to_owned(), s("2026-01-01T00:00:00.000Z")),
            ("updated_at".to_owned(), s("2026-01-01T00:00:00.000Z")),
            ("ttl".to_owned(), n("1")),
            ("version".to_owned(), n("3")),
        ]);
        if let Some(page_context) = page_context {
            item.insert("page_context".to_owned(), page_context);
        }
        item
    }

    #[test]
    fn an_etag_names_the_version_and_the_epoch_of_the_home_that_counted_it() {
        assert_eq!(version_tag(0, 5), 5, "before any failover the ETag is the version");
        assert_ne!(version_tag(1, 5), version_tag(0, 5));
        assert_eq!(tag_parts(version_tag(3, 42)), (3, 42));
        assert_eq!(tag_parts(7), (0, 7));
    }

    #[test]
    fn a_raw_meta_reads_with_its_page_context_clear_absent_or_left_sealed() {
        let clear = AttributeValue::M(HashMap::from([("page".to_owned(), AttributeValue::S("/cart".into()))]));
        let read = |item| serde_dynamo::from_item::<_, MetaItem>(item).unwrap();
        assert_eq!(read(meta(Some(clear))).page_context["page"], "/cart");
        assert!(read(meta(None)).page_context.is_empty());
        let sealed = read(meta(Some(AttributeValue::B(Blob::new(vec![0xE1, 1, 2, 3])))));
        assert!(sealed.page_context.is_empty(), "a sealed page context is left closed");
        assert_eq!(sealed.turn_count, 2, "and the rest of META reads as ever");
        assert!(serde_dynamo::from_item::<_, MetaItem>(meta(Some(AttributeValue::S("x".into())))).is_err());
    }
}
