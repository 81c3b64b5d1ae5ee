//! The local gateway's signing secret. `LOCAL_JWT_SECRET` when it is set; otherwise a random
//! secret made by each start of the gateway and written to `.run/gateway-<port>.secret` with
//! mode 0600, where `make token` and the chaos workload read it. There is no published default:
//! whoever knows the key can mint a token with any role, `privacy` included.
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The variable that fixes the secret (for example to share it between machines' tools).
pub const ENV: &str = "LOCAL_JWT_SECRET";
/// Where the secret of a run is written, relative to the repository.
pub const DIR: &str = ".run";

/// `LOCAL_JWT_SECRET`, when set and not empty.
pub fn from_env() -> Option<String> {
    std::env::var(ENV).ok().filter(|secret| !secret.is_empty())
}

/// The file that holds the secret of the gateway on `api_port`.
pub fn file(dir: &Path, api_port: &str) -> PathBuf {
    dir.join(format!("gateway-{api_port}.secret"))
}

/// Makes a new random secret for the gateway on `api_port` and writes it, readable by its
/// owner only, in place of any older one.
pub fn create(dir: &Path, api_port: &str) -> Result<String, String> {
    let secret = random_hex(32)?;
    let path = file(dir, api_port);
    let failed = |e: std::io::Error| format!("writing the gateway's secret to {}: {e}", path.display());
    fs::create_dir_all(dir).map_err(failed)?;
    match fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(failed(e)),
        _ => {}
    }
    let mut out = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).map_err(failed)?;
    // The mode above is filtered by the umask; this is not.
    out.set_permissions(fs::Permissions::from_mode(0o600)).map_err(failed)?;
    out.write_all(secret.as_bytes()).map_err(failed)?;
    Ok(secret)
}

/// The secret of the gateway on `api_port`, for a tool that signs tokens for it.
pub fn read(dir: &Path, api_port: &str) -> Result<String, String> {
    let path = file(dir, api_port);
    match fs::read_to_string(&path) {
        Ok(secret) if !secret.trim().is_empty() => Ok(secret.trim().to_owned()),
        Ok(_) => Err(format!("{} is empty", path.display())),
        Err(e) => Err(format!(
            "no secret for the gateway on port {api_port} ({}: {e}): start it with `make run`, or set {ENV}",
            path.display()
        )),
    }
}

fn random_hex(bytes: usize) -> Result<String, String> {
    let mut random = vec![0u8; bytes];
    fs::File::open("/dev/urandom")
        .and_then(|mut source| source.read_exact(&mut random))
        .map_err(|e| format!("reading /dev/urandom: {e}"))?;
    Ok(random.iter().map(|byte| format!("{byte:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> PathBuf {
        std::env::temp_dir().join(format!("tidewater-run-secret-{}", uuid::Uuid::new_v4()))
    }

    #[test]
    fn each_start_makes_a_new_secret_that_only_its_owner_can_read() {
        let dir = scratch();
        let first = create(&dir, "3000").unwrap();
        let mode = fs::metadata(file(&dir, "3000")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(first.len(), 64);
        assert_eq!(read(&dir, "3000").unwrap(), first);
        let second = create(&dir, "3000").unwrap();
        assert_ne!(first, second);
        assert_eq!(read(&dir, "3000").unwrap(), second);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_tool_without_a_running_gateway_is_told_how_to_get_one() {
        let dir = scratch();
        let message = read(&dir, "3999").unwrap_err();
        assert!(message.contains("make run") && message.contains(ENV), "{message}");
    }
}
