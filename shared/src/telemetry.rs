//! Logging set-up shared by every function: JSON lines, level from `RUST_LOG` (default `info`).
//! `RUST_LOG` takes a level (`debug`) or `target=level` pairs (`tidewater=debug,info`); it is
//! read with `Targets`, not `EnvFilter`, whose regex engine cost every bootstrap 0.35 MB.
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub fn init() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|directives| directives.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    // The builder's own filter defaults to INFO and would drop `debug` before `filter` sees it.
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .json()
        .with_current_span(false)
        .with_target(false)
        .finish()
        .with(filter)
        .try_init();
}
