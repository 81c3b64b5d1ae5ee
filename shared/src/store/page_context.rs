//! The page context a session declares, read before a turn is redacted (its order numbers
//! are not phone numbers).
use std::future::Future;

use serde_json::{Map, Value};
use uuid::Uuid;

use super::{from_item, DynamoStore};
use crate::items::MetaItem;
use crate::model::Caller;
use crate::Error;

/// Reads a session's page context (redaction of turn content with `phone` enabled).
pub trait PageContextReader {
    /// The page context of the session when `caller` owns it; `None` when there is no such
    /// session or it is someone else's (the append that follows answers 404).
    fn page_context(
        &self,
        caller: &Caller,
        session_id: Uuid,
    ) -> impl Future<Output = Result<Option<Map<String, Value>>, Error>> + Send;
}

impl PageContextReader for DynamoStore {
    /// One eventually consistent GetItem of the session record (0.5 RCU while it is under
    /// 4 KB) and, beside it, the read of the caller's data key that opens its page context.
    async fn page_context(&self, caller: &Caller, session_id: Uuid) -> Result<Option<Map<String, Value>>, Error> {
        let (item, known) =
            futures::join!(self.read_meta_item(&session_id, false, self.config.write_timeout), self.prefetch_key(caller));
        let Some(item) = item? else {
            return Ok(None);
        };
        let meta: MetaItem = from_item(item.clone())?;
        if meta.owner_id != caller.customer_id {
            return Ok(None);
        }
        let mut items = [item];
        Box::pin(self.open_items_with(&mut items, known?)).await?;
        let [opened] = items;
        Ok(Some(from_item::<MetaItem>(opened)?.page_context))
    }
}
