//! Where a control plane's output goes: through the local network model, then to each proxy's
//! Envoy over the run's ADS server.
//!
//! A control plane hands each proxy's resources to [`Delivery::deliver`] as it produces them,
//! whichever control plane it is; the local network model is applied here, once, to all of them.
//! [`Delivery::answered`] then waits for the proxy's answer to the latest delivery: its ACK, its
//! NACK in Envoy's words, or its death, the moment it happens.
//!
//! What it does not do: decide when a change is in force (the control plane knows what it
//! changed), or start Envoy.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::local_network::{LocalNetwork, LocalizeError};
use crate::mesh::ProxyRole;
use crate::process::{Death, Liveness};
use crate::xds::{ProxyResources, XdsError, XdsHandle};

/// One delivery: what the control plane made and what the proxy was given.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Delivered {
    pub made: ProxyResources,
    pub localized: ProxyResources,
}

/// Why a proxy did not accept what it was given.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    /// A NACK, in Envoy's words.
    #[error("{proxy} rejected the config ({type_url}, version {version}): {detail}")]
    Rejected {
        proxy: ProxyRole,
        type_url: String,
        version: String,
        detail: String,
    },
    #[error(transparent)]
    Died(Death),
    #[error("{proxy}: {message}")]
    NoAnswer { proxy: ProxyRole, message: String },
    #[error("{proxy}: the local network model cannot place its config: {source}")]
    Localize {
        proxy: ProxyRole,
        #[source]
        source: LocalizeError,
    },
}

#[derive(Debug)]
enum Target {
    /// Real Envoys, by the node id each connects with.
    Envoys {
        xds: XdsHandle,
        nodes: BTreeMap<ProxyRole, String>,
    },
    /// No Envoy: what each proxy is given is kept, and taken as accepted at once (`compare`
    /// takes istiod's pushes on the proxies' behalf this way). With `localize` false the local
    /// network model is left out: nothing is to run on this machine.
    Recorder { localize: bool },
}

#[derive(Debug)]
struct State {
    network: LocalNetwork,
    /// By lane and proxy.
    delivered: BTreeMap<(u8, ProxyRole), Delivered>,
    /// Each proxy's Envoy, once it runs.
    liveness: BTreeMap<ProxyRole, Liveness>,
}

/// Cheap to clone; every clone delivers to the same proxies.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    target: Arc<Target>,
    state: Arc<Mutex<State>>,
    /// Whose deliveries these are, when two control planes deliver through one network model.
    lane: u8,
}

impl Delivery {
    /// Deliver to the Envoys that connect to `xds` with these node ids.
    pub(crate) fn to_envoys(
        network: LocalNetwork,
        xds: XdsHandle,
        nodes: BTreeMap<ProxyRole, String>,
    ) -> Delivery {
        Delivery::new(network, Target::Envoys { xds, nodes })
    }

    /// Keep what each proxy is given and accept it at once; nothing runs.
    pub(crate) fn recording(network: LocalNetwork) -> Delivery {
        Delivery::new(network, Target::Recorder { localize: true })
    }

    /// [`Delivery::recording`] of what the control plane made, without the local network model.
    pub(crate) fn recording_as_made(network: LocalNetwork) -> Delivery {
        Delivery::new(network, Target::Recorder { localize: false })
    }

    fn new(network: LocalNetwork, target: Target) -> Delivery {
        Delivery {
            target: Arc::new(target),
            state: Arc::new(Mutex::new(State {
                network,
                delivered: BTreeMap::new(),
                liveness: BTreeMap::new(),
            })),
            lane: 0,
        }
    }

    /// The same delivery for a second control plane: one local network model (the same ports for
    /// the same listeners), its own record of what each proxy was given.
    pub(crate) fn second_lane(&self) -> Delivery {
        Delivery {
            lane: self.lane + 1,
            ..self.clone()
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every mutation is a plain replacement: a panic while holding the lock leaves a
        // consistent state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// From now on, a wait for `proxy`'s answer ends when its Envoy dies.
    pub(crate) fn watch(&self, proxy: ProxyRole, liveness: Liveness) {
        self.lock().liveness.insert(proxy, liveness);
    }

    /// Localize `resources` and give them to `proxy`. Returns at once; see [`Delivery::answered`].
    pub(crate) fn deliver(
        &self,
        proxy: ProxyRole,
        resources: ProxyResources,
    ) -> Result<(), Refusal> {
        let mut state = self.lock();
        let localized = if matches!(*self.target, Target::Recorder { localize: false }) {
            resources.clone()
        } else {
            state
                .network
                .localize(proxy, &resources)
                .map_err(|source| Refusal::Localize { proxy, source })?
        };
        if let Target::Envoys { xds, nodes } = self.target.as_ref()
            && let Some(node) = nodes.get(&proxy)
        {
            xds.publish(node, localized.clone());
        }
        state.delivered.insert(
            (self.lane, proxy),
            Delivered {
                made: resources,
                localized,
            },
        );
        Ok(())
    }

    /// Wait until `proxy` has accepted its latest delivery; fails at once on a NACK or when its
    /// Envoy dies.
    pub(crate) async fn answered(
        &self,
        proxy: ProxyRole,
        timeout: Duration,
    ) -> Result<(), Refusal> {
        let (xds, nodes) = match self.target.as_ref() {
            Target::Envoys { xds, nodes } => (xds, nodes),
            Target::Recorder { .. } => return Ok(()),
        };
        let Some(node) = nodes.get(&proxy) else {
            return Err(Refusal::NoAnswer {
                proxy,
                message: "no Envoy plays it".into(),
            });
        };
        let liveness = self
            .lock()
            .liveness
            .get(&proxy)
            .cloned()
            .unwrap_or_default();
        if let Some(death) = liveness.dead() {
            return Err(Refusal::Died(death));
        }
        tokio::select! {
            acked = xds.wait_acked(node, timeout) => match acked {
                Ok(_) => Ok(()),
                Err(XdsError::Nacked { type_url, version, message, .. }) => Err(Refusal::Rejected {
                    proxy,
                    type_url: type_url.to_string(),
                    version: version.to_string(),
                    detail: message,
                }),
                Err(other) => Err(Refusal::NoAnswer { proxy, message: other.to_string() }),
            },
            death = liveness.first_death() => Err(Refusal::Died(death)),
        }
    }

    /// What `proxy` was last given.
    pub(crate) fn delivered(&self, proxy: ProxyRole) -> Option<Delivered> {
        self.lock().delivered.get(&(self.lane, proxy)).cloned()
    }

    /// Read the local network model (for the client's command line).
    pub(crate) fn with_network<R>(&self, read: impl FnOnce(&LocalNetwork) -> R) -> R {
        read(&self.lock().network)
    }
}
