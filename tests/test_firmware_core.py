"""Parts of the generated firmware core that need no TFLite-Micro, compiled and run on the
host with g++ (the whole core is compiled against each pinned TFLite-Micro by the
toolchain tests and the repository's compile workflow)."""

from __future__ import annotations

import math
import re
import shutil
import subprocess

import numpy as np
import pytest

VALUES = [0.0, 0.5, -0.25, 1.0, 123.456789, -98765.4321, 0.0000004, 0.9999996, 999999999.0,
          1e9, -3.5e12, 3.4e38, float("inf"), float("-inf"), float("nan")]


def expected_text(value: float) -> str:
    value = float(np.float32(value))  # the float32 the firmware holds
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    sign = "-" if value < 0 else ""
    magnitude, exponent = abs(value), 0
    if magnitude >= 1e9:
        exponent = math.floor(math.log10(magnitude))
        magnitude /= 10.0 ** exponent
    return f"{sign}{magnitude:.6f}" + (f"e+{exponent}" if exponent else "")


def test_format_float_matches_printf_without_printf_float(generate, tmp_path):
    if shutil.which("g++") is None:
        pytest.skip("g++ not on PATH")
    project, _ = generate("mlp", "esp-idf", quantize="none")
    source = (project / "main" / "tinygen_model.cpp").read_text()
    function = re.search(r"^void FormatFloat\(.*?^}\n", source, re.S | re.M).group(0)
    program = tmp_path / "format_float.cpp"
    program.write_text(
        "#include <math.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include <stddef.h>\n"
        + function
        + "int main(int argc, char** argv) {\n"
          "  for (int i = 1; i < argc; ++i) {\n"
          "    char text[64];\n"
          "    FormatFloat(strtof(argv[i], nullptr), text, sizeof(text));\n"
          "    puts(text);\n"
          "  }\n"
          "}\n")
    binary = tmp_path / "format_float"
    build = subprocess.run(["g++", "-std=gnu++14", "-Wall", "-Wextra", "-Werror", "-O2", str(program),
                            "-o", str(binary)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(binary), *map(repr, VALUES)], capture_output=True, text=True, check=True)
    got = run.stdout.splitlines()
    assert len(got) == len(VALUES)
    for value, text in zip(VALUES, got):
        want = expected_text(value)
        if want in ("nan", "inf", "-inf"):
            assert text == want, value
        elif "e+" in want:  # the mantissa's last decimal may round differently through pow()
            mantissa, exponent = text.split("e+")
            assert exponent == want.split("e+")[1], (value, text)
            assert abs(float(mantissa) - float(want.split("e+")[0])) <= 2e-6, (value, text)
        else:
            assert abs(float(text) - float(want)) <= 1.5e-6, (value, text, want)
