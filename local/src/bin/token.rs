//! Prints a local bearer token: `token <sub> [groups, comma or space separated]`, signed with
//! `LOCAL_JWT_SECRET` or else the secret of the gateway running on `API_PORT` (default 3000).
use std::path::Path;
use std::time::Duration;

use tidewater_local::{gateway, run_secret};

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let sub = args.next().filter(|s| !s.is_empty()).ok_or("usage: token <sub> [groups]")?;
    let groups: Vec<String> =
        args.next().unwrap_or_default().split([',', ' ']).filter(|g| !g.is_empty()).map(str::to_owned).collect();
    let port = std::env::var("API_PORT").ok().filter(|p| !p.is_empty()).unwrap_or_else(|| "3000".to_owned());
    let secret = match run_secret::from_env() {
        Some(secret) => secret,
        None => run_secret::read(Path::new(run_secret::DIR), &port)?,
    };
    println!("{}", gateway::issue_token(&sub, &groups, &secret, Duration::from_secs(12 * 3600))?);
    Ok(())
}
