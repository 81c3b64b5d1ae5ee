//! The integration tests: one module a file, linked into one test binary, so the workspace
//! is linked once for all of them.
mod adapter_properties;
mod append_turn;
mod bad_input;
mod capacity;
mod core_events;
mod create_session;
mod delete_session;
mod erasure;
mod export_turns;
mod fault_proxy;
mod janitor;
mod lifecycle;
mod list_sessions;
mod load_context;
mod memory;
mod openapi;
mod purge;
mod redaction;
mod replication;
mod secrets;
mod simulation;
mod summarize;
mod template;
mod update_session;
