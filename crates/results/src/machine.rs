//! The machine a run was made on, captured with sysinfo.

use crate::roofline::Roofline;
use serde::{Deserialize, Serialize};
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpu_model: String,
    pub physical_cores: Option<usize>,
    pub logical_cores: usize,
    /// Instruction-set extensions that decide CPU matmul speed, as std's feature detection
    /// names them: x86_64 avx2, fma, f16c, avxvnni, avx512f/bw/vl/vnni/bf16/fp16 and
    /// amx-tile/bf16/int8/fp16; aarch64 neon, dotprod, fp16, bf16, i8mm, sve, sve2.
    pub cpu_features: Vec<String>,
    pub ram_bytes: u64,
    /// Cores this process may run on: its CPU affinity and cgroup quota (a container's
    /// `--cpus`, a Kubernetes limit, a Slurm allocation), which can be fewer than
    /// `logical_cores`. Absent in files written before it was captured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usable_cores: Option<usize>,
    /// The cgroup's memory limit, where one is set below `ram_bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit_bytes: Option<u64>,
    pub os: String,
    pub kernel: String,
    pub hostname: String,
    pub arch: String,
    /// Calibrated at the start of a speed run; absent in evaluations and older files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roofline: Option<Roofline>,
}

/// Detects, at run time, the instruction-set extensions that decide CPU matmul speed,
/// named as std's feature detection spells them.
fn cpu_features() -> Vec<String> {
    /// `[(name, detected)]` for each name, by `$detect!(name)`.
    #[allow(unused_macros)]
    macro_rules! table {
        ($detect:ident: $($name:tt),* $(,)?) => {
            [$(($name, $detect!($name))),*]
        };
    }
    #[allow(unused_mut)]
    let mut found: Vec<&str> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected;
        let simd = table!(is_x86_feature_detected:
            "avx2", "fma", "f16c", "avxvnni",
            "avx512f", "avx512bw", "avx512vl", "avx512vnni", "avx512bf16", "avx512fp16",
        );
        found.extend(simd.iter().filter(|f| f.1).map(|f| f.0));
        found.extend(amx_features());
    }
    #[cfg(target_arch = "aarch64")]
    {
        use std::arch::is_aarch64_feature_detected;
        let simd = table!(is_aarch64_feature_detected:
            "neon", "dotprod", "fp16", "bf16", "i8mm", "sve", "sve2",
        );
        found.extend(simd.iter().filter(|f| f.1).map(|f| f.0));
    }
    found.into_iter().map(String::from).collect()
}

/// The AMX tile extensions, which std cannot detect on stable Rust yet
/// (`x86_amx_intrinsics`): read from CPUID leaf 7, and counted only when the OS saves
/// tile state (XCR0 bits 17 and 18).
#[cfg(target_arch = "x86_64")]
fn amx_features() -> Vec<&'static str> {
    use std::arch::x86_64::{__cpuid, __cpuid_count, _xgetbv};
    /// (name as std spells it, leaf 7 sub-leaf, bit in EAX (else EDX), bit)
    const AMX: [(&str, u32, bool, u32); 4] = [
        ("amx-tile", 0, false, 24),
        ("amx-bf16", 0, false, 22),
        ("amx-int8", 0, false, 25),
        ("amx-fp16", 1, true, 21),
    ];
    const OSXSAVE: u32 = 1 << 27;
    const TILE_STATE: u64 = (1 << 17) | (1 << 18);
    if __cpuid(0).eax < 7 || __cpuid(1).ecx & OSXSAVE == 0 || !is_x86_feature_detected!("xsave") {
        return Vec::new();
    }
    // SAFETY: the CPU has XSAVE and the OS has enabled XGETBV (OSXSAVE), checked above.
    if unsafe { _xgetbv(0) } & TILE_STATE != TILE_STATE {
        return Vec::new();
    }
    let max_sub_leaf = __cpuid_count(7, 0).eax;
    AMX.iter()
        .filter(|&&(_, sub_leaf, in_eax, bit)| {
            let r = __cpuid_count(7, sub_leaf);
            sub_leaf <= max_sub_leaf && (if in_eax { r.eax } else { r.edx }) & (1 << bit) != 0
        })
        .map(|f| f.0)
        .collect()
}

