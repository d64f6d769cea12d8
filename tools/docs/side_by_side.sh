#!/usr/bin/env bash
# Renders an input photo beside its saliency map from a running service, into one PNG.
# Usage: tools/docs/side_by_side.sh MODEL IMAGE OUT.png [QUERY]   (needs curl and python3-pil)
# Example: tools/docs/side_by_side.sh resnet18 samples/chelsea.png docs/images/resnet18-guided-backprop.png "method=guided-backprop"
set -euo pipefail
model=$1; image=$2; out=$3; query=${4:-method=guided-backprop}; base=${BASE_URL:-http://localhost:5080}
map=$(mktemp --suffix=.png)
curl -sf -o "$map" -F "image=@$image" "$base/v1/models/$model/explain?$query&format=png"
/usr/bin/python3 - "$image" "$map" "$out" <<'PY'
import sys
from PIL import Image
a = Image.open(sys.argv[1]).convert("RGB"); b = Image.open(sys.argv[2]).convert("RGB")
canvas = Image.new("RGB", (a.width + b.width + 8, max(a.height, b.height)), "white")
canvas.paste(a, (0, 0)); canvas.paste(b, (a.width + 8, 0)); canvas.save(sys.argv[3])
PY
rm -f "$map"
