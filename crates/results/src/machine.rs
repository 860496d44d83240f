//! The machine a run was made on, captured with sysinfo.

use crate::roofline::Roofline;
use serde::{Deserialize, Serialize};
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpu_model: String,
    pub physical_cores: Option<usize>,
    pub logical_cores: usize,
    /// CPU features that decide matmul speed (x86: avx2, fma, avx512f).
    pub cpu_features: Vec<String>,
    pub ram_bytes: u64,
    pub os: String,
    pub kernel: String,
    pub hostname: String,
    pub arch: String,
    /// Calibrated at the start of a speed run; absent in evaluations and older files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roofline: Option<Roofline>,
}

fn cpu_features() -> Vec<String> {
    #[allow(unused_mut)]
    let mut f: Vec<&str> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") {
            f.push("avx2");
        }
        if is_x86_feature_detected!("fma") {
            f.push("fma");
        }
        if is_x86_feature_detected!("avx512f") {
            f.push("avx512f");
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            f.push("neon");
        }
    }
    f.into_iter().map(String::from).collect()
}

impl Machine {
    pub fn capture() -> Self {
        let sys = System::new_with_specifics(
            RefreshKind::nothing()
                .with_cpu(CpuRefreshKind::nothing())
                .with_memory(MemoryRefreshKind::nothing().with_ram()),
        )
        .ok();
        let cpu_model = sys
            .as_ref()
            .and_then(|s| s.cpus().first())
            .map(|c| c.brand().trim().to_string())
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| "unknown".into());
        Self {
            cpu_model,
            physical_cores: System::physical_core_count().ok(),
            logical_cores: sys.as_ref().map_or(0, |s| s.cpus().len()),
            cpu_features: cpu_features(),
            ram_bytes: sys.as_ref().map_or(0, |s| s.total_memory()),
            os: System::long_os_version().unwrap_or_else(|_| "unknown".into()),
            kernel: System::kernel_version().unwrap_or_else(|_| "unknown".into()),
            hostname: System::host_name().unwrap_or_else(|_| "unknown".into()),
            arch: std::env::consts::ARCH.into(),
            roofline: None,
        }
    }
}
