#!/usr/bin/env bash
# Render the bundled example model for one target/board. The single render command shared
# by `make demo`, the repository's compile workflow and tests/test_demo.py.
#   usage: examples/render_demo.sh TARGET BOARD OUTPUT_DIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
exec tinygen new --target "$1" --board "$2" --output "$3" --force \
    --calibration-data "$here/shapes_calibration.npy" "$here/shapes_cnn.keras"
