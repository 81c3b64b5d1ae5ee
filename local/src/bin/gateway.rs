//! `make run`'s HTTP API on 127.0.0.1:`API_PORT` (default 3000). See `tidewater_local::gateway`;
//! its signing secret is `LOCAL_JWT_SECRET` or a new random one (`tidewater_local::run_secret`),
//! whose file it removes when it stops.
//! Ctrl-C (SIGINT) or SIGTERM stops it; requests still in flight get [`GRACE`] to finish.
use std::time::Duration;

use std::path::Path;

use tidewater_local::{gateway, homing, run_secret, shutdown, template};

const GRACE: Duration = Duration::from_secs(2);

#[tokio::main]
async fn main() -> Result<(), String> {
    let stop = shutdown::requested();
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let template_path = env("TEMPLATE", "template.yaml");
    let routes = template::http_routes(&template::load(&template_path)?);
    let port = env("API_PORT", "3000");
    // The port first: a second gateway on a taken port must not replace the first's secret.
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await.map_err(|e| e.to_string())?;
    let (secret, secret_file) = match run_secret::from_env() {
        Some(secret) => (secret, None),
        None => {
            let dir = Path::new(run_secret::DIR);
            (run_secret::create(dir, &port)?, Some(run_secret::file(dir, &port)))
        }
    };
    // `GATEWAY_HOMING=off`: no homing here, as API Gateway on AWS; the functions' own hop
    // (tidewater::forwarding, from the same REGIONS and REGION_APIS) takes requests home.
    let homing = env("GATEWAY_HOMING", "on") != "off";
    let regions = if homing { homing::Regions::from_lookup(|name| std::env::var(name).ok())? } else { None };
    let gateway = gateway::Gateway::new(routes, secret, env("LAMBDA_INVOKE_URL", "http://127.0.0.1:9000"))
        .with_region_status(std::env::var("REGION_STATUS_URL").ok().filter(|url| !url.is_empty()))
        .with_regions(regions);
    for route in &gateway.routes {
        println!("gateway: {:<6} {:<32} -> {}", route.method, route.path, route.function);
    }
    println!("gateway: listening on http://127.0.0.1:{port}");

    let (drain, drained) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, gateway.router()).with_graceful_shutdown(async {
        let _ = drained.await;
    });
    let server = tokio::spawn(async move { server.await });
    stop.await;
    let _ = drain.send(());
    let stopped = tokio::time::timeout(GRACE, server).await;
    if let Some(file) = secret_file {
        let _ = std::fs::remove_file(file); // its tokens are no use to anyone now
    }
    match stopped {
        Ok(Ok(result)) => result.map_err(|e| e.to_string()),
        Ok(Err(join)) => Err(join.to_string()),
        Err(_) => Ok(()), // requests still running are cut off
    }
}
