use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use std::time::Instant;
use transformer::{Config, Logits, Model};

struct Random;
impl SimpleBackend for Random {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        if name.ends_with("norm.weight") {
            return Tensor::ones(s, dtype, dev);
        }
        let fan_in = *s.dims().last().unwrap_or(&1) as f64;
        Tensor::rand(-1f32, 1f32, s, dev)?
            .affine(1.0 / fan_in.sqrt(), 0.0)?
            .to_dtype(dtype)
    }
    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("{name}")
    }
    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}

fn tokens(n: usize) -> Tensor {
    let ids: Vec<u32> = (0..n as u32).map(|i| (i * 7919) % 65536).collect();
    Tensor::new(ids.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap()
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let (depth, steps) = (args[0], args[1]);
    let cfg = Config::preset("0.1b").unwrap();
    let vb = VarBuilder::from_backend(Box::new(Random), DType::F32, Device::Cpu);
    let model = Model::new(&cfg, vb).unwrap();
    let mut cache = model.new_cache(1).unwrap();
    let t = Instant::now();
    model
        .forward(&tokens(depth), &mut cache, Logits::Last)
        .unwrap();
    let pf = t.elapsed().as_secs_f64();
    println!(
        "prefill {depth}: {:.3}s = {:.1} tok/s",
        pf,
        depth as f64 / pf
    );
    let next = tokens(1);
    let mut v = vec![];
    for _ in 0..steps {
        let t = Instant::now();
        model.forward(&next, &mut cache, Logits::Last).unwrap();
        v.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "decode ms: {:?}",
        v.iter()
            .map(|x| (x * 10.0).round() / 10.0)
            .collect::<Vec<_>>()
    );
}
