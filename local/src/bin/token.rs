//! Prints a local bearer token: `token <sub> [groups, comma or space separated]`.
use std::time::Duration;

use tidewater_local::gateway;

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let sub = args.next().filter(|s| !s.is_empty()).ok_or("usage: token <sub> [groups]")?;
    let groups: Vec<String> =
        args.next().unwrap_or_default().split([',', ' ']).filter(|g| !g.is_empty()).map(str::to_owned).collect();
    let secret = std::env::var("LOCAL_JWT_SECRET").unwrap_or_else(|_| gateway::DEFAULT_SECRET.to_owned());
    println!("{}", gateway::issue_token(&sub, &groups, &secret, Duration::from_secs(12 * 3600))?);
    Ok(())
}
