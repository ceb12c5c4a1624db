#!/usr/bin/env bash
# IU's step size alpha (theta += alpha * k, SPEC section 6) swept on a finished pipeline run.
# SPEC's alpha = 1 is the paper's setting for a 182-epoch width-1 model whose training loss is
# near 0; on the CPU preset's 12-epoch width-0.25 model the gradients in k are much larger and
# alpha = 1 wipes out the retained classes too (docs/results.md). The reference tunes alpha
# per setting; this script measures the curve that such a choice is read from.
#
# Usage: scripts/iu_alpha_sweep.sh [alpha ...]          (default: ALPHAS)
#        scripts/iu_alpha_sweep.sh summary              (only rebuild the table)
# For each alpha it runs `lethe pipeline --methods retrain,iu --iu.alpha A --original false`
# in OUT/a<alpha>, whose stages/ is a link to BASE/stages: the dense run, the OMP model and
# Retrain come from BASE's cache, so only the two IU stages (dense, 95% sparse) run, about
# 5 minutes per alpha on 2 cores at the CPU preset. Finished alphas are skipped (their
# stages are cached too), so the script resumes where it stopped.
# Output: OUT/sweep.json and OUT/sweep.md: UA, MIA-Efficacy, RA, TA, RTE and the average gap
# to Retrain per alpha and model, BASE's original and Retrain rows for reference, and the
# alpha with the smallest average gap per model.
#
# Environment: BASE (runs/pipeline-cpu), OUT (runs/iu-sweep), PRESET (cpu), FORGET (class:0),
# ALPHAS ("0.01 0.03 0.1 0.3 1"), LETHE (build/lethe), EXTRA (flags for every pipeline call).
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=${BASE:-runs/pipeline-cpu}
OUT=${OUT:-runs/iu-sweep}
PRESET=${PRESET:-cpu}
FORGET=${FORGET:-class:0}
ALPHAS=${ALPHAS:-0.01 0.03 0.1 0.3 1}
LETHE=${LETHE:-build/lethe}
EXTRA=${EXTRA:-}

summary() {
  python3 - "$OUT" "$BASE" "$FORGET" <<'PY'
import glob, json, os, sys
out, base, forget = sys.argv[1], sys.argv[2], sys.argv[3]
keys = ["UA", "MIA_efficacy", "RA", "TA", "RTE_min", "gap_average"]
def row(t):
    return {k: t[k + "_mean"] for k in keys}
ref = []
base_res = os.path.join(base, "results.json")
if os.path.exists(base_res):
    for t in json.load(open(base_res))["table"]:
        if t["scenario"] == forget and t["method"] in ("original", "retrain"):
            ref.append({"model": t["model"], "method": t["method"], **row(t)})
rows = []
for path in glob.glob(os.path.join(out, "a*", "results.json")):
    r = json.load(open(path))
    alpha = float(os.path.basename(os.path.dirname(path))[1:])
    for t in r["table"]:
        if t["scenario"] == forget and t["method"] == "iu":
            rows.append({"alpha": alpha, "model": t["model"], **row(t)})
rows.sort(key=lambda x: (x["model"], x["alpha"]))
best = {}
for x in rows:
    if x["model"] not in best or x["gap_average"] < best[x["model"]]["gap_average"]:
        best[x["model"]] = x
json.dump({"base": base, "forget": forget, "reference": ref, "rows": rows,
           "best_alpha": {m: b["alpha"] for m, b in best.items()}},
          open(os.path.join(out, "sweep.json"), "w"), indent=2)
with open(os.path.join(out, "sweep.md"), "w") as f:
    f.write(f"# IU alpha sweep: {forget}, models of {base}\n\n")
    f.write("UA / MIA-Efficacy / RA / TA in %, RTE in minutes, avg gap = mean |IU - Retrain| "
            "over the four metrics on the same model.\n\n")
    f.write("| model | method | alpha | UA | MIA-Efficacy | RA | TA | RTE | avg gap |\n")
    f.write("|---|---|---|---|---|---|---|---|---|\n")
    for x in sorted(ref, key=lambda x: (x["model"], x["method"])) + rows:
        a = f"{x['alpha']:g}" if "alpha" in x else ""
        f.write(f"| {x['model']} | {x.get('method', 'iu')} | {a} | {x['UA']:.2f} | "
                f"{x['MIA_efficacy']:.2f} | {x['RA']:.2f} | {x['TA']:.2f} | "
                f"{x['RTE_min']:.2f} | {x['gap_average']:.2f} |\n")
    f.write("\n")
    for m, b in sorted(best.items()):
        f.write(f"Smallest average gap on the {m} model: alpha = {b['alpha']:g} "
                f"({b['gap_average']:.2f}).\n")
print(open(os.path.join(out, "sweep.md")).read())
PY
}

# shellcheck disable=SC2086  # ALPHAS is a list
[ $# -eq 0 ] && set -- $ALPHAS
if [ "$1" = summary ]; then summary; exit 0; fi
[ -x "$LETHE" ] || { echo "iu_alpha_sweep: $LETHE not found; build it first" >&2; exit 2; }
[ -d "$BASE/stages" ] || { echo "iu_alpha_sweep: $BASE/stages not found; run 'lethe pipeline --preset $PRESET --out $BASE' first" >&2; exit 2; }
stages=$(realpath "$BASE/stages")
for alpha in "$@"; do
  dir=$OUT/a$alpha
  if [ -f "$dir/results.json" ]; then echo "iu_alpha_sweep: alpha $alpha is done"; continue; fi
  mkdir -p "$dir"
  ln -sfn "$stages" "$dir/stages"
  echo "iu_alpha_sweep: alpha $alpha ($(date -u +%FT%TZ))"
  # shellcheck disable=SC2086  # EXTRA is a list of flags
  "$LETHE" pipeline --preset "$PRESET" --forget "$FORGET" --methods retrain,iu \
    --iu.alpha "$alpha" --original false --out "$dir" $EXTRA
done
summary
