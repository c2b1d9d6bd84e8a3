//! The cluster's registry, which no cluster holds here: the tutorial's prerequisites (the sleep
//! sample in `default`, the demo profile's `istio-egressgateway` in `istio-system`) as fixed data,
//! with the addresses a typical kind cluster would give them. No address outside loopback is
//! ever contacted: the model maps these onto loopback ports.

use std::collections::BTreeMap;

use crate::istio::Protocol;
use crate::mesh::{KubeService, KubeServicePort, Registry, Workload};
use crate::translate::ProxyWorkloads;

impl Registry {
    /// The registry of the tutorial's prerequisites (the sleep sample in `default`, the demo
    /// profile's `istio-egressgateway`). Addresses are those of a typical kind cluster; the local
    /// backend maps them onto loopback ports (see `local_network`).
    pub(crate) fn tutorial() -> Registry {
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        Registry {
            services: vec![
                KubeService {
                    name: "sleep".into(),
                    namespace: "default".into(),
                    cluster_ip: "10.96.0.20".into(),
                    ports: vec![KubeServicePort {
                        name: "http".into(),
                        port: 80,
                        target_port: 80,
                        protocol: Protocol::Http,
                    }],
                    selector: labels(&[("app", "sleep")]),
                },
                KubeService {
                    name: "istio-egressgateway".into(),
                    namespace: "istio-system".into(),
                    cluster_ip: "10.96.0.30".into(),
                    ports: vec![
                        KubeServicePort {
                            name: "http2".into(),
                            port: 80,
                            target_port: 8080,
                            protocol: Protocol::Http2,
                        },
                        KubeServicePort {
                            name: "https".into(),
                            port: 443,
                            target_port: 8443,
                            protocol: Protocol::Https,
                        },
                    ],
                    selector: labels(&[("app", "istio-egressgateway"), ("istio", "egressgateway")]),
                },
            ],
            workloads: vec![
                Workload {
                    name: "sleep".into(),
                    namespace: "default".into(),
                    ip: "10.244.0.10".into(),
                    labels: labels(&[("app", "sleep")]),
                },
                Workload {
                    name: "istio-egressgateway".into(),
                    namespace: "istio-system".into(),
                    ip: "10.244.0.11".into(),
                    labels: labels(&[("app", "istio-egressgateway"), ("istio", "egressgateway")]),
                },
            ],
        }
    }
}

impl Registry {
    /// The registry as istiod is to read it, with no Kubernetes: each Service a ServiceEntry
    /// (MESH_INTERNAL, STATIC, its ClusterIP as address, its selector as workload selector) and
    /// each pod a WorkloadEntry with its IP and labels. No WorkloadEntry carries a service
    /// account: with one, istiod would use Istio mTLS to it, which the real gateway pod does not
    /// get either.
    pub(crate) fn as_istio_objects(&self) -> Vec<serde_json::Value> {
        let services = self.services.iter().map(|service| {
            let ports: Vec<serde_json::Value> = service
                .ports
                .iter()
                .map(|port| {
                    serde_json::json!({
                        "number": port.port,
                        "name": port.name,
                        "protocol": port.protocol.name(),
                        "targetPort": port.target_port,
                    })
                })
                .collect();
            serde_json::json!({
                "apiVersion": "networking.istio.io/v1",
                "kind": "ServiceEntry",
                "metadata": {"name": service.name, "namespace": service.namespace},
                "spec": {
                    "hosts": [service.hostname()],
                    "addresses": [service.cluster_ip],
                    "location": "MESH_INTERNAL",
                    "resolution": "STATIC",
                    "ports": ports,
                    "workloadSelector": {"labels": service.selector},
                },
            })
        });
        let workloads = self.workloads.iter().map(|workload| {
            serde_json::json!({
                "apiVersion": "networking.istio.io/v1",
                "kind": "WorkloadEntry",
                "metadata": {"name": workload.name, "namespace": workload.namespace},
                "spec": {"address": workload.ip, "labels": workload.labels},
            })
        });
        services.chain(workloads).collect()
    }
}

impl ProxyWorkloads {
    /// The sleep pod plays the sidecar; `istio-egressgateway` the gateway.
    pub(crate) fn tutorial() -> ProxyWorkloads {
        ProxyWorkloads {
            sidecar: "sleep".into(),
            gateway: "istio-egressgateway".into(),
        }
    }
}
