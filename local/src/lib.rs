//! Local development for tidewater: the pieces `make run` starts beside DynamoDB Local.
//!
//! - [`template`]: routes and stream filters read from `template.yaml`, so they never drift.
//! - [`gateway`]: the HTTP API with its JWT authorizer, in front of `cargo lambda watch`.
//! - [`homing`]: which region is home to a request, and the one hop that forwards it there.
//! - [`apigw`]: API Gateway HTTP API (payload 2.0) events, as the authorizer delivers them.
//! - [`filter`]: a function's stream event source mapping and its `FilterCriteria`, evaluated as Lambda does.
//! - [`stream`]: the stream runner, which drives the summarize function from DynamoDB Local's stream.
//! - [`fault`]: a proxy in front of DynamoDB that injects throttling, errors, latency, lost answers and stale reads.
//! - [`stale`]: the lagging replica behind the proxy's stale reads: the recent history of every item.
//! - [`forward`]: passing a request on to DynamoDB and its answer back, for the proxies.
//! - [`mesh`]: multi-region replication (DynamoDB global tables, MREC) as pure state.
//! - [`replicator`]: the local multi-region replicator: a proxy per region, deliveries and the control API.
//! - [`kms`]: a stand-in of AWS KMS (Encrypt, Decrypt, GenerateDataKey, rotation), for the `kms` feature's tests.
//! - [`settings`]: the local tools' settings from the environment, with defaults.
//! - [`run_secret`]: the gateway's signing secret, random for each run unless set.
//! - [`shutdown`]: the Ctrl-C handling every long-running tool shares.
pub mod apigw;
pub mod fault;
pub mod filter;
pub mod forward;
pub mod gateway;
pub mod homing;
pub mod kms;
pub mod mesh;
pub mod replicator;
pub mod run_secret;
pub mod settings;
pub mod shutdown;
pub mod stale;
pub mod stream;
pub mod template;
