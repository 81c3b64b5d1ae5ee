//! Local development for tidewater: the pieces `make run` starts beside DynamoDB Local.
//!
//! - [`template`]: routes and stream filters read from `template.yaml`, so they never drift.
//! - [`gateway`]: the HTTP API with its JWT authorizer, in front of `cargo lambda watch`.
//! - [`apigw`]: API Gateway HTTP API (payload 2.0) events, as the authorizer delivers them.
//! - [`filter`]: a function's stream event source mapping and its `FilterCriteria`, evaluated as Lambda does.
//! - [`stream`]: the stream runner, which drives the summarize function from DynamoDB Local's stream.
//! - [`fault`]: a proxy in front of DynamoDB that injects throttling, errors, latency and lost answers.
//! - [`mesh`]: multi-region replication (DynamoDB global tables, MREC) as pure state.
//! - [`shutdown`]: the Ctrl-C handling every long-running tool shares.
pub mod apigw;
pub mod fault;
pub mod filter;
pub mod gateway;
pub mod mesh;
pub mod shutdown;
pub mod stream;
pub mod template;
