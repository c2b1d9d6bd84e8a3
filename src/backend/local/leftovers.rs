//! What of a stopped local run is still there: its Envoys, its ports, its directory. Anything
//! found is a leftover, and fails the run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What of a stopped run is still there: a live pid, a port of the run this process still holds,
/// the directory (unless kept).
pub(crate) fn leftovers(pids: &[u32], ports: &[u16], dir: &Path, dir_kept: bool) -> Vec<String> {
    let mut out = Vec::new();
    for pid in pids {
        if Path::new(&format!("/proc/{pid}")).exists() {
            out.push(format!("pid {pid} is still running"));
        }
    }
    // The Envoys are gone (above), so their sockets are; what is left to check is this process.
    // Binding the ports again would be no proof: another run may rightly hold them by now.
    for port in held_by_this_process(ports) {
        out.push(format!("127.0.0.1:{port} is still in use by this process"));
    }
    if !dir_kept && dir.exists() {
        out.push(format!("{} still exists", dir.display()));
    }
    out
}

/// Which of `ports` a listening or connected TCP socket of this process still has, from
/// `/proc/net/tcp` and the process's open descriptors. (Reservations, bound but not listening,
/// are not in that table; they are released by dropping them.)
fn held_by_this_process(ports: &[u16]) -> Vec<u16> {
    let wanted: BTreeSet<u16> = ports.iter().copied().collect();
    let mut inodes: BTreeMap<String, u16> = BTreeMap::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(inode)) = (fields.get(1), fields.get(9)) else {
                continue;
            };
            let port = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if let Some(port) = port.filter(|p| wanted.contains(p)) {
                inodes.insert(format!("socket:[{inode}]"), port);
            }
        }
    }
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let mut held: Vec<u16> = fds
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| inodes.get(target.to_string_lossy().as_ref()).copied())
        .collect();
    held.sort();
    held.dedup();
    held
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_socket_of_this_process_on_a_run_port_is_found() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(held_by_this_process(&[port]), vec![port]);
        drop(listener);
        assert_eq!(held_by_this_process(&[port]), Vec::<u16>::new());
        drop(other);
    }
}
