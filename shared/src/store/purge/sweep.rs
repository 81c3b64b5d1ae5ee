//! The TTL-sweep entry point: what DynamoDB's TTL left of a session after it removed META.

use uuid::Uuid;

use crate::store::DynamoStore;
use crate::Error;

use super::ExpiredSessionSweeper;


impl ExpiredSessionSweeper for DynamoStore {
    async fn sweep_expired_session(&self, session_id: &Uuid, owner: Option<&str>) -> Result<u64, Error> {
        self.sweep_expired(session_id, owner).await
    }
}

impl DynamoStore {
    /// What the TTL of a session's META leaves behind: every other item of the session, then
    /// its registry entry (for a signed-in owner). Safe to repeat. Returns the items deleted.
    pub(super) async fn sweep_expired(&self, session_id: &Uuid, owner: Option<&str>) -> Result<u64, Error> {
        if self.read_meta(session_id, true, self.config.write_timeout).await?.is_some() {
            // The session lives (its META is back, or was never removed): nothing to sweep.
            return Ok(0);
        }
        let deleted = self.sweep(self, session_id).await?;
        if let Some(owner) = owner {
            self.unregister(&self.customer_hash(owner)?, session_id).await?;
        }
        tracing::info!(%session_id, items_deleted = deleted, "expired session swept");
        Ok(deleted)
    }
}
