//! `rwkv-bench grad`: the next-token loss of given tokens and the gradient of every
//! parameter, as a safetensors file (`loss` `[1]`, `grad.<checkpoint key>` in the
//! checkpoint's shape, f32), so anyone can check gradient parity on any checkpoint.

use anyhow::{bail, Context};
use candle_core::{DType, Device, Tensor};
use models::{registry, BuildOptions};

use crate::cli::GradArgs;

pub fn run(args: GradArgs) -> anyhow::Result<()> {
    if args.tokens.len() < 2 {
        bail!("--tokens: give at least two token ids (the loss predicts each next one)");
    }
    let opts = BuildOptions::default();
    let model = registry::build_trainable(&args.model, &opts)?;
    let tokens = Tensor::new(args.tokens.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
    let loss = model.loss(&tokens)?;
    let grads = loss.backward()?;
    let params = model.params();
    let mut out: Vec<(String, Tensor)> = vec![("loss".into(), loss.reshape(1)?)];
    for (key, shape) in model.checkpoint_keys() {
        let grad = params
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| grads.get(v.as_tensor()).cloned());
        let grad = match grad {
            Some(g) => g.reshape(shape)?,
            // Not a parameter the loss depends on (layer 0's value-residual tensors).
            None => Tensor::zeros(shape, DType::F32, &Device::Cpu)?,
        };
        out.push((format!("grad.{key}"), grad));
    }
    let bytes = safetensors::tensor::serialize(out.iter().map(|(k, t)| (k.as_str(), t)), None)
        .with_context(|| format!("serialising gradients for {}", args.out.display()))?;
    results::atomic::write(&args.out, &bytes)?;
    println!(
        "wrote {} (loss {:.6} and {} gradients)",
        args.out.display(),
        loss.to_scalar::<f32>()?,
        out.len() - 1
    );
    Ok(())
}
