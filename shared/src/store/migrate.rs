//! `make migrate`: seals, in place, the content written before encryption. A one-off batch
//! job, so it pages through the table with Scan (no function ever scans). Each item has
//! its content attributes set in place (never the whole item put back) with a condition that
//! they are still what was read, so a write racing the migration wins and the item is left for the next run; the page's last key is the
//! checkpoint a cut-off run resumes from.
use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;
use uuid::Uuid;

use super::sealing::{has_plain_content, seal_item, SEALED_ATTRIBUTES};
use super::{within, DynamoStore};
use crate::{keys, Error};

/// What one page of a migration did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct MigrationPage {
    /// Items sealed in place.
    pub sealed: u64,
    /// Items with plain content whose owner is gone (their session's META expired or was
    /// deleted): left as they are, for TTL, the sweep or a purge to remove.
    pub left_plain: u64,
    /// Items that changed while being sealed: a later run seals them.
    pub raced: u64,
    /// Where the next page starts; `None` after the last.
    pub next: Option<HashMap<String, AttributeValue>>,
}

impl DynamoStore {
    /// Seals the plain content of up to `page_size` items from `start` on. Fails closed: a
    /// store without a key wrapper seals nothing.
    pub async fn seal_plain_items(&self, start: Option<HashMap<String, AttributeValue>>, page_size: i32) -> Result<MigrationPage, Error> {
        if self.encryption().is_none() {
            return Err(Error::Config("MASTER_KEYS (or KMS_KEY_ID) is needed to seal content".to_owned()));
        }
        let scan = self.client.scan().table_name(self.table()).set_exclusive_start_key(start).limit(page_size.max(1)).send();
        let output = within(self.config.write_timeout, scan).await?.map_err(Error::from_store)?;
        let mut page = MigrationPage { next: output.last_evaluated_key.filter(|k| !k.is_empty()), ..MigrationPage::default() };
        // Each session's key and, for a guest's day key, the expiry it must cover.
        let mut owners: HashMap<Uuid, Option<(String, Option<i64>)>> = HashMap::new();
        for item in output.items.unwrap_or_default() {
            if !has_plain_content(&item) {
                continue;
            }
            let Some(session_id) = owning_session(&item) else {
                page.left_plain += 1;
                continue;
            };
            if let std::collections::hash_map::Entry::Vacant(owner) = owners.entry(session_id) {
                let meta = self.read_meta(&session_id, true, self.config.write_timeout).await?;
                owner.insert(match meta {
                    Some(meta) => self.session_key_ref(&meta)?.map(|key_ref| (key_ref, meta.guest.then_some(meta.ttl))),
                    None => None,
                });
            }
            let Some(Some((key_ref, until))) = owners.get(&session_id) else {
                page.left_plain += 1;
                continue;
            };
            let Some(key) = Box::pin(self.sealing_key_until(key_ref, *until)).await? else { continue };
            let mut sealed = item.clone();
            seal_item(&mut sealed, key_ref, &key)?;
            if self.replace_if_unchanged(&item, sealed).await? {
                page.sealed += 1;
            } else {
                page.raced += 1;
            }
        }
        Ok(page)
    }

    /// Sets, in place of `plain`'s, the attributes `sealed` changed (its sealed content) if every content attribute is still as read. Only those:
    /// counters, flags, expiry and index keys are left as they are now, so a write that raced
    /// the migration on them (an append, a summary) is kept, never rolled back to the scan.
    async fn replace_if_unchanged(&self, plain: &HashMap<String, AttributeValue>, sealed: HashMap<String, AttributeValue>) -> Result<bool, Error> {
        let (Some(pk), Some(sk)) = (plain.get(keys::PK), plain.get(keys::SK)) else {
            return Err(Error::Corrupt("a scanned item without its keys".into()));
        };
        let mut update = self.client.update_item().table_name(self.table()).key(keys::PK, pk.clone()).key(keys::SK, sk.clone());
        let mut sets = Vec::new();
        let mut conditions = vec!["attribute_exists(PK)".to_owned()];
        for (at, attribute) in SEALED_ATTRIBUTES.iter().enumerate() {
            let name = format!("#a{at}");
            let mut named = false;
            if let Some(value) = plain.get(*attribute) {
                conditions.push(format!("{name} = :old{at}"));
                update = update.expression_attribute_values(format!(":old{at}"), value.clone());
                named = true;
            }
            if let Some(value) = sealed.get(*attribute).filter(|value| plain.get(*attribute) != Some(*value)) {
                sets.push(format!("{name} = :new{at}"));
                update = update.expression_attribute_values(format!(":new{at}"), value.clone());
                named = true;
            }
            if named {
                update = update.expression_attribute_names(name, *attribute);
            }
        }
        if sets.is_empty() {
            return Ok(true);
        }
        let update = update.update_expression(format!("SET {}", sets.join(", "))).condition_expression(conditions.join(" AND ")).send();
        match within(self.config.write_timeout, update).await? {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => Ok(false),
            Err(e) => Err(Error::from_store(e)),
        }
    }
}

/// The session whose owner names an item's key: its own partition's, or for a fact the
/// session that stated it (its `stated_key` is `<stated_at>#<session_id>#<to_turn>`).
fn owning_session(item: &HashMap<String, AttributeValue>) -> Option<Uuid> {
    let pk = item.get(keys::PK)?.as_s().ok()?;
    if let Some(session_id) = keys::session_id_from_pk(pk) {
        return Some(session_id);
    }
    let stated = item.get("stated_key")?.as_s().ok()?;
    stated.split('#').nth(1)?.parse().ok()
}
