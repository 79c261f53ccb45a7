//! One CPU-feature probe for every kernel family (tract's `plug` after one detection):
//! the f32 GEMM's [`crate::kernels::gemm::Isa`], the int8 kernels'
//! [`crate::optimize::quant::kernel::Isa`] and Adam's update all read [`features`], so a new
//! ISA path is one flag here plus its kernel file, and every family agrees on what the CPU has.

use std::sync::OnceLock;

/// What this CPU supports. Probed once: `is_x86_feature_detected!` is cheap but not free,
/// and the answer cannot change while the process runs. All `false` off x86-64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Features {
    pub avx2: bool,
    pub fma: bool,
    pub avx512f: bool,
    pub avx512bw: bool,
    pub avx512vnni: bool,
}

impl Features {
    /// AVX2 with FMA: the f32 GEMM's 256-bit path.
    pub fn avx2_fma(self) -> bool {
        self.avx2 && self.fma
    }

    /// AVX-512 F, BW and VNNI: the int8 kernels' `vpdpbusd` path.
    pub fn avx512_vnni(self) -> bool {
        self.avx512f && self.avx512bw && self.avx512vnni
    }
}

/// The features of this CPU (cached).
pub fn features() -> Features {
    static FEATURES: OnceLock<Features> = OnceLock::new();
    *FEATURES.get_or_init(probe)
}

#[cfg(target_arch = "x86_64")]
fn probe() -> Features {
    Features {
        avx2: std::arch::is_x86_feature_detected!("avx2"),
        fma: std::arch::is_x86_feature_detected!("fma"),
        avx512f: std::arch::is_x86_feature_detected!("avx512f"),
        avx512bw: std::arch::is_x86_feature_detected!("avx512bw"),
        avx512vnni: std::arch::is_x86_feature_detected!("avx512vnni"),
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn probe() -> Features {
    Features::default()
}
