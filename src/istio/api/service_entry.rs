//! `ServiceEntry` (networking/v1alpha3/service_entry.proto).

use std::collections::BTreeMap;

use super::{Untranslated, WorkloadSelector, api};

api! {
    pub struct ServiceEntry {
        pub hosts: Vec<String>, pub addresses: Vec<String>,
        pub ports: Vec<ServicePort>, pub location: Location, pub resolution: Resolution,
        pub endpoints: Vec<WorkloadEntry>,
        pub workload_selector: Untranslated<Option<WorkloadSelector>>, pub export_to: Vec<String>,
        pub subject_alt_names: Untranslated<Vec<String>>,
    }

    pub struct ServicePort {
        pub number: u32,
        /// As written; Istio matches protocol names case-insensitively.
        pub protocol: String, pub name: String, pub target_port: u32,
    }

    /// `WorkloadEntry` (networking/v1alpha3/workload_entry.proto), as a ServiceEntry endpoint.
    pub struct WorkloadEntry {
        pub address: String, pub ports: BTreeMap<String, u32>, pub labels: BTreeMap<String, String>,
        pub network: Untranslated<String>, pub locality: Untranslated<String>, pub weight: u32,
        pub service_account: Untranslated<String>,
    }

    pub enum Location { MeshExternal = "MESH_EXTERNAL", MeshInternal = "MESH_INTERNAL" }

    pub enum Resolution {
        None = "NONE", Static = "STATIC", Dns = "DNS", DnsRoundRobin = "DNS_ROUND_ROBIN",
        DynamicDns = "DYNAMIC_DNS",
    }
}
