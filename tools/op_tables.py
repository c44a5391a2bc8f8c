"""Derive an operator table (generator/library/data/ops/<name>.json) from a pinned TFLite-Micro's
`micro_mutable_op_resolver.h`, so that no table is typed by hand.

Every `AddXxx()` method of `MicroMutableOpResolver` ends in either
`AddBuiltin(BuiltinOperator_<OP>, ...)` (a builtin operator) or `AddCustom("<code>", ...)` (a
custom operator, registered under that code string). The table maps each builtin operator
name and each custom code to its method, with the header line it was read from.

Usage (the header is read from a bare git snapshot of the pinned repository):

    python tools/op_tables.py --git-dir SNAPSHOT.git --ref COMMIT \\
        --path tensorflow/lite/micro/micro_mutable_op_resolver.h \\
        --description "esp-tflite-micro 1.4.0 (TFLite-Micro 0965635)" \\
        --ref-note "99f49e1 (idf_component.yml version 1.4.0)" --repo espressif/esp-tflite-micro \\
        --out generator/library/data/ops/esp-tflite-micro-1.4.0.json \\
        [--custom-compiled AddRfft,AddWindow --custom-note "..."]

`--custom-compiled` keeps only the listed custom methods (for a build that compiles only some
custom kernels: Zephyr compiles the signal library's Rfft and Window only). Methods whose
code is not a string literal in the header (AddEthosU: `GetString_ETHOSU()`, an NPU driver no
catalog board has) are left out.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from pathlib import Path

METHOD = re.compile(r"TfLiteStatus\s+(Add\w+)\s*\(")
BUILTIN = re.compile(r"AddBuiltin\(\s*BuiltinOperator_(\w+)")
CUSTOM = re.compile(r'AddCustom\(\s*"([^"]+)"')


def parse(header: str) -> tuple[dict, dict]:
    """(builtin op -> {method, line}, custom code -> {method, line}) from the header text."""
    lines = header.splitlines()
    starts = [(i, m.group(1)) for i, line in enumerate(lines) for m in [METHOD.search(line)] if m]
    builtin, custom = {}, {}
    for n, (start, method) in enumerate(starts):
        if method in ("AddBuiltin", "AddCustom"):
            continue
        end = starts[n + 1][0] if n + 1 < len(starts) else len(lines)
        for offset, line in enumerate(lines[start:end]):
            text = " ".join(lines[start + offset:start + offset + 3])  # a call may wrap
            call = (BUILTIN, builtin) if "AddBuiltin(" in line else (CUSTOM, custom) if "AddCustom(" in line else None
            if call and (found := call[0].search(text)):
                call[1].setdefault(found.group(1), {"method": method, "line": start + offset + 1})
                break
    return builtin, custom


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--git-dir", required=True)
    parser.add_argument("--ref", required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--repo", required=True)
    parser.add_argument("--ref-note", required=True)
    parser.add_argument("--description", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--custom-compiled", default=None)
    parser.add_argument("--custom-note", default=None)
    args = parser.parse_args()
    header = subprocess.run(["git", f"--git-dir={args.git_dir}", "show", f"{args.ref}:{args.path}"],
                            check=True, capture_output=True, text=True).stdout
    builtin, custom = parse(header)
    if args.custom_compiled is not None:
        keep = set(args.custom_compiled.split(","))
        custom = {code: entry for code, entry in custom.items() if entry["method"] in keep}
    table = {
        "description": args.description,
        "source": {"repo": args.repo, "ref": args.ref_note, "path": args.path},
        "derived_by": "tools/op_tables.py",
        "builtin": {op: entry["method"] for op, entry in sorted(builtin.items())},
        "custom": {code: entry["method"] for code, entry in sorted(custom.items())},
        "lines": {name: entry["line"] for name, entry in sorted({**builtin, **custom}.items())},
    }
    if args.custom_note:
        table["custom_note"] = args.custom_note
    Path(args.out).write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    print(f"{args.out}: {len(table['builtin'])} builtin, {len(table['custom'])} custom operators")


if __name__ == "__main__":
    main()
