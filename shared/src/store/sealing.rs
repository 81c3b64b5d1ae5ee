//! Which attributes of an item are customer content, and sealing and opening them: content is
//! encrypted on its way into a put and decrypted as it comes out of a read, so every other
//! module handles the plaintext forms it always did.
//!
//! Sealed: a turn's `content` and `item`, a summary's `text` (`~SUMMARY` and `SUMMARY#`), a
//! fact's `text` (a string, sealed to binary and opened back to a string) and a session's
//! `page_context` (a map, sealed as its JSON and opened back to the map; an empty one stays
//! clear, as it says nothing). Keys, counters, flags, hashes and expiry stay clear:
//! conditions, filters and the stream need them. Each envelope is bound to its item's keys
//! and attribute, and a turn's to its role and creation time ([`binding`]).
use std::collections::{BTreeSet, HashMap};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

use super::data_keys::OpenKeys;
use super::DynamoStore;
use crate::crypto::envelope::{self, Binding};
use crate::crypto::{CryptoError, DataKey};
use crate::{keys, Error};

/// The attributes that hold customer content.
pub(crate) const SEALED_ATTRIBUTES: &[&str] = &["content", "item", "text", PAGE_CONTEXT];

/// A session's page context (META, and the customer index that projects it).
pub(crate) const PAGE_CONTEXT: &str = "page_context";
/// The keyed digest earlier versions kept beside a sealed page context; a PATCH removes it
/// (`store/update.rs` compares plaintexts instead).
pub(crate) const PAGE_CONTEXT_DIGEST: &str = "page_context_digest";

/// How many times the keys an opening holds are read again when their reads have aged past
/// the lease before decryption; still past it after that, the opening answers 503.
const MAX_KEY_REREADS: u32 = 1;

/// What the plaintext inside an envelope was, so it comes out as the same attribute type.
const PLAIN_BINARY: u8 = 1;
const PLAIN_STRING: u8 = 2;
const PLAIN_MAP: u8 = 3;

/// Whether `value` is a map with something in it: an empty map has nothing to seal.
fn is_filled_map(value: &AttributeValue) -> bool {
    value.as_m().is_ok_and(|map| !map.is_empty())
}

/// What an envelope in `item`'s `attribute` is bound to.
fn binding(item: &HashMap<String, AttributeValue>, attribute: &'static str) -> Binding {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str).unwrap_or("");
    let mut binding = Binding::new(text(keys::PK), text(keys::SK), attribute);
    if text(keys::SK).starts_with(keys::TURN_PREFIX) {
        binding = binding.with("role", text("role")).with("created_at", text("created_at"));
    }
    binding
}

/// Seals every content attribute of `item` under `key`, which `key_ref` names.
pub(crate) fn seal_item(item: &mut HashMap<String, AttributeValue>, key_ref: &str, key: &DataKey) -> Result<(), Error> {
    for attribute in SEALED_ATTRIBUTES {
        let plain = match item.get(*attribute) {
            Some(AttributeValue::B(bytes)) if envelope::header(bytes.as_ref())?.is_none() => {
                [&[PLAIN_BINARY], bytes.as_ref()].concat()
            }
            Some(AttributeValue::S(text)) => [&[PLAIN_STRING], text.as_bytes()].concat(),
            Some(map @ AttributeValue::M(_)) if is_filled_map(map) => {
                let json: serde_json::Value = serde_dynamo::from_attribute_value(map.clone()).map_err(Error::corrupt)?;
                [&[PLAIN_MAP], serde_json::to_vec(&json).map_err(Error::corrupt)?.as_slice()].concat()
            }
            _ => continue,
        };
        let sealed = envelope::seal(key_ref, key, &binding(item, attribute), &plain)?;
        item.insert((*attribute).to_owned(), AttributeValue::B(Blob::new(sealed)));
    }
    Ok(())
}

