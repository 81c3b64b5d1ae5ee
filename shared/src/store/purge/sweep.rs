//! The TTL-sweep entry point: what DynamoDB's TTL left of a session after it removed META,
//! with the janitor's work item written first, so that a sweep cut off is finished.

use uuid::Uuid;

use crate::store::janitor::Task;
use crate::store::DynamoStore;
use crate::{home, Error};

use super::{BatchDeleter, ExpiredSessionSweeper};


impl ExpiredSessionSweeper for DynamoStore {
    async fn sweep_expired_session(&self, session_id: &Uuid, owner: Option<&str>) -> Result<u64, Error> {
        self.sweep_expired_with(self, session_id, owner).await
    }
}

impl DynamoStore {
    /// What the TTL of a session's META leaves behind: every other item of the session, then
    /// its registry entry (for a signed-in owner), deleting through `deleter`. Safe to repeat.
    /// Returns the items deleted.
    pub async fn sweep_expired_with<D: BatchDeleter>(
        &self,
        deleter: &D,
        session_id: &Uuid,
        owner: Option<&str>,
    ) -> Result<u64, Error> {
        if self.read_meta(session_id, true, self.config.write_timeout).await?.is_some() {
            // The session lives (its META is back, or was never removed): nothing to sweep.
            return Ok(0);
        }
        let hash = owner.map(|owner| self.customer_hash(owner)).transpose()?;
        // The session's slot: its owner's, or a guest session's own.
        let slot = owner.map_or_else(|| home::id_slot(session_id), home::customer_slot);
        let work = self.schedule(&Task::Session { session_id: *session_id, customer_hash: hash.clone() }, Some(slot)).await?;
        let deleted = self.sweep(deleter, session_id, None).await?;
        if let Some(hash) = &hash {
            self.unregister(hash, session_id).await?;
        }
        self.retire_session_work(&work).await?;
        tracing::info!(%session_id, items_deleted = deleted, "expired session swept");
        Ok(deleted)
    }
}
