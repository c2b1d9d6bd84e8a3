//! `VirtualService` (networking/v1alpha3/virtual_service.proto).

use std::collections::BTreeMap;

use super::{Duration, Percent, PortSelector, Untranslated, api};

api! {
    pub struct VirtualService {
        pub hosts: Vec<String>,
        /// Empty means Istio's default: `["mesh"]`.
        pub gateways: Vec<String>, pub http: Vec<HttpRoute>, pub tls: Untranslated<Vec<TlsRoute>>,
        pub tcp: Untranslated<Vec<TcpRoute>>, pub export_to: Vec<String>,
    }

    pub struct Destination { pub host: String, pub subset: String, pub port: Option<PortSelector> }

    pub struct HttpRoute {
        pub name: String, #[serde(rename = "match")] pub matches: Vec<HttpMatchRequest>,
        pub route: Vec<HttpRouteDestination>, pub redirect: Untranslated<Option<HttpRedirect>>,
        pub direct_response: Untranslated<Option<HttpDirectResponse>>,
        pub delegate: Untranslated<Option<Delegate>>,
        pub rewrite: Untranslated<Option<HttpRewrite>>, pub timeout: Option<Duration>,
        pub retries: Untranslated<Option<HttpRetry>>,
        pub fault: Untranslated<Option<HttpFaultInjection>>,
        pub mirror: Untranslated<Option<Destination>>,
        pub mirrors: Untranslated<Vec<HttpMirrorPolicy>>,
        pub mirror_percent: Untranslated<Option<u32>>,
        pub mirror_percentage: Untranslated<Option<Percent>>,
        pub cors_policy: Untranslated<Option<CorsPolicy>>,
        pub headers: Untranslated<Option<Headers>>,
    }

    pub struct Delegate { pub name: String, pub namespace: String }

    pub struct Headers {
        pub request: Option<HeaderOperations>, pub response: Option<HeaderOperations>,
    }

    pub struct HeaderOperations {
        pub set: BTreeMap<String, String>, pub add: BTreeMap<String, String>,
        pub remove: Vec<String>,
    }

    pub struct TlsRoute {
        #[serde(rename = "match")] pub matches: Vec<TlsMatchAttributes>,
        pub route: Vec<RouteDestination>,
    }

    pub struct TcpRoute {
        #[serde(rename = "match")] pub matches: Vec<L4MatchAttributes>,
        pub route: Vec<RouteDestination>,
    }

    pub struct HttpMatchRequest {
        pub name: String, pub uri: Untranslated<Option<StringMatch>>,
        pub scheme: Untranslated<Option<StringMatch>>,
        pub method: Untranslated<Option<StringMatch>>,
        pub authority: Untranslated<Option<StringMatch>>,
        pub headers: Untranslated<BTreeMap<String, StringMatch>>, pub port: u32,
        pub source_labels: Untranslated<BTreeMap<String, String>>, pub gateways: Vec<String>,
        pub query_params: Untranslated<BTreeMap<String, StringMatch>>,
        pub ignore_uri_case: Untranslated<bool>,
        pub without_headers: Untranslated<BTreeMap<String, StringMatch>>,
        pub source_namespace: Untranslated<String>, pub stat_prefix: Untranslated<String>,
    }

    pub struct HttpRouteDestination {
        pub destination: Option<Destination>, pub weight: i32,
        pub headers: Untranslated<Option<Headers>>,
    }

    pub struct RouteDestination { pub destination: Option<Destination>, pub weight: i32 }

    pub struct L4MatchAttributes {
        pub destination_subnets: Vec<String>, pub port: u32, pub source_subnet: String,
        pub source_labels: BTreeMap<String, String>, pub gateways: Vec<String>,
        pub source_namespace: String,
    }

    pub struct TlsMatchAttributes {
        pub sni_hosts: Vec<String>, pub destination_subnets: Vec<String>, pub port: u32,
        pub source_labels: BTreeMap<String, String>, pub gateways: Vec<String>,
        pub source_namespace: String,
    }

    pub struct HttpRedirect {
        pub uri: String, pub authority: String, pub port: Option<u32>,
        pub derive_port: Option<RedirectPortSelection>, pub scheme: String, pub redirect_code: u32,
        pub prefix_rewrite: String,
    }

    pub enum RedirectPortSelection {
        FromProtocolDefault = "FROM_PROTOCOL_DEFAULT", FromRequestPort = "FROM_REQUEST_PORT",
    }

    pub struct HttpDirectResponse { pub status: u32, pub body: Option<HttpBody> }

    pub struct HttpBody { pub string: Option<String>, pub bytes: Option<String> }

    pub struct HttpRewrite {
        pub uri: String, pub authority: String, pub uri_regex_rewrite: Option<RegexRewrite>,
    }

    pub struct RegexRewrite { #[serde(rename = "match")] pub pattern: String, pub rewrite: String }

    /// One of `exact`, `prefix`, `regex`.
    pub struct StringMatch {
        pub exact: Option<String>, pub prefix: Option<String>, pub regex: Option<String>,
    }

    pub struct HttpRetry {
        pub attempts: i32, pub per_try_timeout: Option<Duration>, pub retry_on: String,
        pub retry_remote_localities: Option<bool>, pub retry_ignore_previous_hosts: Option<bool>,
        pub backoff: Option<Duration>,
    }

    pub struct CorsPolicy {
        pub allow_origin: Vec<String>, pub allow_origins: Vec<StringMatch>,
        pub allow_methods: Vec<String>, pub allow_headers: Vec<String>,
        pub expose_headers: Vec<String>, pub max_age: Option<Duration>,
        pub allow_credentials: Option<bool>, pub unmatched_preflights: UnmatchedPreflights,
    }

    pub enum UnmatchedPreflights {
        Unspecified = "UNSPECIFIED", Forward = "FORWARD", Ignore = "IGNORE",
    }

    pub struct HttpFaultInjection { pub delay: Option<Delay>, pub abort: Option<Abort> }

    pub struct Delay {
        pub percent: i32, pub fixed_delay: Option<Duration>,
        pub exponential_delay: Option<Duration>, pub percentage: Option<Percent>,
    }

    pub struct Abort {
        pub http_status: Option<i32>, pub grpc_status: Option<String>,
        pub http2_error: Option<String>, pub percentage: Option<Percent>,
    }

    pub struct HttpMirrorPolicy {
        pub destination: Option<Destination>, pub percentage: Option<Percent>,
    }
}