/// `value`, the attribute `attribute` of the item keyed `pk`, `sk`, sealed under `key` as
/// [`seal_item`] would seal it in place (for an update that sets one attribute).
pub(crate) fn seal_attribute(
    pk: &str,
    sk: &str,
    attribute: &'static str,
    value: AttributeValue,
    key_ref: &str,
    key: &DataKey,
) -> Result<AttributeValue, Error> {
    let mut item = HashMap::from([
        (keys::PK.to_owned(), AttributeValue::S(pk.to_owned())),
        (keys::SK.to_owned(), AttributeValue::S(sk.to_owned())),
        (attribute.to_owned(), value),
    ]);
    seal_item(&mut item, key_ref, key)?;
    item.remove(attribute).ok_or(Error::Corrupt("a sealed attribute went missing".into()))
}

/// The key references of the envelopes in `items`.
pub(crate) fn envelope_refs<'a>(items: impl IntoIterator<Item = &'a HashMap<String, AttributeValue>>) -> Result<BTreeSet<String>, Error> {
    let mut refs = BTreeSet::new();
    for item in items {
        for attribute in SEALED_ATTRIBUTES {
            if let Some(AttributeValue::B(bytes)) = item.get(*attribute) {
                if let Some(header) = envelope::header(bytes.as_ref())? {
                    refs.insert(header.key_ref.to_owned());
                }
            }
        }
    }
    Ok(refs)
}

/// Opens every envelope of `item` in place. A value whose key is destroyed (deleted, or
/// created again since) is [`Error::NotFound`]: it was erased. One that does not open with
/// its key (moved from another item, changed) is [`Error::Corrupt`], and so is a value that
/// is not sealed at all unless `plain_readable` (content written before encryption).
pub(crate) fn open_item(item: &mut HashMap<String, AttributeValue>, keys: &OpenKeys, plain_readable: bool) -> Result<(), Error> {
    let refused = || Error::Corrupt("content that is not sealed, where sealed content is required (PLAINTEXT_READABLE)".into());
    for attribute in SEALED_ATTRIBUTES {
        let bytes = match item.get(*attribute) {
            Some(AttributeValue::B(bytes)) => bytes,
            Some(AttributeValue::S(_)) if !plain_readable => return Err(refused()),
            Some(map @ AttributeValue::M(_)) if is_filled_map(map) && !plain_readable => return Err(refused()),
            _ => continue,
        };
        let Some(header) = envelope::header(bytes.as_ref())? else {
            if plain_readable {
                continue;
            }
            return Err(refused());
        };
        let key = keys.get(header.key_ref).ok_or(Error::NotFound)?;
        let plain = match envelope::open(&header, key, &binding(item, attribute)) {
            Ok(plain) => plain,
            Err(CryptoError::KeyDestroyed) => return Err(Error::NotFound),
            Err(other) => return Err(other.into()),
        };
        let value = match plain.split_first() {
            Some((&PLAIN_BINARY, bytes)) => AttributeValue::B(Blob::new(bytes.to_vec())),
            Some((&PLAIN_STRING, text)) => AttributeValue::S(String::from_utf8(text.to_vec()).map_err(Error::corrupt)?),
            Some((&PLAIN_MAP, json)) => {
                let json: serde_json::Value = serde_json::from_slice(json).map_err(Error::corrupt)?;
                serde_dynamo::to_attribute_value(json).map_err(Error::corrupt)?
            }
            _ => return Err(CryptoError::Malformed.into()),
        };
        item.insert((*attribute).to_owned(), value);
    }
    Ok(())
}

impl DynamoStore {
    /// Opens the content of `items` in place, reading each key they name once.
    pub(crate) async fn open_items(&self, items: &mut [HashMap<String, AttributeValue>]) -> Result<(), Error> {
        self.open_items_with(items, OpenKeys::default()).await
    }

