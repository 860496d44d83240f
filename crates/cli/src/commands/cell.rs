//! The child side of an isolated cell: a plan on stdin, JSON-line events on stdout.

pub fn run() -> anyhow::Result<()> {
    Ok(speed::cell_main()?)
}
