#!/usr/bin/env bash
# two_libraries_qemu.sh MODEL_A NAME_A MODEL_B NAME_B [own|shared]
#
# Two models as two Arduino libraries (`tinygen new --as library`) in ONE firmware, run on the
# emulated Cortex-M4F with the pinned Chirale_TensorFLowLite 2.0.0, the way
# ../shared/tools/cortex-m-qemu-selftest.sh runs a generated project (this script reuses that
# recipe's cache: the library archive, the stand-in Arduino API, startup code and linker
# script; it runs the recipe once on MODEL_A to build them).
#
# The sketch sets both models up and runs both self-tests; with `shared` (--arena shared) the
# firmware defines one arena sized for the larger model, runs A, then B, then A again (each
# model_setup() takes the arena over). Also lists the global symbols each library's objects
# define outside its namespace: there must be none beyond the shared arena's.
#
# Environment: TOOLS (default ../shared/tools beside the checkout), TINYGEN (default tinygen on
# PATH), CORTEXM_QEMU_CACHE (default $HOME/.cache/cortexm-qemu), WORK (default a temporary folder),
# MIRRORS (the folder of snapshots; default the recipe's own: a .mirror two or three folders above
# TOOLS; without one, the library already extracted in the recipe's cache is used).
# Exit status: 0 both PASS, 1 a self-test failed or a symbol clashes, 2 harness error.
set -euo pipefail
[[ $# -ge 4 ]] || { echo "usage: $0 MODEL_A NAME_A MODEL_B NAME_B [own|shared]" >&2; exit 2; }
MODEL_A=$(realpath "$1"); NAME_A=$2; MODEL_B=$(realpath "$3"); NAME_B=$4; ARENA=${5:-own}
here=$(cd "$(dirname "$0")" && pwd)
TOOLS=${TOOLS:-$here/../../shared/tools}
CACHE=${CORTEXM_QEMU_CACHE:-$HOME/.cache/cortexm-qemu}
# The recipe stops silently when it finds no .mirror folder; name one (or the cache, whose
# extracted library it then uses) so that a checkout elsewhere still runs.
if [[ -z ${MIRRORS:-} ]]; then
  for d in "$TOOLS/../../.mirror" "$TOOLS/../../../.mirror" "$CACHE"; do
    if [[ -d $d ]]; then MIRRORS=$(cd "$d" && pwd); break; fi
  done
fi
export MIRRORS=${MIRRORS:-$CACHE}
TINYGEN=${TINYGEN:-$(command -v tinygen || true)}
[[ -x $TINYGEN ]] || { echo "no tinygen (set TINYGEN)" >&2; exit 2; }
WORK=${WORK:-$(mktemp -d)}
mkdir -p "$WORK"

# The recipe's cache: library archive, harness objects, linker script.
NO_BISECT=1 TINYGEN=$TINYGEN CORTEXM_QEMU_CACHE=$CACHE "$TOOLS/cortex-m-qemu-selftest.sh" "$MODEL_A" \
  >"$WORK/recipe.log" 2>&1 || { echo "the recipe failed on $MODEL_A (MIRRORS=$MIRRORS):"; tail -5 "$WORK/recipe.log"; exit 2; }
LIBA=$(ls -t "$CACHE"/obj/chirale-*/libchirale.a | head -1)
HOBJ=$(dirname "$(ls -t "$CACHE"/obj/harness-*/startup.o | head -1)")
LIBSRC=$(ls -d "$CACHE"/lib/Chirale_TensorFLowLite-* | head -1)
HARNESS=$CACHE/harness

CPU_FLAGS=(-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16)
COMMON=("${CPU_FLAGS[@]}" -O2 -ffunction-sections -fdata-sections -funsigned-char
        -DARDUINO=10607 -DARDUINO_ARDUINO_NANO33BLE -DARM_MATH_CM4 -D__FPU_PRESENT=1)
CXXFLAGS=(-std=gnu++14 -fno-rtti -fno-exceptions)
INCS=(-I"$HARNESS/include" -I"$LIBSRC/src")

ARENA_FLAG=()
[[ $ARENA == shared ]] && ARENA_FLAG=(--arena shared)
rm -rf "$WORK/libraries"; mkdir -p "$WORK/libraries"
for pair in "$MODEL_A:$NAME_A" "$MODEL_B:$NAME_B"; do
  (cd "$WORK/libraries" && "$TINYGEN" new --target arduino --board nano33ble --as library "${ARENA_FLAG[@]}" \
     --name "${pair##*:}" "${pair%:*}" >"$WORK/new-${pair##*:}.log" 2>&1) \
    || { echo "tinygen new --as library failed for ${pair%:*}:"; tail -5 "$WORK/new-${pair##*:}.log"; exit 2; }
done

SKETCH=$WORK/sketch.cpp
{
  echo "#include <Arduino.h>"
  echo "#include <$NAME_A.h>"
  echo "#include <$NAME_B.h>"
  if [[ $ARENA == shared ]]; then
    echo "TINYGEN_SHARED_ARENA($NAME_A::kArenaBytes > $NAME_B::kArenaBytes ? $NAME_A::kArenaBytes : $NAME_B::kArenaBytes);"
  fi
  echo "void setup() {"
  echo "  Serial.begin(115200);"
  echo "  bool a = $NAME_A::model_setup() && $NAME_A::model_self_test();"
  echo "  bool b = $NAME_B::model_setup() && $NAME_B::model_self_test();"
  if [[ $ARENA == shared ]]; then
    echo "  bool again = $NAME_A::model_setup() && $NAME_A::model_self_test();"
    echo "  Serial.println(a && b && again ? \"two-libraries: both PASS\" : \"two-libraries: FAIL\");"
  else
    echo "  Serial.println(a && b ? \"two-libraries: both PASS\" : \"two-libraries: FAIL\");"
  fi
  echo "}"
  echo "void loop() {}"
} >"$SKETCH"

OBJS=()
for name in "$NAME_A" "$NAME_B"; do
  for src in "$WORK/libraries/$name"/src/*.cpp; do
    obj=$WORK/obj/$name/$(basename "$src" .cpp).o
    mkdir -p "$(dirname "$obj")"
    arm-none-eabi-g++ "${COMMON[@]}" "${CXXFLAGS[@]}" -I"$WORK/libraries/$name/src" "${INCS[@]}" -c "$src" -o "$obj"
    OBJS+=("$obj")
  done
done
arm-none-eabi-g++ "${COMMON[@]}" "${CXXFLAGS[@]}" -I"$WORK/libraries/$NAME_A/src" -I"$WORK/libraries/$NAME_B/src" \
  "${INCS[@]}" -c "$SKETCH" -o "$WORK/obj/sketch.o"

# Strong global symbols each library defines outside its own namespace (C++ names demangled;
# weak ones, such as TFLite-Micro's template instances, merge at link time and cannot clash).
CLASH=0
for name in "$NAME_A" "$NAME_B"; do
  outside=$(arm-none-eabi-nm -C --defined-only --extern-only "$WORK/obj/$name"/*.o \
    | awk 'NF>=3 && $2 ~ /^[TDBRGS]$/ {$1=""; $2=""; sub(/^  /,""); print}' \
    | grep -v -e "^$name::" -e "^tinygen_shared_arena" | sort -u || true)
  if [[ -n $outside ]]; then echo "two-libraries: $name defines outside namespace $name:"; echo "$outside"; CLASH=1; fi
done

arm-none-eabi-g++ "${CPU_FLAGS[@]}" -O2 --specs=rdimon.specs -nostartfiles -T "$HARNESS/mps2_an386.ld" \
  -Wl,--gc-sections "$HOBJ/startup.o" "$HOBJ/harness_main.o" "$HOBJ/arduino_shim.o" "${OBJS[@]}" \
  "$WORK/obj/sketch.o" "$LIBA" -lm -o "$WORK/app.elf"
timeout 300 qemu-system-arm -M mps2-an386 -nographic -monitor none -serial null -semihosting \
  -icount shift=4 -kernel "$WORK/app.elf" </dev/null 2>&1 | tr -d '\r' | tee "$WORK/run.log" \
  | grep -E "self-test|two-libraries|model ready|FAULT" || true
grep -q "^two-libraries: both PASS" "$WORK/run.log" && [[ $CLASH == 0 ]] && exit 0
exit 1
