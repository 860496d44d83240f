//! One adapter per model implementation, each turning it into a [`crate::CausalLm`].

pub mod llama;
pub mod llama_upstream;
pub mod rwkv7;
pub mod rwkv7_upstream;

use candle_core::{DType, Device};

/// What every adapter needs to build a model.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub dtype: DType,
    pub device: Device,
    /// Seed for random preset weights.
    pub seed: u64,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self {
            dtype: DType::F32,
            device: Device::Cpu,
            seed: 0,
        }
    }
}

/// `"f32"`, `"bf16"`, … for records.
pub fn dtype_name(dtype: DType) -> String {
    format!("{dtype:?}").to_lowercase()
}

/// `"cpu"`, `"cuda:0"`, … for records.
pub fn device_name(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}
