//! Keeps the handlers' log and metric lines (JSON on stdout, for CloudWatch) out of the
//! report while they run in-process: stdout goes to /dev/null until the guard drops.
use std::io::Write;

pub struct Silenced {
    saved: libc::c_int,
}

impl Silenced {
    pub fn stdout() -> Option<Silenced> {
        let _ = std::io::stdout().flush();
        // SAFETY: plain descriptor calls on fd 1 and descriptors this guard owns.
        unsafe {
            let saved = libc::dup(1);
            if saved < 0 {
                return None;
            }
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
            if null < 0 {
                libc::close(saved);
                return None;
            }
            libc::dup2(null, 1);
            libc::close(null);
            Some(Silenced { saved })
        }
    }
}

impl Drop for Silenced {
    fn drop(&mut self) {
        let _ = std::io::stdout().flush();
        // SAFETY: restores fd 1 from the descriptor saved in `stdout`.
        unsafe {
            libc::dup2(self.saved, 1);
            libc::close(self.saved);
        }
    }
}
