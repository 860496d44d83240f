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
    if args.len() > 2 {
        breakdown(depth);
        return;
    }
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
    eprintln!("DECODE START");
    let cpu0 = cpu_ms();
    let wall0 = Instant::now();
    let mut v = vec![];
    for _ in 0..steps {
        let t = Instant::now();
        model.forward(&next, &mut cache, Logits::Last).unwrap();
        v.push(t.elapsed().as_secs_f64() * 1e3);
    }
    if steps > 0 {
        println!(
            "decode cpu ms/step {:.1} wall ms/step {:.1}",
            (cpu_ms() - cpu0) / steps as f64,
            wall0.elapsed().as_secs_f64() * 1e3 / steps as f64
        );
    }
    println!(
        "decode ms: {:?}",
        v.iter()
            .map(|x| (x * 10.0).round() / 10.0)
            .collect::<Vec<_>>()
    );
}

#[allow(dead_code)]
pub fn breakdown(t_total: usize) {
    use transformer::linear::Linear;
    use transformer::sdpa::causal_attention;
    let dev = Device::Cpu;
    let r = |s: (usize, usize)| Tensor::rand(-0.03f32, 0.03, s, &dev).unwrap();
    let lins: Vec<(&str, Linear, usize)> = vec![
        ("q", Linear::new(r((768, 768)), None), 768),
        ("k", Linear::new(r((768, 768)), None), 768),
        ("v", Linear::new(r((768, 768)), None), 768),
        ("o", Linear::new(r((768, 768)), None), 768),
        ("gate", Linear::new(r((2240, 768)), None), 768),
        ("up", Linear::new(r((2240, 768)), None), 768),
        ("down", Linear::new(r((768, 2240)), None), 2240),
    ];
    let chunk = 512;
    let mut tot = 0.0;
    for (name, l, din) in &lins {
        let x = r((chunk, *din));
        let t = Instant::now();
        for _ in 0..(t_total / chunk) * 12 {
            l.forward(&x).unwrap();
        }
        let s = t.elapsed().as_secs_f64();
        tot += s;
        println!("linear {name}: {:.3}s", s);
    }
    println!("linears total {tot:.3}s");
    let k = Tensor::rand(-1f32, 1., (1, 12, t_total, 64), &dev).unwrap();
    let v = Tensor::rand(-1f32, 1., (1, 12, t_total, 64), &dev).unwrap();
    let q = Tensor::rand(-1f32, 1., (1, chunk, 12, 64), &dev).unwrap();
    let t = Instant::now();
    for c in 0..t_total / chunk {
        for _ in 0..12 {
            causal_attention(&q, &k, &v, (c + 1) * chunk).unwrap();
        }
    }
    println!("attention total {:.3}s", t.elapsed().as_secs_f64());
}

fn cpu_ms() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = s.rsplit(')').next().unwrap().split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) * 10.0
}
