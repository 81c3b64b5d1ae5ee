//! `make run`'s HTTP API on `API_PORT` (default 3000). See `tidewater_local::gateway`.
//! Ctrl-C (SIGINT) or SIGTERM stops it; requests still in flight get [`GRACE`] to finish.
use std::time::Duration;

use tidewater_local::{gateway, shutdown, template};

const GRACE: Duration = Duration::from_secs(2);

#[tokio::main]
async fn main() -> Result<(), String> {
    let stop = shutdown::requested();
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let template_path = env("TEMPLATE", "template.yaml");
    let routes = template::http_routes(&template::load(&template_path)?);
    let port = env("API_PORT", "3000");
    let gateway = gateway::Gateway::new(
        routes,
        env("LOCAL_JWT_SECRET", gateway::DEFAULT_SECRET),
        env("LAMBDA_INVOKE_URL", "http://127.0.0.1:9000"),
    )
    .with_region_status(std::env::var("REGION_STATUS_URL").ok().filter(|url| !url.is_empty()));
    for route in &gateway.routes {
        println!("gateway: {:<6} {:<32} -> {}", route.method, route.path, route.function);
    }
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await.map_err(|e| e.to_string())?;
    println!("gateway: listening on http://127.0.0.1:{port}");

    let (drain, drained) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, gateway.router()).with_graceful_shutdown(async {
        let _ = drained.await;
    });
    let server = tokio::spawn(async move { server.await });
    stop.await;
    let _ = drain.send(());
    match tokio::time::timeout(GRACE, server).await {
        Ok(Ok(result)) => result.map_err(|e| e.to_string()),
        Ok(Err(join)) => Err(join.to_string()),
        Err(_) => Ok(()), // requests still running are cut off
    }
}
