//! `rwkv-bench info`: the machine and the presets.

use models::presets::PRESETS;
use models::pretrained::{self, PRETRAINED};
use models::registry::REGISTRY;
use results::machine::Machine;

pub fn run() -> anyhow::Result<()> {
    let m = Machine::capture();
    println!("machine");
    println!(
        "  cpu       {} ({})",
        m.cpu_model,
        m.cpu_features.join(", ")
    );
    println!(
        "  cores     {} logical, {} physical",
        m.logical_cores,
        m.physical_cores.map_or("?".into(), |c| c.to_string())
    );
    if m.cores() != m.logical_cores {
        println!(
            "  usable    {} cores (CPU affinity or cgroup quota)",
            m.cores()
        );
    }
    println!("  memory    {}", report::format::bytes(m.ram_bytes as f64));
    if let Some(limit) = m.memory_limit_bytes {
        println!(
            "  limit     {} (cgroup)",
            report::format::bytes(limit as f64)
        );
    }
    println!(
        "  machine   {} (what reports tell machines apart by)",
        m.id()
    );
    println!("  os        {} (kernel {}, {})", m.os, m.kernel, m.arch);
    println!(
        "  threads   {} (set RAYON_NUM_THREADS or a suite's `threads`)",
        harness_threads()
    );
    println!("\nimplementations");
    for e in REGISTRY {
        println!(
            "  {:<16} {:<12} {}",
            e.name(),
            e.arch().to_string(),
            e.description()
        );
    }
    println!("\npresets (random weights; spec NAME:preset=PRESET)");
    print!(
        "  {:<8}{:>8}{:>8}{:>8}",
        "preset", "layers", "width", "vocab"
    );
    for e in REGISTRY {
        print!("{:>18}", e.name());
    }
    println!();
    for p in PRESETS {
        print!("  {:<8}{:>8}{:>8}{:>8}", p.name, p.layers, p.width, p.vocab);
        for e in REGISTRY {
            print!("{:>16.1} M", e.preset_params(p) as f64 / 1e6);
        }
        println!();
    }
    println!(
        "\ntrained pairs (spec rwkv7:pretrained=NAME, llama:pretrained=NAME; in {})",
        pretrained::assets_dir().display()
    );
    for p in PRETRAINED {
        println!("  {:<14} {}", p.name, p.about);
    }
    Ok(())
}

fn harness_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
