#!/usr/bin/env bash
# Renders every attribution method of one image side by side, from a running service.
# Usage: tools/docs/method_grid.sh MODEL IMAGE OUT.png [CELL_PX=224]   (needs curl and python3-pil)
set -euo pipefail
model=$1; image=$2; out=$3; cell=${4:-224}; base=${BASE_URL:-http://localhost:5080}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
methods=(guided-backprop gradient deconvnet input-x-gradient integrated-gradients smoothgrad grad-cam guided-grad-cam)
for m in "${methods[@]}"; do
  extra=""; [[ $m == smoothgrad ]] && extra="&seed=1&base=guided-backprop"
  curl -sf -o "$work/$m.png" -F "image=@$image" "$base/v1/models/$model/explain?method=$m&format=png$extra"
done
/usr/bin/python3 - "$image" "$work" "$out" "$cell" "$model" "${methods[@]}" <<'PY'
import sys
from PIL import Image, ImageDraw
image, work, out, cell, model, methods = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6:]
tiles = [("input", Image.open(image).convert("RGB"))] + [(m, Image.open(f"{work}/{m}.png").convert("RGB")) for m in methods]
scale = cell / max(tiles[0][1].size)
w, h = round(tiles[0][1].width * scale), round(tiles[0][1].height * scale)
cols, label = 3, 18
rows = (len(tiles) + cols - 1) // cols
grid = Image.new("RGB", (cols * (w + 6), rows * (h + label + 6)), "white")
draw = ImageDraw.Draw(grid)
for i, (name, tile) in enumerate(tiles):
    x, y = (i % cols) * (w + 6), (i // cols) * (h + label + 6)
    draw.text((x + 2, y + 2), name if name != "input" else f"input ({model})", fill="black")
    grid.paste(tile.resize((w, h), Image.NEAREST if scale > 1 else Image.BILINEAR), (x, y + label))
grid.save(out)
PY
echo "wrote $out"
