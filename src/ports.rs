//! Loopback ports reserved for a whole run.
//!
//! Proxy listeners come and go between stages, yet each must get the same port every time, and no
//! other process (nor the kernel's ephemeral allocation) may take that port in between. A
//! [`PortReservation`] binds `127.0.0.1:0` with `SO_REUSEPORT` and holds the socket without
//! listening: Envoy listeners configured with `enable_reuse_port: true` (same user, hence allowed
//! to share) bind the port alongside it, while ordinary binds fail with "address in use".
//!
//! The reservation deliberately does not set `SO_REUSEADDR`: Linux lets a `SO_REUSEADDR` socket
//! bind a port held by a non-listening `SO_REUSEADDR` socket, and Rust's `TcpListener::bind` (like
//! most servers) sets `SO_REUSEADDR`, so the reservation would not keep them out.
//!
//! This module does not decide which proxy listener gets which port.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};

/// A loopback TCP port held for as long as this value lives; dropping it frees the port.
#[derive(Debug)]
pub struct PortReservation {
    // Held only to keep the port; never listens or connects.
    _socket: Socket,
    port: u16,
}

impl PortReservation {
    /// Reserves a free port on 127.0.0.1.
    pub fn reserve() -> io::Result<PortReservation> {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_port(true)?;
        socket.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())?;
        let port = socket
            .local_addr()?
            .as_socket()
            .map(|addr| addr.port())
            .ok_or_else(|| io::Error::other("bound socket has no IP address"))?;
        Ok(PortReservation {
            _socket: socket,
            port,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    #[cfg(test)]
    pub fn addr(&self) -> SocketAddr {
        std::net::SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envoy::locate::binary_for_tests;
    use crate::envoy::process::EnvoyProcess;
    use crate::envoy::process::tests::{bootstrap, options};
    use std::net::TcpListener;

    #[test]
    fn held_port_refuses_ordinary_binds_until_released() {
        let held = PortReservation::reserve().unwrap();
        assert_ne!(held.port(), 0);
        let err = TcpListener::bind(held.addr()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
        let other = PortReservation::reserve().unwrap();
        assert_ne!(other.port(), held.port());

        let addr = held.addr();
        drop(held);
        TcpListener::bind(addr).expect("port free again after the reservation is dropped");
    }

    #[tokio::test]
    async fn reuse_port_envoy_listener_serves_on_a_held_port() {
        let Some(envoy) = binary_for_tests() else {
            return;
        };
        let held = PortReservation::reserve().unwrap();
        let run = tempfile::tempdir().unwrap();
        let proxy = EnvoyProcess::start(options(
            &envoy.path,
            run.path(),
            bootstrap(Some(held.port()), true),
        ))
        .await
        .unwrap();

        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let response = http
            .get(format!("http://{}/anything", held.addr()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "held");

        // Still ours while Envoy listens on it, and after Envoy is gone.
        assert!(TcpListener::bind(held.addr()).is_err());
        proxy.shutdown().await.unwrap();
        let err = TcpListener::bind(held.addr()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
    }
}