    /// [`DynamoStore::open_items`], with keys read already (beside the items' own read).
    pub(crate) async fn open_items_with(&self, items: &mut [HashMap<String, AttributeValue>], mut known: OpenKeys) -> Result<(), Error> {
        let missing: BTreeSet<String> = envelope_refs(items.iter())?.into_iter().filter(|r| !known.contains(r)).collect();
        known.extend(Box::pin(self.opening_keys(missing)).await?);
        // A key found beside a slow read of the items may be past its lease by now: a purge's
        // receipt waits out only the lease, so it is asked again (decryption follows at once).
        // The answer to that read may come late too (a stalled network, a starved instance),
        // so every key is checked again after it; one still past its lease is not used.
        for reread in 0.. {
            let stale = known.stale(|found_at| self.still_vouched(found_at));
            if stale.is_empty() {
                break;
            }
            if reread == MAX_KEY_REREADS {
                return Err(Error::Unavailable("a data key's read answered too late to vouch for it".into()));
            }
            known.extend(Box::pin(self.opening_keys(stale)).await?);
        }
        // A store that does not encrypt has only plaintext to serve.
        let plain_readable = self.config.plaintext_readable || self.encryption().is_none();
        for item in items.iter_mut() {
            open_item(item, &known, plain_readable)?;
        }
        Ok(())
    }

    /// The caller's own data key, read for a load beside its items; nothing for a guest,
    /// whose key is named by the session's day and read after.
    pub(crate) async fn prefetch_key(&self, caller: &crate::Caller) -> Result<OpenKeys, Error> {
        if caller.is_guest() || self.encryption().is_none() {
            return Ok(OpenKeys::default());
        }
        self.opening_keys(BTreeSet::from([self.customer_key_ref(&caller.customer_id)?])).await
    }

    /// An item copied from the table or its stream (a restore, an export, a backup), with its
    /// content opened as this store would open it now: [`Error::NotFound`] when its key has
    /// been destroyed. For tests and `make migrate`.
    pub async fn open_copied_item(&self, item: &HashMap<String, AttributeValue>) -> Result<HashMap<String, AttributeValue>, Error> {
        let mut items = [item.clone()];
        self.open_items(&mut items).await?;
        let [opened] = items;
        Ok(opened)
    }
}

