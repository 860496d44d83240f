#!/usr/bin/env bash
# The recall study (Zoology-style MQAR): trains every (architecture, width, learning
# rate) from seed 0 on the same mixture, steps, batch and optimizer, then evaluates each
# on suites/recall-study.toml. Every run is reproducible from this file alone.
#
#   scripts/pairs/recall.sh                  # the whole grid, one job per core
#   WIDTHS=128 LRS=3e-3 scripts/pairs/recall.sh
#
# Output: $OUT/<arch>-<width>-lr<lr>/ (training runs) and $OUT/<run>.results.jsonl.
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN=${BIN:-target/release/rwkv-bench}
OUT=${OUT:-reports/recall-study}
WIDTHS=${WIDTHS:-"64 128 256"}
ARCHS=${ARCHS:-"llama rwkv7"}
LRS=${LRS:-"1e-3 3e-3"}
STEPS=${STEPS:-1000}
BATCH=${BATCH:-32}
JOBS=${JOBS:-$(nproc)}
TOKENIZER=assets/pretrained/tokenizer.json

# A curriculum in one mixture: short sequences with few pairs teach the lookup, the
# longer ones the distances; step s draws mixture entry (s-1) mod 5.
MIX=(--mix seq_len=64,mqar_pairs=4 --mix seq_len=128,mqar_pairs=8
     --mix seq_len=256,mqar_pairs=16 --mix seq_len=256,mqar_pairs=32
     --mix seq_len=256,mqar_pairs=64)

train_one() {
  local arch=$1 width=$2 lr=$3
  local run="$OUT/$arch-$width-lr$lr"
  local resume=()
  [[ -e "$run/latest" ]] && resume=(--resume)
  "$BIN" train --model "$arch:preset=recall-$width,tokenizer=hf:$TOKENIZER" \
    --task mqar "${MIX[@]}" --batch "$BATCH" --steps "$STEPS" --lr "$lr" \
    --warmup 50 --seed 0 --threads 1 --checkpoint-every 100 --out "$run" "${resume[@]}" \
    > "$run.train.log" 2>&1 || { echo "training $run failed: see $run.train.log" >&2; return 1; }
}
export -f train_one
export BIN OUT STEPS BATCH TOKENIZER
export MIX_STR="${MIX[*]}"

mkdir -p "$OUT"
jobs=()
for w in $WIDTHS; do for lr in $LRS; do for a in $ARCHS; do jobs+=("$a $w $lr"); done; done; done
printf '%s\n' "${jobs[@]}" | xargs -P "$JOBS" -L 1 bash -c 'MIX=($MIX_STR); train_one "$@"' _
