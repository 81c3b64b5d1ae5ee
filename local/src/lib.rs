//! Local development for tidewater: the pieces `make run` starts beside DynamoDB Local.
//!
//! - [`template`]: routes and stream filters read from `template.yaml`, so they never drift.
//! - [`gateway`]: the HTTP API with its JWT authorizer, in front of `cargo lambda watch`.
//! - [`apigw`]: API Gateway HTTP API (payload 2.0) events, as the authorizer delivers them.
//! - [`filter`]: a function's stream event source mapping and its `FilterCriteria`, evaluated as Lambda does.
//! - [`stream`]: the stream runner, which drives the summarize function from DynamoDB Local's stream.
//! - [`fault`]: a proxy in front of DynamoDB that injects throttling, errors, latency and lost answers.
//! - [`run_secret`]: the gateway's signing secret, random for each run unless set.
//! - [`shutdown`]: the Ctrl-C handling every long-running tool shares.
pub mod apigw;
pub mod fault;
pub mod filter;
pub mod gateway;
pub mod run_secret;
pub mod shutdown;
pub mod stream;
pub mod template;