/// Whether `item` holds content in its plaintext form, written before encryption.
pub fn has_plain_content(item: &HashMap<String, AttributeValue>) -> bool {
    SEALED_ATTRIBUTES.iter().any(|attribute| match item.get(*attribute) {
        Some(AttributeValue::B(bytes)) => !matches!(envelope::header(bytes.as_ref()), Ok(Some(_))),
        Some(AttributeValue::S(_)) => true,
        Some(map @ AttributeValue::M(_)) => is_filled_map(map),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn turn(content: &[u8]) -> HashMap<String, AttributeValue> {
        HashMap::from([
            (keys::PK.to_owned(), AttributeValue::S("SESSION#1".into())),
            (keys::SK.to_owned(), AttributeValue::S(keys::turn_sk(1))),
            ("role".to_owned(), AttributeValue::S("user".into())),
            ("created_at".to_owned(), AttributeValue::S("2026-01-01T00:00:00.000Z".into())),
            ("content".to_owned(), AttributeValue::B(Blob::new(content))),
            ("turn_count".to_owned(), AttributeValue::N("1".into())),
        ])
    }

    #[test]
    fn sealing_then_opening_gives_the_item_back_and_leaves_keys_clear() {
        let key = Arc::new(DataKey::generate_with_material().0);
        let plain = turn(b"gzip bytes");
        let mut sealed = plain.clone();
        seal_item(&mut sealed, "CUST#alice", &key).unwrap();
        assert_ne!(sealed["content"], plain["content"]);
        assert_eq!(sealed[keys::PK], plain[keys::PK]);
        assert_eq!(sealed["turn_count"], plain["turn_count"]);
        assert!(has_plain_content(&plain) && !has_plain_content(&sealed));
        assert_eq!(envelope_refs([&sealed]).unwrap(), BTreeSet::from(["CUST#alice".to_owned()]));
        let keys = OpenKeys::from_iter([("CUST#alice".to_owned(), Some(key))]);
        open_item(&mut sealed, &keys, false).unwrap();
        assert_eq!(sealed, plain);
    }

    #[test]
    fn a_destroyed_key_reads_as_erased_and_a_moved_value_as_corrupt() {
        let key = Arc::new(DataKey::generate_with_material().0);
        let mut sealed = turn(b"x");
        seal_item(&mut sealed, "CUST#alice", &key).unwrap();
        let gone = OpenKeys::from_iter([("CUST#alice".to_owned(), None)]);
        assert!(matches!(open_item(&mut sealed.clone(), &gone, false), Err(Error::NotFound)));
        let keys = OpenKeys::from_iter([("CUST#alice".to_owned(), Some(key))]);
        let mut moved = sealed.clone();
        moved.insert(keys::SK.to_owned(), AttributeValue::S(keys::turn_sk(2)));
        assert!(matches!(open_item(&mut moved, &keys, false), Err(Error::Corrupt(_))));
        let mut other_role = sealed;
        other_role.insert("role".to_owned(), AttributeValue::S("assistant".into()));
        assert!(matches!(open_item(&mut other_role, &keys, false), Err(Error::Corrupt(_))));
    }

    #[test]
    fn a_page_context_seals_to_binary_opens_back_to_its_map_and_an_empty_one_stays_clear() {
        let key = Arc::new(DataKey::generate_with_material().0);
        let page_context: AttributeValue =
            serde_dynamo::to_attribute_value(serde_json::json!({"page": "/cart", "orders": ["A-1"], "n": 2, "deep": {"x": null}})).unwrap();
        let meta = |page_context: AttributeValue| {
            HashMap::from([
                (keys::PK.to_owned(), AttributeValue::S("SESSION#1".into())),
                (keys::SK.to_owned(), AttributeValue::S(keys::META.into())),
                (PAGE_CONTEXT.to_owned(), page_context),
            ])
        };
        let plain = meta(page_context.clone());
        let mut sealed = plain.clone();
        seal_item(&mut sealed, "CUST#alice", &key).unwrap();
        assert!(sealed[PAGE_CONTEXT].is_b() && has_plain_content(&plain) && !has_plain_content(&sealed));
        let alone = seal_attribute("SESSION#1", keys::META, PAGE_CONTEXT, page_context, "CUST#alice", &key).unwrap();
        let keys = OpenKeys::from_iter([("CUST#alice".to_owned(), Some(key.clone()))]);
        for mut item in [sealed.clone(), meta(alone)] {
            open_item(&mut item, &keys, false).unwrap();
            assert_eq!(item, plain);
        }
        let mut moved = sealed;
        moved.insert(keys::PK.to_owned(), AttributeValue::S("SESSION#2".into()));
        assert!(matches!(open_item(&mut moved, &keys, false), Err(Error::Corrupt(_))));

        let mut empty = meta(AttributeValue::M(HashMap::new()));
        seal_item(&mut empty, "CUST#alice", &key).unwrap();
        assert_eq!(empty[PAGE_CONTEXT], AttributeValue::M(HashMap::new()), "nothing to seal");
        assert!(!has_plain_content(&empty));
        open_item(&mut empty, &OpenKeys::default(), false).unwrap();
        assert!(matches!(open_item(&mut plain.clone(), &OpenKeys::default(), false), Err(Error::Corrupt(_))), "plain, refused");
    }

    #[test]
    fn plain_items_pass_through_opening_untouched_only_while_plaintext_is_readable() {
        let mut plain = turn(&crate::codec::compress("old"));
        let before = plain.clone();
        open_item(&mut plain, &OpenKeys::default(), true).unwrap();
        assert_eq!(plain, before);
        assert!(matches!(open_item(&mut plain, &OpenKeys::default(), false), Err(Error::Corrupt(_))));
        let mut fact = HashMap::from([("text".to_owned(), AttributeValue::S("likes Frieren".into()))]);
        assert!(matches!(open_item(&mut fact, &OpenKeys::default(), false), Err(Error::Corrupt(_))));
    }
}
