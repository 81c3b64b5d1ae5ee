//! A guest cannot purge themself: a purge excepts guest sessions and guests have no memory,
//! so `DELETE /customers/me` from a guest could only write receipts, which never expire.
//! It is a 403, and writes nothing.
use tidewater::{Caller, NewSession, SessionCreator};
use tidewater_tests::*;

#[tokio::test]
async fn a_guest_purging_themself_is_refused_and_nothing_is_written() {
    // Given a guest with a session
    let store = store().await;
    let guest = Caller::new("drive-by", ["guest"]);
    store.create_session(&guest, NewSession::default()).await.unwrap();
    let before = scan_table(&store).await;

    // When the guest asks for a purge, through either route
    for (route, path) in [("/customers/me", "/customers/me"), ("/customers/{id}", "/customers/drive-by")] {
        let response =
            purge_customer::handle(store.as_ref(), api_request(Some(&guest), "DELETE", route, path, &[], None)).await;

        // Then it is refused, and no receipt, ledger or anything else is written
        assert_error(&response, 403, "forbidden");
    }
    assert_eq!(scan_table(&store).await.len(), before.len());
}

#[tokio::test]
async fn a_signed_in_customer_still_gets_a_receipt() {
    let store = store().await;
    let customer = alice();
    let response =
        purge_customer::handle(store.as_ref(), api_request(Some(&customer), "DELETE", "/customers/me", "/customers/me", &[], None))
            .await;
    assert_eq!(response.status(), 200, "{}", body_json(&response));
    assert!(body_json(&response)["receipt_id"].is_string());
}
