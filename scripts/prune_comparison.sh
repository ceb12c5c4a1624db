#!/usr/bin/env bash
# The measured comparison of lethe's pruning methods: OMP, IMP, SynFlow and random pruning to
# 90%, 95% and 99% on the CPU-scale recipe (`--preset cpu`: ResNet-18 width 0.25, 20 epochs,
# one-cycle, CIFAR-10), all rewinding methods from one dense run, collected into one JSON and
# one Markdown table.
#
# Usage: scripts/prune_comparison.sh [piece ...]        (no argument: `next`)
#   dense                   the dense run, `lethe train --preset cpu` (~40 min on 2 cores);
#                           skipped when DENSE names an existing finished run
#   omp-90 omp-95 omp-99    rewind to epoch 8 + one 20-epoch retraining each (~40 min)
#   random-90 ...           the same with a random global mask (the control)
#   synflow-90 ...          100 SynFlow iterations at initialisation + 20 epochs (~40 min)
#   imp-90 (imp-95 imp-99)  MAX_STAGES rounds per call (~40 min a round; 11, 14 and 21 rounds
#                           in all); call again until it prints its result. Rounds before the
#                           last are the same for every target rate, so finished rounds of the
#                           other IMP runs are copied in first (imp-95 reuses 10 rounds of
#                           imp-90, imp-99 13 of imp-95).
#   summary                 OUT/*/results.json -> OUT/comparison.json and OUT/comparison.md
#   handoff-save imp-90     IMP to 90% needs 3-4 h of 2-core time, more than one session, and
#                           runs/ does not outlive a session. This saves what the next session
#                           needs into HANDOFF/imp-90 (committed, ~100 KB): the masks of the
#                           latest round (gzip), the finished rounds' train logs, and the sha256
#                           of the dense run's rewind snapshot. The next `imp-90` call restores
#                           them once `dense` has been rerun (same seed, same code: the same
#                           bytes on the same kind of CPU, checked) and `lethe prune --resume`
#                           continues from that round.
#   next                    the next unfinished piece, then exit (a driver calls this in a loop
#                           until it prints "all pieces done"); `all` runs every piece in turn
# Every piece resumes where it stopped (kill it any time); a finished piece is skipped.
#
# Environment: OUT (runs/prune-comparison), DENSE (an existing `lethe train --preset cpu` run to
# reuse, e.g. runs/cpu-r18w025; default OUT/dense), LETHE (build/lethe), MAX_STAGES (3),
# HANDOFF (docs/runs/prune-comparison/handoff), REVISION (the git revision LETHE was built
# from, recorded by handoff-save; default HEAD),
# REWIND (8: the dense snapshot epoch), RATES ("90 95 99", in percent), IMP_RATES ("90": IMP
# beyond 90% takes 14 and 21 rounds, too many for a 2-core machine), EXTRA (flags for every
# train and prune call, e.g. "--data-dir ../shared/data/cifar10 --threads 2").
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-runs/prune-comparison}
DENSE=${DENSE:-$OUT/dense}
LETHE=${LETHE:-build/lethe}
MAX_STAGES=${MAX_STAGES:-3}
HANDOFF=${HANDOFF:-docs/runs/prune-comparison/handoff}
REWIND=${REWIND:-8}
EXTRA=${EXTRA:-}
RATES=${RATES:-90 95 99}
IMP_RATES=${IMP_RATES:-90}
PIECES="dense"
for m in omp random synflow; do for r in $RATES; do PIECES="$PIECES $m-$r"; done; done
for r in $IMP_RATES; do PIECES="$PIECES imp-$r"; done

[ -x "$LETHE" ] || { echo "prune_comparison: $LETHE not found; build it first" >&2; exit 2; }
mkdir -p "$OUT"

