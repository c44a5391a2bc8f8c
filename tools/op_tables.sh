#!/usr/bin/env bash
# Regenerates generator/library/data/ops/*.json from each pinned library's micro_mutable_op_resolver.h.
# MIRRORS: a folder of bare git snapshots named OWNER+REPO/repo (default: ../.mirror).
set -euo pipefail
cd "$(dirname "$0")/.."
M=${MIRRORS:-../.mirror}
H=tensorflow/lite/micro/micro_mutable_op_resolver.h
run() { python3 tools/op_tables.py "$@"; }

run --git-dir "$M/espressif+esp-tflite-micro/repo" --ref 99f49e1 --path "$H" \
    --repo espressif/esp-tflite-micro --ref-note "99f49e1 (idf_component.yml version 1.4.0)" \
    --description "esp-tflite-micro 1.4.0 (TFLite-Micro 0965635)" \
    --custom-note "esp-tflite-micro's CMakeLists.txt compiles every kernel these methods register, the signal library included (signal/micro/kernels/*.cc)" \
    --out generator/library/data/ops/esp-tflite-micro-1.4.0.json

# The Arduino esp32 core 3.3.3 bundles esp-tflite-micro >=1.2.0 (esp32-arduino-lib-builder
# main/idf_component.yml): the v1.2.0 operator set, which every later version keeps.
run --git-dir "$M/espressif+esp-tflite-micro/repo" --ref 209f3cb --path "$H" \
    --repo espressif/esp-tflite-micro --ref-note "209f3cb (tag v1.2.0)" \
    --description "arduino-esp32 core 3.3.3 library 'TFLite Micro' (bundled esp-tflite-micro >=1.2.0; the v1.2.0 operator set, which every later version keeps)" \
    --out generator/library/data/ops/arduino-esp32-core-3.json

run --git-dir "$M/spaziochirale+Chirale_TensorFlowLite/repo" --ref v2.0.0 --path "src/$H" \
    --repo spaziochirale/Chirale_TensorFlowLite --ref-note "46da2f9 (library.properties version 2.0.0)" \
    --description "Chirale_TensorFLowLite 2.0.0 (TFLite-Micro of 2023-01)" \
    --out generator/library/data/ops/chirale-tensorflowlite-2.0.0.json

# Zephyr's modules/tflite-micro/CMakeLists.txt compiles every TFLite-Micro kernel but, of the
# signal library, only rfft.cc and window.cc: the other signal methods would not link.
run --git-dir "$M/zephyrproject-rtos+tflite-micro/repo" --ref fcc760af130f3a595b5802cdebcc77461e54f382 --path "$H" \
    --repo zephyrproject-rtos/tflite-micro \
    --ref-note "fcc760af130f3a595b5802cdebcc77461e54f382 (zephyr submanifests/optional.yaml, v4.4.0 cycle)" \
    --description "Zephyr v4.4.0's tflite-micro module (fork branch zephyr-v4.4.0, fcc760a)" \
    --custom-compiled AddCircularBuffer,AddDecode,AddDetectionPostprocess,AddRfft,AddWindow \
    --custom-note "zephyr modules/tflite-micro/CMakeLists.txt compiles, of signal/micro/kernels, only rfft.cc and window.cc" \
    --out generator/library/data/ops/zephyr-v4.4.0.json
