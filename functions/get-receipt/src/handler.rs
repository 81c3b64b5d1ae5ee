//! `GET /receipts/{receipt_id}`: a deletion receipt, for the privacy role or the customer it
//! belongs to; 404 for anyone else.
use lambda_http::{Body, Request, RequestExt, Response};
use tidewater::{http, Error, ReceiptReader};
use uuid::Uuid;

pub async fn handle<S: ReceiptReader>(store: &S, request: Request) -> Response<Body> {
    http::serve("get-receipt", &request, async {
        let caller = http::caller(&request)?;
        let raw = request.path_parameters_ref().and_then(|p| p.first("receipt_id")).unwrap_or_default();
        let receipt_id =
            Uuid::parse_str(raw).map_err(|_| Error::BadRequest(format!("receipt id {raw:?} is not a UUID")))?;
        let receipt = store.read_receipt(&caller, receipt_id).await?;
        Ok(http::json(200, &receipt))
    })
    .await
}