# Prints "epoch epochs" from a checkpoint's safetensors metadata (empty when absent).
ckpt_epochs() {
  python3 - "$1" <<'PY'
import json, struct, sys
try:
    with open(sys.argv[1], "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        meta = json.loads(f.read(n)).get("__metadata__", {})
    print(meta.get("epoch", ""), meta.get("epochs", ""))
except OSError:
    pass
PY
}

finished_ckpt() {  # a checkpoint written at the end of its run
  local e
  e=$(ckpt_epochs "$1")
  [ -n "$e" ] && [ "${e% *}" = "${e#* }" ]
}

done_piece() {
  case $1 in
    dense) finished_ckpt "$DENSE/last.safetensors" ;;
    summary) false ;;
    *) [ -f "$OUT/$1/results.json" ] ;;
  esac
}

imp_rounds() {  # IMP rounds to a rate in percent: 11, 14, 21 for 90, 95, 99
  python3 -c "import math,sys; r=int(sys.argv[1])/100; print(next(s for s in range(1,200) if 0.8**s <= (1-r)*(1+1e-12)))" "$1"
}

share_imp_rounds() {  # copies finished intermediate rounds of the other IMP runs into imp-$1
  local target=$OUT/imp-$1 last s src
  last=$(imp_rounds "$1")
  mkdir -p "$target"
  for src in "$OUT"/imp-*; do
    [ "$src" = "$target" ] && continue
    for ((s = 1; s < last; ++s)); do
      if [ ! -e "$target/round$s" ] && finished_ckpt "$src/round$s/last.safetensors"; then
        echo "prune_comparison: reusing $src/round$s for imp-$1"
        cp -r "$src/round$s" "$target/round$s"
      fi
    done
  done
}

# The folder of IMP round $2 of piece $1, whose last round is $3: round<s>/, the last round in
# the piece's own folder.
imp_round_dir() {
  if [ "$2" -eq "$3" ]; then echo "$OUT/$1"; else echo "$OUT/$1/round$2"; fi
}

snapshot_sha() { sha256sum "$DENSE/epoch$REWIND.safetensors" | cut -d' ' -f1; }

