//! The client's network: curl runs on this machine, not in the sleep pod, so every connection it
//! makes is pointed where iptables and `virtualOutbound` would send the pod's, and it trusts the
//! run's CA where the pod trusts the public roots.

use std::collections::BTreeSet;
use std::path::Path;

use envoy_types::pb::envoy::config::listener::v3::Listener;

use super::{LocalNetwork, LocalizeError, Plan, PortKey};
use crate::mesh::{ProxyRole, Registry};

impl LocalNetwork {
    /// The command line that plays `argv` in the sleep pod: its own arguments, then a
    /// `--connect-to` for every host and port it may reach (`hosts` × the run's external ports
    /// and the ports its URLs name), `--cacert` with the run's CA, and `--noproxy '*'`.
    pub(crate) fn client_argv(
        &self,
        argv: &[String],
        hosts: &BTreeSet<String>,
        url_ports: &BTreeSet<u32>,
        sidecar_listeners: &[Listener],
    ) -> Result<Vec<String>, LocalizeError> {
        let mut hosts = hosts.clone();
        hosts.extend(self.registry.services.iter().map(|s| s.hostname()));
        let mut ports = self.external_ports.clone();
        ports.extend(url_ports);
        let plan = self.plan();
        let mut targets = Vec::new();
        for host in &hosts {
            for port in &ports {
                match connect_to(host, *port, sidecar_listeners, &self.registry, &plan) {
                    Ok(local) => targets.push((host.clone(), *port, local)),
                    Err(LocalizeError::NoRoute { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(local_argv(argv, &targets, &self.roots_file))
    }
}

/// The full command line: the tutorial's arguments, then the local network's.
pub(super) fn local_argv(
    argv: &[String],
    connect_to: &[(String, u32, u16)],
    ca_file: &Path,
) -> Vec<String> {
    let mut out = argv.to_vec();
    for (host, port, local) in connect_to {
        out.push("--connect-to".into());
        out.push(format!("{host}:{port}:127.0.0.1:{local}"));
    }
    out.push("--cacert".into());
    out.push(ca_file.display().to_string());
    // A user's proxy settings must not take the pod's place.
    out.push("--noproxy".into());
    out.push("*".into());
    out
}

/// The sidecar port a connection to `host:port` lands on: what iptables and `virtualOutbound`'s
/// hand-off by original destination would pick. The listener of the address itself (a Service's
/// VIP, or an IP the URL names), then the `0.0.0.0_<port>` listener, else `virtualOutbound`.
pub(crate) fn connect_to(
    host: &str,
    port: u32,
    sidecar_listeners: &[Listener],
    registry: &Registry,
    net: &Plan,
) -> Result<u16, LocalizeError> {
    let names: BTreeSet<&str> = sidecar_listeners.iter().map(|l| l.name.as_str()).collect();
    let vip = registry
        .services
        .iter()
        .find(|s| s.hostname() == host)
        .map(|s| s.cluster_ip.clone())
        .or_else(|| {
            host.parse::<std::net::IpAddr>()
                .ok()
                .map(|ip| ip.to_string())
        });
    let candidates = vip
        .map(|ip| format!("{ip}_{port}"))
        .into_iter()
        .chain(std::iter::once(format!("0.0.0.0_{port}")));
    for name in candidates {
        if names.contains(name.as_str()) {
            return net.port(&PortKey::Listener(ProxyRole::Sidecar, name));
        }
    }
    net.ports
        .get(&PortKey::Passthrough(port))
        .copied()
        .ok_or_else(|| LocalizeError::NoRoute {
            host: host.to_string(),
            port,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn appends_the_local_network() {
        let argv = local_argv(
            &args("curl -s http://a/"),
            &[("a".into(), 80, 4000)],
            Path::new("/run/ca.pem"),
        );
        assert_eq!(
            argv,
            args(
                "curl -s http://a/ --connect-to a:80:127.0.0.1:4000 --cacert /run/ca.pem --noproxy *"
            )
        );
    }
}
