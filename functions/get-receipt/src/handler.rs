//! `GET /receipts/{receipt_id}`: a deletion receipt, for the privacy role or the customer it
//! belongs to; 404 for anyone else.
use lambda_http::{Body, Request, Response};
use tidewater::{http, ReceiptReader};

pub async fn handle<S: ReceiptReader>(store: &S, request: Request) -> Response<Body> {
    http::serve("get-receipt", &request, async {
        let caller = http::caller(&request)?;
        let receipt_id = http::parse_uuid("receipt id", &http::path_param(&request, "receipt_id").unwrap_or_default())?;
        let receipt = store.read_receipt(&caller, receipt_id).await?;
        Ok(http::json(200, &receipt))
    })
    .await
}