handoff_save() {
  local piece=$1 dst=$HANDOFF/$1 last s r dir
  last=$(imp_rounds "${piece#imp-}")
  for ((s = last; s >= 1; --s)); do
    [ -f "$(imp_round_dir "$piece" "$s" "$last")/masks.safetensors" ] && break
  done
  [ "$s" -ge 1 ] || { echo "prune_comparison: $OUT/$piece has no round masks to hand over" >&2; return 1; }
  [ -f "$DENSE/epoch$REWIND.safetensors" ] || { echo "prune_comparison: $DENSE has no epoch$REWIND.safetensors" >&2; return 1; }
  rm -rf "$dst" && mkdir -p "$dst"
  gzip -9 -n -c "$(imp_round_dir "$piece" "$s" "$last")/masks.safetensors" > "$dst/round$s-masks.safetensors.gz"
  for ((r = 1; r < s; ++r)); do
    dir=$(imp_round_dir "$piece" "$r" "$last")
    [ -f "$dir/train_log.json" ] && cp "$dir/train_log.json" "$dst/round$r-train_log.json"
  done
  python3 - "$dst/handoff.json" "$piece" "$s" "$(snapshot_sha)" "$DENSE" "$REWIND" \
    "${REVISION:-$(git rev-parse HEAD)}" "$("$LETHE" --version 2>&1 | head -1)" <<'PY'
import json, os, sys, time
path, piece, round_, sha, dense, rewind, rev, version = sys.argv[1:]
# -march=native and OpenBLAS pick code by CPU: the dense run repeats bit for bit on the same
# kind of CPU, so the handoff names it.
info = dict(l.split(":", 1) for l in open("/proc/cpuinfo").read().split("\n\n")[0].splitlines() if ":" in l)
cpu = "%s, family %s model %s" % (info.get("model name\t", "?").strip(), info.get("cpu family\t", "?").strip(),
                                  info.get("model\t\t", "?").strip())
res = os.path.join(dense, "results.json")
acc = json.load(open(res))["metrics"].get("test_acc_last") if os.path.exists(res) else None
json.dump({"piece": piece, "next_round": int(round_),
           "dense_snapshot": f"epoch{rewind}.safetensors of the `dense` piece",
           "dense_snapshot_sha256": sha, "dense_test_acc_last": acc,
           "revision": rev, "lethe": version, "cpu": cpu,
           "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
          open(path, "w"), indent=2)
PY
  echo "prune_comparison: handed over $piece at round $s into $dst ($(du -sh "$dst" | cut -f1))"
}

# Restores a handoff into a piece's empty folder: needs the dense run's snapshot, byte for byte.
handoff_restore() {
  local piece=$1 src=$HANDOFF/$1 s want have dir
  [ -f "$src/handoff.json" ] || return 0
  ls "$OUT/$piece"/round*/masks.safetensors "$OUT/$piece/masks.safetensors" >/dev/null 2>&1 && return 0
  read -r s want < <(python3 -c "import json,sys; h=json.load(open(sys.argv[1]))
print(h['next_round'], h['dense_snapshot_sha256'])" "$src/handoff.json")
  have=$(snapshot_sha)
  if [ "$have" != "$want" ]; then
    echo "prune_comparison: $DENSE/epoch$REWIND.safetensors (sha256 $have) is not the snapshot" \
         "the handed-over $piece masks were derived from ($want); rerun 'dense' with the" \
         "revision named in $src/handoff.json, or delete $src to start $piece over" >&2
    return 1
  fi
  dir=$(imp_round_dir "$piece" "$s" "$(imp_rounds "${piece#imp-}")")
  mkdir -p "$dir"
  gunzip -c "$src/round$s-masks.safetensors.gz" > "$dir/masks.safetensors"
  echo "prune_comparison: restored $piece at round $s from $src"
}

run_piece() {
  local piece=$1 method rate
  if done_piece "$piece"; then echo "prune_comparison: $piece is done"; return 0; fi
  echo "prune_comparison: running $piece ($(date -u +%FT%TZ))"
  # shellcheck disable=SC2086  # EXTRA is a list of flags
  case $piece in
    dense)
      local resume=()
      [ -f "$DENSE/last.safetensors" ] && resume=(--resume)
      "$LETHE" train --preset cpu --snapshot-epoch "$REWIND" --out "$DENSE" "${resume[@]}" $EXTRA ;;
    summary) summary ;;
    handoff-save) echo "prune_comparison: usage: handoff-save imp-<rate>" >&2; return 2 ;;
    omp-* | random-* | synflow-* | imp-*)
      method=${piece%-*}
      rate=$(awk "BEGIN { print ${piece#*-} / 100 }")
      local args=(--preset cpu --method "$method" --rate "$rate" --rewind-epoch "$REWIND"
                  --out "$OUT/$piece" --resume)
      if [ "$method" != synflow ]; then
        finished_ckpt "$DENSE/last.safetensors" || { echo "prune_comparison: run 'dense' first" >&2; return 1; }
        args+=(--dense "$DENSE")
      fi
      if [ "$method" = imp ]; then
        handoff_restore "$piece"
        share_imp_rounds "${piece#*-}"
        args+=(--max-stages "$MAX_STAGES")
      fi
      "$LETHE" prune "${args[@]}" $EXTRA ;;
    *) echo "prune_comparison: unknown piece '$piece' (pieces: $PIECES summary next all)" >&2; return 2 ;;
  esac
}

