//! Which TPM a benchmark runs on: swtpm as it is, or swtpm behind the simulator's proxy
//! made to look like a real machine's TPM (`--kernel-rm`: `/dev/tpmrm0`; `--latency
//! PROFILE`: a real chip's speed). tpmd, the raw loops and tpm2-pkcs11 all reach the
//! modelled TPM the same way: one connection to the proxy's unix socket each, as each
//! would keep `/dev/tpm0` or `/dev/tpmrm0` open.

use tpmd_simulator::latency::{command_name, LatencyProfile};
use tpmd_simulator::proxy::ProxyOptions;
use tpmd_simulator::Simulator;

use super::args::{flag, string_arg};
use super::raw::RawVia;
use crate::daemon::binary;

pub struct Model {
    pub kernel_rm: bool,
    pub latency: Option<LatencyProfile>,
}

impl Model {
    /// `--kernel-rm` and `--latency PROFILE` (`discrete`, `firmware` or a TOML file)
    /// from the command line; neither: swtpm without a proxy.
    pub fn from_args() -> Model {
        let latency = string_arg("--latency").map(|spec| {
            LatencyProfile::load(&spec).unwrap_or_else(|e| {
                eprintln!("--latency {spec}: {e}");
                std::process::exit(2)
            })
        });
        Model {
            kernel_rm: flag("--kernel-rm"),
            latency,
        }
    }

    /// Whether the simulator sits behind the proxy.
    pub fn modelled(&self) -> bool {
        self.kernel_rm || self.latency.is_some()
    }

    /// "swtpm", or the device and the profile modelled.
    pub fn describe(&self) -> String {
        if !self.modelled() {
            return "swtpm".into();
        }
        let device = if self.kernel_rm {
            "/dev/tpmrm0 (kernel RM model)"
        } else {
            "/dev/tpm0"
        };
        match &self.latency {
            Some(profile) => format!("{device} on swtpm, latency profile {}", profile.name()),
            None => format!("{device} on swtpm at swtpm's speed"),
        }
    }

    /// A fresh provisioned TPM 2.0 simulator as this model says.
    pub fn start(&self) -> Simulator {
        if !self.modelled() {
            return Simulator::start_temporary().unwrap();
        }
        let mut options = if self.kernel_rm {
            ProxyOptions::kernel_rm()
        } else {
            ProxyOptions::raw_device()
        };
        if let Some(profile) = &self.latency {
            options = options.with_latency(profile.clone());
        }
        // The TCP listeners serve tpm2-abrmd while tpm2_ptool makes tpm2-pkcs11's key.
        Simulator::start_temporary_with(options.with_tcp_listeners()).unwrap()
    }

    /// How the raw loops reach the TPM: tss-esapi on swtpm, tpmd-tpm2's wire codec on
    /// one connection to the proxy (see [`super::raw_wire`] for why not tss-esapi).
    pub fn raw_via(&self, sim: &Simulator) -> RawVia {
        if self.modelled() {
            RawVia::Wire(sim.transport())
        } else {
            RawVia::Esys(sim.tcp_transport().to_string())
        }
    }

    /// The TCTI for tpm2-pkcs11 and tpm2-tools: swtpm itself, or on a model the `cmd`
    /// TCTI running `tpm-stdio` on one connection to the proxy (one kernel RM space for
    /// the client's life, as an open `/dev/tpmrm0` is; see that program for why not the
    /// proxy's mssim listener).
    pub fn tcti(&self, sim: &Simulator) -> String {
        if self.modelled() {
            format!("cmd:{} {}", binary("tpm-stdio").display(), sim.transport())
        } else {
            sim.tcp_transport().to_string()
        }
    }
}

/// Starts counting the commands that reach the TPM (nothing to count without a proxy).
pub fn reset_counts(sim: &Simulator) {
    if let Some(proxy) = sim.proxy() {
        proxy.reset_counts();
    }
}

/// TPM commands per operation since [`reset_counts`], e.g. "4 (ContextLoad 1,
/// ContextSave 1, FlushContext 1, Sign 1)"; "-" without a proxy to count them.
pub fn commands_per_op(sim: &Simulator, ops: usize) -> String {
    let Some(counts) = sim.proxy().map(|p| p.counts()) else {
        return "-".into();
    };
    let ops = ops.max(1) as f64;
    let total: u64 = counts.values().sum();
    let each: Vec<String> = counts
        .iter()
        .map(|(cc, n)| {
            let name = command_name(*cc).map_or_else(|| format!("{cc:#x}"), String::from);
            format!("{name} {}", fmt_count(*n as f64 / ops))
        })
        .collect();
    format!("{} ({})", fmt_count(total as f64 / ops), each.join(", "))
}

fn fmt_count(n: f64) -> String {
    if (n - n.round()).abs() < 0.005 {
        format!("{}", n.round())
    } else {
        format!("{n:.2}")
    }
}
