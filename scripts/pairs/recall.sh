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
WIDTHS=${WIDTHS-"64 128 256"}   # empty: skip the grid
ARCHS=${ARCHS:-"llama rwkv7"}
LRS=${LRS:-"1e-3 3e-3"}
STEPS=${STEPS:-1000}
BATCH=${BATCH:-32}
JOBS=${JOBS:-$(nproc)}
TOKEN_VOCAB=${TOKEN_VOCAB:-256}
TOKENIZER=assets/pretrained/tokenizer.json

# A curriculum in one mixture: short sequences with few pairs teach the lookup, the
# longer ones the distances; step s draws mixture entry (s-1) mod 5. Keys and values
# come from 256 ids (TOKEN_VOCAB), so each key is seen often enough in a CPU budget.
MIX=(--mix seq_len=64,mqar_pairs=4 --mix seq_len=64,mqar_pairs=8
     --mix seq_len=128,mqar_pairs=16 --mix seq_len=256,mqar_pairs=32
     --mix seq_len=256,mqar_pairs=64)

train_one() {
  local arch=$1 width=$2 lr=$3
  local run="$OUT/$arch-$width-lr$lr"
  local resume=()
  [[ -e "$run/latest" ]] && resume=(--resume)
  "$BIN" train --model "$arch:preset=recall-$width,tokenizer=hf:$TOKENIZER" \
    --task mqar --task-param "token_vocab=$TOKEN_VOCAB" "${MIX[@]}" --batch "$BATCH" --steps "$STEPS" --lr "$lr" \
    --warmup 50 --seed 0 --threads 1 --checkpoint-every 100 --out "$run" "${resume[@]}" \
    > "$run.train.log" 2>&1 || { echo "training $run failed: see $run.train.log" >&2; return 1; }
}
export -f train_one
export BIN OUT STEPS BATCH TOKENIZER TOKEN_VOCAB
export MIX_STR="${MIX[*]}"

mkdir -p "$OUT"
jobs=()
for w in $WIDTHS; do for lr in $LRS; do for a in $ARCHS; do jobs+=("$a $w $lr"); done; done; done
[[ ${#jobs[@]} -eq 0 ]] || printf '%s\n' "${jobs[@]}" | xargs -P "$JOBS" -L 1 bash -c 'MIX=($MIX_STR); train_one "$@"' _

# Evaluation: every run's last checkpoint on the study grid.
for w in $WIDTHS; do for lr in $LRS; do for a in $ARCHS; do
  run="$OUT/$a-$w-lr$lr"
  [[ -e "$run/latest" ]] || { echo "no checkpoint in $run" >&2; continue; }
  ck="$run/$(cat "$run/latest")"
  model=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['model'])" "$ck/checkpoint.json")
  "$BIN" eval suites/recall-study.toml --model "$a:$ck/$model,tokenizer=hf:$TOKENIZER" \
    --out "$run.eval" --threads 1 > "$run.eval.log" 2>&1 || echo "evaluating $run failed: see $run.eval.log" >&2
done; done; done


# The shipped pair (assets/pretrained/recall-small): width 128, both architectures on
# one short-sequence mixture (more sequences per step than the grid's: Llama's
# induction circuit forms with sequences seen, not tokens), PAIR_STEPS steps. As
# shipped: RWKV-7 from `PAIR_STEPS=4000 ARCHS=rwkv7` stopped at step 1000 (its loss
# was 0.00 from step ~300), Llama `PAIR_STEPS=4000 ARCHS=llama` then
# `PAIR_MORE=3000 ARCHS=llama` (from its step 4000, a new warm-up and cosine), stopped
# at that run's step 1000 (loss 0.007).
PAIR_MIX=(--mix seq_len=32,mqar_pairs=4 --mix seq_len=32,mqar_pairs=8
          --mix seq_len=64,mqar_pairs=8 --mix seq_len=64,mqar_pairs=16)
# train_pair ARCH MODEL_SPEC_SOURCE STEPS SEED OUT: the pair's recipe, in the background.
train_pair() {
  "$BIN" train --model "$1:$2,tokenizer=hf:$TOKENIZER" \
    --task mqar --task-param "token_vocab=$TOKEN_VOCAB" "${PAIR_MIX[@]}" --batch 64 \
    --steps "$3" --lr 3e-3 --warmup 100 --seed "$4" --threads 1 \
    --checkpoint-every 250 --out "$5" > "$5.train.log" 2>&1 &
}
if [[ -n "${PAIR_MORE:-}" ]]; then
  for a in $ARCHS; do
    from="$OUT/pair/$a-128"
    ck="$from/$(cat "$from/latest")"
    model=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['model'])" "$ck/checkpoint.json")
    train_pair "$a" "$ck/$model" "$PAIR_MORE" 1 "$from+$PAIR_MORE"
  done
  wait
fi
if [[ -n "${PAIR_STEPS:-}" ]]; then
  mkdir -p "$OUT/pair"
  for a in $ARCHS; do
    train_pair "$a" "preset=recall-128" "$PAIR_STEPS" 0 "$OUT/pair/$a-128"
  done
  wait
fi