summary() {
  python3 - "$OUT" "$DENSE" <<'PY'
import glob, json, os, sys
out, dense = sys.argv[1], sys.argv[2]
rows, recipe = [], ""
for path in sorted(glob.glob(os.path.join(out, "*", "results.json"))):
    r = json.load(open(path))
    if r.get("command") != "lethe prune":
        continue
    c = r["config"]
    recipe = (f"{c['model']} width {c['width']}, {c['epochs']} epochs {c['lr-schedule']}, "
              f"batch {c['batch-size']}, {c['dataset']}, rewind epoch {c['rewind-epoch']}")
    m = r["metrics"]
    rows.append({"piece": os.path.basename(os.path.dirname(path)), "method": r["method"],
                 "rate": r["rate"], "sparsity": m["sparsity"],
                 "test_acc_last": m["test_acc_last"], "test_acc_best": m["test_acc_best"],
                 "best_val_acc": m["best_val_acc"], "rounds": len(r["rounds"]),
                 "dense_dir": c.get("dense") or None,
                 "dense_test_acc": (r.get("dense") or {}).get("test_acc_last"),
                 "retrain_s_this_call": r["timings_s"]["train"],
                 "layers_min_max_sparsity": [min(l["sparsity"] for l in r["sparsity"]["layers"]),
                                             max(l["sparsity"] for l in r["sparsity"]["layers"])]})
# `lethe prune` tests the dense run only for magnitude methods; a random piece rewound to the
# same run gets that run's accuracy from a sibling.
acc_of = {x["dense_dir"]: x["dense_test_acc"] for x in rows if x["dense_test_acc"] is not None}
for x in rows:
    if x["dense_test_acc"] is None:
        x["dense_test_acc"] = acc_of.get(x["dense_dir"])
order = {"omp": 0, "imp": 1, "synflow": 2, "random": 3}
rows.sort(key=lambda x: (x["rate"], order.get(x["method"], 9)))
dense_res = os.path.join(dense, "results.json")
dense_acc = json.load(open(dense_res))["metrics"] if os.path.exists(dense_res) else None
json.dump({"dense": dense_acc, "rows": rows}, open(os.path.join(out, "comparison.json"), "w"), indent=2)
with open(os.path.join(out, "comparison.md"), "w") as f:
    f.write(f"# Pruning comparison: {recipe}\n\n")
    if dense_acc:
        f.write(f"Dense: test accuracy {dense_acc['test_acc_last']:.2f}% (last).\n\n")
    # Pieces finished in different sessions may rewind to dense reruns on different CPUs
    # (-march=native), so each row names the dense run it started from (SynFlow uses none).
    f.write("| method | rate | sparsity | test acc (last) | test acc (best val) | its dense run | rounds | layer sparsity min..max |\n")
    f.write("|---|---|---|---|---|---|---|---|\n")
    for x in rows:
        lo, hi = x["layers_min_max_sparsity"]
        d = x["dense_test_acc"]
        f.write(f"| {x['method']} | {100*x['rate']:.0f}% | {100*x['sparsity']:.3f}% | "
                f"{x['test_acc_last']:.2f}% | {x['test_acc_best']:.2f}% | "
                f"{'-' if d is None else f'{d:.2f}%'} | {x['rounds']} | "
                f"{100*lo:.1f}%..{100*hi:.1f}% |\n")
print(open(os.path.join(out, "comparison.md")).read())
PY
}

next_piece() {
  local p
  for p in $PIECES; do
    if ! done_piece "$p"; then echo "$p"; return; fi
  done
}

[ $# -eq 0 ] && set -- next
if [ "$1" = handoff-save ]; then
  [ $# -eq 2 ] && [[ $2 == imp-* ]] || { echo "prune_comparison: usage: handoff-save imp-<rate>" >&2; exit 2; }
  handoff_save "$2"
  exit
fi
for piece in "$@"; do
  case $piece in
    next)
      p=$(next_piece)
      if [ -z "$p" ]; then summary; echo "prune_comparison: all pieces done"; else run_piece "$p"; fi ;;
    all)
      for p in $PIECES; do
        while ! done_piece "$p"; do run_piece "$p"; done
      done
      summary ;;
    *) run_piece "$piece" ;;
  esac
done
