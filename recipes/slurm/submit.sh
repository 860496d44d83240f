#!/bin/bash
# Queues a sharded suite and its merge:
#   recipes/slurm/submit.sh suites/long-context.toml 8 [OUT]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
SUITE=${1:?usage: submit.sh SUITE SHARDS [OUT]}
SHARDS=${2:?usage: submit.sh SUITE SHARDS [OUT]}
OUT=${3:-$PWD/reports/sharded-$(date +%Y%m%d-%H%M%S)}
export SUITE OUT
array=$(sbatch --parsable --array="1-$SHARDS" "$here/bench.sbatch")
sbatch --parsable --dependency="afterany:$array" "$here/merge.sbatch" >/dev/null
echo "array job $array: $SHARDS shards of $SUITE into $OUT, merged into $OUT/merged"
