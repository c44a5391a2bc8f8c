#!/usr/bin/env bash
# Runs `tinygen inspect` for one model on each board of a list, for the GitHub Action in
# action.yml (it also runs on its own). Every input comes from the environment:
#   INPUT_MODEL             model file or SavedModel folder (required)
#   INPUT_BOARDS            `target:board` items separated by spaces or newlines (required)
#   INPUT_BOARDS_FILE       YAML file of your own boards (`--boards`), optional
#   INPUT_QUANTIZE          `--quantize`, optional (Keras models and SavedModels only)
#   INPUT_CALIBRATION_DATA  `--calibration-data`, optional
#   TINYGEN                 the tinygen executable (default: `tinygen` on PATH)
#   TINYGEN_REPORT          where the combined Markdown report goes (default tinygen-report.md)
# GitHub's GITHUB_STEP_SUMMARY and GITHUB_OUTPUT are written when set.
# Exit code: 0 every board fits; 1 some board does not fit or cannot run the model (tinygen's
# exit 1); 2 wrong input to this script; 3 tinygen failed internally on some board.
set -euo pipefail

tinygen=${TINYGEN:-tinygen}
model=${INPUT_MODEL:-}
boards=${INPUT_BOARDS:-}
boards_file=${INPUT_BOARDS_FILE:-}
quantize=${INPUT_QUANTIZE:-}
calibration=${INPUT_CALIBRATION_DATA:-}
report=${TINYGEN_REPORT:-tinygen-report.md}

# A workflow command's message: %, CR and LF escaped; a property (title=) also : and ,.
escape_data() {
    local s=${1//%/%25}
    s=${s//$'\r'/%0D}
    printf '%s' "${s//$'\n'/%0A}"
}
escape_property() {
    local s
    s=$(escape_data "$1")
    s=${s//:/%3A}
    printf '%s' "${s//,/%2C}"
}
wrong_input() {
    echo "::error title=Wrong input to the tinygen action::$(escape_data "$1")"
    exit 2
}

[[ -n $model ]] || wrong_input "input 'model' is empty: give the path of a .tflite, .keras or .h5 file or a SavedModel folder, relative to the workspace."
[[ -e $model ]] || wrong_input "model '$model' does not exist (looked in $(pwd)); the path is relative to the workspace: check it out first (actions/checkout) or fix the path."
[[ -z $boards_file || -f $boards_file ]] || wrong_input "boards-file '$boards_file' does not exist (looked in $(pwd))."
[[ -z $calibration || -e $calibration ]] || wrong_input "calibration-data '$calibration' does not exist (looked in $(pwd))."

read -r -d '' -a items < <(printf '%s\0' "$boards") || true
(( ${#items[@]} > 0 )) || wrong_input "input 'boards' is empty: list target:board items, e.g. 'esp-idf:esp32s3 arduino:nano33ble' (\`tinygen boards\` lists them)."
for item in "${items[@]}"; do
    [[ $item =~ ^[^:]+:[^:]+$ ]] || wrong_input "board '$item' is not of the form target:board, e.g. esp-idf:esp32s3 or arduino:nano33ble (targets: esp-idf, arduino, zephyr; \`tinygen boards\` lists the boards)."
done

options=()
[[ -z $boards_file ]] || options+=(--boards "$boards_file")
[[ -z $quantize ]] || options+=(--quantize "$quantize")
[[ -z $calibration ]] || options+=(--calibration-data "$calibration")

mkdir -p "$(dirname -- "$report")"
report=$(cd "$(dirname -- "$report")" && pwd)/$(basename -- "$report")
work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT

details=$work/details.md
: >"$details"
table="| board | verdict | exit code |"$'\n'"|---|---|---|"
failed=()
worst=0
fits_count=0
for item in "${items[@]}"; do
    target=${item%%:*}
    board=${item#*:}
    echo "::group::tinygen inspect $model --target $target --board $board"
    code=0
    "$tinygen" inspect "$model" --target "$target" --board "$board" --format markdown \
        ${options[@]+"${options[@]}"} >"$work/out.md" 2>"$work/err.txt" || code=$?
    cat "$work/err.txt"
    echo "exit code $code"
    echo "::endgroup::"
    # The reason tinygen gives: its "Error: ..." line, else the last line it printed.
    reason=$(grep -m1 '^Error: ' "$work/err.txt" | sed 's/^Error: //' || true)
    [[ -n $reason ]] || reason=$(grep -v '^[[:space:]]*$' "$work/err.txt" | tail -n1 || true)
    case $code in
        0) verdict="fits"; fits_count=$((fits_count + 1)) ;;
        1) if [[ -s $work/out.md ]]; then verdict="does not fit"; else verdict="not inspected (error)"; fi
           failed+=("$item")
           (( worst >= 1 )) || worst=1
           echo "::error title=$(escape_property "tinygen: $item $verdict")::$(escape_data "$item: ${reason:-tinygen inspect exited 1}")" ;;
        *) verdict="internal error"
           worst=3
           echo "::error title=$(escape_property "tinygen: internal error on $item")::$(escape_data "$item: tinygen inspect exited $code: ${reason:-no message}")" ;;
    esac
    table+=$'\n'"| \`$item\` | $verdict | $code |"
    {
        echo "## \`$item\`: $verdict"
        echo
        case $code in
            0) echo "The model fits $item (\`tinygen inspect\` exited 0)." ;;
            *) echo "**$verdict** (\`tinygen inspect\` exited $code): ${reason:-see below}" ;;
        esac
        echo
        if [[ $code != 0 ]]; then
            echo '```text'
            cat "$work/err.txt"
            echo '```'
            echo
        fi
        if [[ -s $work/out.md ]]; then
            echo "<details><summary>Report for $item</summary>"
            echo
            cat "$work/out.md"
            echo
            echo "</details>"
            echo
        fi
    } >>"$details"
done

{
    echo "# tinygen: \`$model\` on ${#items[@]} board(s)"
    echo
    echo "$fits_count of ${#items[@]} fit."
    echo
    echo "$table"
    echo
    cat "$details"
} >"$report"

if [[ -n ${GITHUB_STEP_SUMMARY:-} ]]; then
    cat "$report" >>"$GITHUB_STEP_SUMMARY"
fi
if [[ -n ${GITHUB_OUTPUT:-} ]]; then
    {
        echo "failed=${failed[*]+"${failed[*]}"}"
        echo "report=$report"
    } >>"$GITHUB_OUTPUT"
fi
echo "Report: $report ($fits_count of ${#items[@]} boards fit)"
exit "$worst"
