//! `make run`'s HTTP API on `API_PORT` (default 3000). See `tidewater_local::gateway`.
use tidewater_local::{gateway, template};

#[tokio::main]
async fn main() -> Result<(), String> {
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let template_path = env("TEMPLATE", "template.yaml");
    let routes = template::http_routes(&template::load(&template_path)?);
    let port = env("API_PORT", "3000");
    let gateway = gateway::Gateway::new(
        routes,
        env("LOCAL_JWT_SECRET", gateway::DEFAULT_SECRET),
        env("LAMBDA_INVOKE_URL", "http://127.0.0.1:9000"),
    );
    for route in &gateway.routes {
        println!("gateway: {:<6} {:<32} -> {}", route.method, route.path, route.function);
    }
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await.map_err(|e| e.to_string())?;
    println!("gateway: listening on http://127.0.0.1:{port}");
    axum::serve(listener, gateway.router()).await.map_err(|e| e.to_string())
}
