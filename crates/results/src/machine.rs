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