/// The memory limit of this process's own cgroup and of every cgroup above it (the
/// lowest applies), cgroup v2 (`memory.max`) or v1 (`memory.limit_in_bytes`).
fn own_cgroup_memory_limit() -> Option<u64> {
    let table = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let (root, file, path) = table.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        if id == "0" && controllers.is_empty() {
            Some(("/sys/fs/cgroup", "memory.max", path))
        } else if controllers.split(',').any(|c| c == "memory") {
            Some(("/sys/fs/cgroup/memory", "memory.limit_in_bytes", path))
        } else {
            None
        }
    })?;
    let mut dir = std::path::PathBuf::from(root).join(path.trim_start_matches('/'));
    let mut lowest: Option<u64> = None;
    loop {
        // "max" (v2) or a page-rounded i64::MAX (v1) mean no limit: they do not parse
        // or lie above any RAM, and the caller drops limits at or above RAM.
        if let Some(limit) = std::fs::read_to_string(dir.join(file))
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
        {
            lowest = Some(lowest.map_or(limit, |l| l.min(limit)));
        }
        if dir.as_os_str().len() <= root.len() || !dir.pop() {
            break;
        }
    }
    lowest
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
        let ram_bytes = sys.as_ref().map_or(0, |s| s.total_memory());
        // sysinfo reads the cgroup mounted at the root (a container's own, under a
        // cgroup namespace); a Slurm job or a systemd slice sits lower in the host's
        // tree, which only /proc/self/cgroup names.
        let memory_limit_bytes = [
            sys.as_ref()
                .and_then(|s| s.cgroup_limits())
                .map(|l| l.total_memory),
            own_cgroup_memory_limit(),
        ]
        .into_iter()
        .flatten()
        .filter(|&limit| limit > 0 && limit < ram_bytes)
        .min();
        Self {
            cpu_model,
            physical_cores: System::physical_core_count().ok(),
            logical_cores: sys.as_ref().map_or(0, |s| s.cpus().len()),
            cpu_features: cpu_features(),
            ram_bytes,
            usable_cores: std::thread::available_parallelism().ok().map(|n| n.get()),
            memory_limit_bytes,
            os: System::long_os_version().unwrap_or_else(|_| "unknown".into()),
            kernel: System::kernel_version().unwrap_or_else(|_| "unknown".into()),
            hostname: System::host_name().unwrap_or_else(|_| "unknown".into()),
            arch: std::env::consts::ARCH.into(),
            roofline: None,
        }
    }
}

/// What makes two captures the same machine for a benchmark: the CPU model and the
/// extensions found, the cores and memory a run could use, the architecture. Host
/// names, kernels and rooflines are left out: identical cloud instances are one kind
/// of machine, and a roofline is a measurement, not the hardware.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MachineId {
    pub cpu_model: String,
    pub cores: usize,
    /// Memory the run could use, in whole GiB (RAM, or a lower cgroup limit).
    pub memory_gib: u64,
    pub cpu_features: Vec<String>,
    pub arch: String,
}

impl Machine {
    /// Cores a run on this machine could use.
    pub fn cores(&self) -> usize {
        self.usable_cores.unwrap_or(self.logical_cores)
    }

    /// Memory a run on this machine could use, bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.memory_limit_bytes
            .map_or(self.ram_bytes, |l| l.min(self.ram_bytes))
    }

    /// The hardware this capture describes, to tell machines apart.
    pub fn id(&self) -> MachineId {
        let mut cpu_features = self.cpu_features.clone();
        cpu_features.sort();
        MachineId {
            cpu_model: self.cpu_model.clone(),
            cores: self.cores(),
            memory_gib: (self.memory_bytes() as f64 / (1u64 << 30) as f64).round() as u64,
            cpu_features,
            arch: self.arch.clone(),
        }
    }
}

impl std::fmt::Display for MachineId {
    /// `AMD EPYC 9B14, 2 cores, 24 GiB, avx512bf16`: the label reports use.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}, {} core{}, {} GiB",
            self.cpu_model,
            self.cores,
            if self.cores == 1 { "" } else { "s" },
            self.memory_gib
        )?;
        // The one extension that most changes CPU matmul speed, where present.
        let best = ["amx-bf16", "avx512bf16", "avx512f", "avx2", "sve", "neon"]
            .into_iter()
            .find(|x| self.cpu_features.iter().any(|f| f == x));
        if let Some(x) = best {
            write!(f, ", {x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(host: &str, cores: usize, limit: Option<u64>) -> Machine {
        Machine {
            cpu_model: "AMD EPYC 9B14".into(),
            physical_cores: Some(1),
            logical_cores: 2,
            cpu_features: vec!["avx512f".into(), "avx2".into()],
            ram_bytes: 24 << 30,
            usable_cores: Some(cores),
            memory_limit_bytes: limit,
            os: "Debian 12".into(),
            kernel: "6.1".into(),
            hostname: host.into(),
            arch: "x86_64".into(),
            roofline: None,
        }
    }

    #[test]
    fn machines_differ_by_usable_hardware_not_by_host_name() {
        assert_eq!(machine("a", 2, None).id(), machine("b", 2, None).id());
        assert_ne!(machine("a", 2, None).id(), machine("a", 1, None).id());
        let limited = machine("a", 2, Some(6 << 30));
        assert_ne!(machine("a", 2, None).id(), limited.id());
        assert_eq!(limited.id().memory_gib, 6);
        assert_eq!(
            machine("a", 1, None).id().to_string(),
            "AMD EPYC 9B14, 1 core, 24 GiB, avx512f"
        );
    }
}
