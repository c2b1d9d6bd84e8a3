//! `egress-conformance`: see [`egress_conformance::cli`].

fn main() -> std::process::ExitCode {
    egress_conformance::cli::main()
}
