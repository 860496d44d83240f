//! Sharded sweeps: which of `N` shards runs each unit of a suite's work, and what a
//! shard records about itself so that `merge` can check that a set of shards is one
//! whole run.
//!
//! The assignment depends only on the suite (its units and their predicted costs), never
//! on the machine, the clock or the shard that computes it: every shard of a job array
//! computes the same assignment independently, with no coordinator.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Shard `index` of `count`, both counted from 1 as written on the command line
/// (`--shard 2/4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let fail = |why: &str| Error::Shard(format!("`--shard {s}`: {why}"));
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| fail("expected I/N, e.g. 1/4 (shard I of N, from 1)"))?;
        let parse = |x: &str, what: &str| {
            x.trim()
                .parse::<usize>()
                .map_err(|_| fail(&format!("{what} `{x}` is not a whole number")))
        };
        let (index, count) = (parse(i, "the index")?, parse(n, "the count")?);
        if count == 0 {
            return Err(fail("the count must be at least 1"));
        }
        if index == 0 || index > count {
            return Err(fail(&format!(
                "the index counts from 1 to {count} (a Kubernetes JOB_COMPLETION_INDEX \
                 counts from 0: pass it plus one)"
            )));
        }
        Ok(Self { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Assigns units of predicted `costs` to `count` shards (0-based shard per unit):
/// longest processing time first, each unit to the least loaded shard, ties to the
/// lower unit and shard index, so the result is the same wherever it is computed. The
/// most loaded shard then carries at most 4/3 of the optimum (Graham's bound).
pub fn assign(costs: &[f64], count: usize) -> Vec<usize> {
    let count = count.max(1);
    let mut order: Vec<usize> = (0..costs.len()).collect();
    order.sort_by(|&a, &b| costs[b].total_cmp(&costs[a]).then(a.cmp(&b)));
    let mut load = vec![0.0f64; count];
    let mut shard_of = vec![0; costs.len()];
    for unit in order {
        let lightest = (0..count)
            .min_by(|&a, &b| load[a].total_cmp(&load[b]).then(a.cmp(&b)))
            .unwrap_or(0);
        load[lightest] += costs[unit].max(0.0);
        shard_of[unit] = lightest;
    }
    shard_of
}

/// What a shard's results record about the shard: which units it was given (whether
/// or not each was measured: a failed cell is still that shard's), and when and where
/// it ran. A merged file keeps one per shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardRecord {
    pub index: usize,
    pub count: usize,
    /// The units this shard was assigned, as `Unit` labels (`seq_len 256`,
    /// `max_context rwkv7:preset=3b`, …).
    pub units: Vec<String>,
    /// The shard's share of the suite's predicted cost (0..1).
    pub predicted_share: f64,
    pub hostname: String,
    pub started_at: String,
    pub finished_at: String,
    pub duration_s: f64,
}

impl ShardRecord {
    pub fn shard(&self) -> Shard {
        Shard {
            index: self.index,
            count: self.count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_from_one_and_refuse_the_rest() {
        let s: Shard = "2/4".parse().unwrap();
        assert_eq!((s.index, s.count), (2, 4));
        assert_eq!(s.to_string(), "2/4");
        for bad in ["0/4", "5/4", "1/0", "x/2", "3", "-1/2"] {
            let e = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn every_unit_lands_in_exactly_one_shard_and_loads_balance() {
        let costs = [9.0, 1.0, 1.0, 4.0, 4.0, 2.0, 3.0, 0.0];
        for n in 1..=10 {
            let a = assign(&costs, n);
            assert_eq!(a.len(), costs.len());
            assert!(a.iter().all(|&s| s < n));
            assert_eq!(a, assign(&costs, n), "deterministic");
        }
        let a = assign(&costs, 2);
        let load = |s| {
            (0..costs.len())
                .filter(|&u| a[u] == s)
                .map(|u| costs[u])
                .sum::<f64>()
        };
        // 24 in all: LPT gives 12 / 12 here.
        assert_eq!((load(0), load(1)), (12.0, 12.0));
        // Graham's bound on a harder case: three shards, five units.
        let costs = [5.0, 5.0, 4.0, 4.0, 3.0, 3.0, 3.0];
        let a = assign(&costs, 3);
        let max = (0..3)
            .map(|s| {
                (0..costs.len())
                    .filter(|&u| a[u] == s)
                    .map(|u| costs[u])
                    .sum::<f64>()
            })
            .fold(0.0, f64::max);
        assert!(max <= 4.0 / 3.0 * 9.0, "{max}");
    }
}
