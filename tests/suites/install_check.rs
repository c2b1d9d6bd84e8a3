//! The kind backend's Istio install checked offline for every Istio version of the nightly
//! matrix: `egress-conformance setup --backend kind --istio-version <v>` runs `istioctl manifest
//! generate` with exactly the flags the kind backend gives `istioctl install`, and the manifest
//! must hold the `istio-egressgateway` Deployment, the Docker Hub images and the
//! `proxyStatsMatcher` the traffic checks read.
//!
//! The istioctl is the one a run would use (`$ISTIOCTL`, `PATH`); failing that, for a minor the
//! harness can build (1.31, 1.30), its build of that minor's branch head, as setup says. Where
//! neither can be had (a newer minor, no Go), the trial is ignored with setup's words.

use std::path::Path;

use libtest_mimic::{Completion, Failed, Trial};

use crate::harness::{binary, root};

/// The Istio versions of `.github/workflows/nightly.yml`'s matrix (`- istio: "<v>"`), in order.
fn matrix() -> Vec<String> {
    let file = root().join(".github/workflows/nightly.yml");
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("- istio:"))
        .map(|v| v.trim().trim_matches('"').to_string())
        .collect()
}

pub fn trials() -> Vec<Trial> {
    let versions = matrix();
    let mut trials: Vec<Trial> = versions
        .iter()
        .map(|version| {
            let version = version.clone();
            Trial::ignorable_test(
                format!("kind::install_checked_offline::{version}"),
                move || install_checked(&version),
            )
        })
        .collect();
    trials.push(Trial::test("kind::install_matrix_is_read", move || {
        if versions.is_empty() {
            Err(format!(
                "no `- istio: \"<version>\"` entries in {}",
                Path::new(".github/workflows/nightly.yml").display()
            )
            .into())
        } else {
            Ok(())
        }
    }));
    trials
}

fn install_checked(version: &str) -> Result<Completion, Failed> {
    let output = binary()
        .args(["setup", "--backend", "kind", "--istio-version", version])
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let said = || {
        format!(
            "exit {:?}\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}",
            output.status.code()
        )
    };
    if !output.status.success() {
        if let Some(reason) = stderr
            .lines()
            .find_map(|l| l.strip_prefix("error: "))
            .filter(|r| r.starts_with(&format!("no istioctl {version} to check the install with")))
        {
            return Ok(Completion::ignored_with(reason.to_string()));
        }
        return Err(format!("the install check of Istio {version} failed:\n{}", said()).into());
    }
    let Some(checked) = stdout
        .lines()
        .find_map(|l| l.strip_prefix("install checked offline: "))
    else {
        return Err(format!("setup printed no install check:\n{}", said()).into());
    };
    // The prefixes the flags ask for must be what the manifest holds, the tutorial's among them.
    let asked: Vec<&str> = checked
        .split(" --set ")
        .filter_map(|arg| {
            arg.strip_prefix("meshConfig.defaultConfig.proxyStatsMatcher.inclusionPrefixes[")
        })
        .filter_map(|rest| {
            rest.split_once("]=")
                .map(|(_, prefix)| prefix.split(' ').next().unwrap_or(prefix))
        })
        .collect();
    if !asked.contains(&"cluster.outbound") || !asked.contains(&"cluster.PassthroughCluster") {
        return Err(format!(
            "the install's flags do not ask for the tutorial's counters:\n{}",
            said()
        )
        .into());
    }
    let held = format!("proxyStatsMatcher inclusionPrefixes [{}]", asked.join(", "));
    let wanted = [
        "istioctl manifest generate --set profile=demo --set hub=docker.io/istio ",
        "the egress gateway's image docker.io/istio/proxyv2:",
        held.as_str(),
    ];
    match wanted.iter().find(|w| !checked.contains(*w)) {
        Some(missing) => {
            Err(format!("the install check does not say {missing:?}:\n{}", said()).into())
        }
        None => {
            // Checked with a stand-in (the harness's build of the minor's branch head): say so.
            for note in stderr.lines().filter(|l| l.starts_with("note: ")) {
                eprintln!("  [install check {version}] {note}");
            }
            Ok(Completion::Completed)
        }
    }
}
