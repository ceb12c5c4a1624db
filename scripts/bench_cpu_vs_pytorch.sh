#!/usr/bin/env bash
# lethe vs PyTorch training-step throughput on this CPU, in one run, same protocol
# (../shared/bench/pytorch_baseline.py: random data, SGD momentum 0.9 / wd 5e-4, 5 warm-up
# steps, then timed steps). Prints both JSON lines and the ratio per configuration.
#   scripts/bench_cpu_vs_pytorch.sh            # ResNet-18 width 1.0 batch 64, width 0.25 batch 128
# Needs Debian's python3-torch for the PyTorch side (installed here if missing) and a built
# ./build/lethe. Run on an otherwise idle machine: the two share the cores.
set -euo pipefail
cd "$(dirname "$0")/.."
BASELINE=${BASELINE:-../shared/bench/pytorch_baseline.py}
THREADS=${THREADS:-$(nproc)}
[ -x build/lethe ] || { echo "build lethe first (scripts/test.sh or cmake --build build)" >&2; exit 1; }
[ -f "$BASELINE" ] || { echo "missing $BASELINE (the shared PyTorch baseline)" >&2; exit 1; }
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
  echo "installing python3-torch for the PyTorch side" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch >/dev/null
fi

run() {  # model width batch steps
  local l p
  l=$(OMP_NUM_THREADS=$THREADS build/lethe bench --model "$1" --width "$2" --batch "$3" --steps "$4")
  p=$(/usr/bin/python3 "$BASELINE" --device cpu --threads "$THREADS" --model "$1" --width "$2" \
        --batch "$3" --steps "$4" | tail -n 1)
  echo "$l"
  echo "$p"
  /usr/bin/python3 - "$l" "$p" <<'PY'
import json, sys
l, p = (json.loads(s) for s in sys.argv[1:3])
print(f"{l['model']} width {l['width']} batch {l['batch']}: lethe {l['images_per_s']:.1f} img/s, "
      f"pytorch {p['images_per_s']:.1f} img/s, ratio {l['images_per_s'] / p['images_per_s']:.2f}x")
PY
}

run resnet18 1.0 64 10
run resnet18 0.25 128 20
