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


@pytest.fixture(scope="module")
def core_source(generate) -> str:
    project, _ = generate("mlp", "esp-idf", quantize="none")
    return (project / "main" / "tinygen_model.cpp").read_text()


def compile_fragment(tmp_path, source: str, function: str, prelude: str, main_body: str):
    """Cut `function` out of the generated source, compile it alone with g++ (warnings are
    errors) and return a runner: args -> output lines."""
    if shutil.which("g++") is None:
        pytest.skip("g++ not on PATH")
    code = re.search(rf"^[\w ]+ {function}\(.*?^}}\n", source, re.S | re.M).group(0)
    program = tmp_path / f"{function}.cpp"
    program.write_text("#include <math.h>\n#include <stdint.h>\n#include <stdio.h>\n#include <stdlib.h>\n"
                       "#include <stddef.h>\n" + prelude + code
                       + "int main(int argc, char** argv) {\n" + main_body + "}\n")
    binary = tmp_path / function
    build = subprocess.run(["g++", "-std=gnu++14", "-Wall", "-Wextra", "-Werror", "-O2", str(program),
                            "-o", str(binary)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr

    def run(*args: str) -> list[str]:
        return subprocess.run([str(binary), *args], capture_output=True, text=True, check=True).stdout.splitlines()
    return run


def test_format_float_matches_python(core_source, tmp_path):
    """The firmware prints floats by hand (no printf float support on small C libraries)."""
    run = compile_fragment(tmp_path, core_source, "FormatFloat", "", """
  for (int i = 1; i < argc; ++i) {
    char text[64];
    FormatFloat(strtof(argv[i], nullptr), text, sizeof(text));
    puts(text);
  }
""")
    got = run(*map(repr, VALUES))
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


def test_quantize_matches_the_golden_vectors_and_saturates(core_source, tmp_path):
    """model_set_input()'s quantization must equal the host's (golden.to_tensor_dtype), and
    saturate instead of overflowing for huge or NaN inputs."""
    from tinygen.model.analyze import TensorInfo
    from tinygen.model.quantization import to_tensor_dtype

    stand_in = "struct TfLiteTensor { struct { float scale; int32_t zero_point; } params; };\n"
    run = compile_fragment(tmp_path, core_source, "Quantize", stand_in, """
  TfLiteTensor tensor;
  tensor.params.scale = strtof(argv[1], nullptr);
  tensor.params.zero_point = atoi(argv[2]);
  for (int i = 3; i < argc; ++i) printf("%d\\n", (int)Quantize(strtof(argv[i], nullptr), &tensor, -128, 127));
""")
    finite = [0.0, 0.05, -0.05, 1.0, -1.0, 2.3, 4.99, 5.02, -5.1, 1e12, -1e12, 3e9, 0.019608,
              0.25, -0.25, 0.75, 1.25, -1.75]  # with scale 0.5: exact halves, rounded away from 0
    for scale, zero_point in ((0.0392157, -3), (0.5, 0), (0.5, 7)):
        got = [int(v) for v in run(repr(scale), str(zero_point), *map(repr, finite), "nan", "inf", "-inf")]
        tensor = TensorInfo(index=0, name="x", shape=[len(finite)], dtype="INT8", scale=scale,
                            zero_point=zero_point)
        want = to_tensor_dtype(np.array(finite, np.float32), tensor).tolist()
        assert got[:len(finite)] == want, (scale, zero_point)
        assert got[len(finite):] == [-128, 127, -128]  # NaN -> lowest, +inf/-inf saturate


def test_unquantized_int32_inputs_are_rounded_and_saturated(core_source, tmp_path):
    """An int32 input without quantization (the indices an Embedding looks up) takes the value
    rounded, as the host's quantize() does, and saturates at the int32 range."""
    from tinygen.model.quantization import quantize

    stand_in = "struct TfLiteTensor { struct { float scale; int32_t zero_point; } params; };\n"
    run = compile_fragment(tmp_path, core_source, "Quantize", stand_in, """
  TfLiteTensor tensor;
  tensor.params.scale = 0.0f;
  tensor.params.zero_point = 0;
  for (int i = 1; i < argc; ++i) printf("%ld\\n", (long)Quantize(strtof(argv[i], nullptr), &tensor, -2147483647 - 1, 2147483647));
""")
    finite = [0.0, 1.0, 2.5, -2.5, 41.49, 41.5, 49.0, 1e6, -1e6, 3e9, -3e9, 1e20]
    got = [int(v) for v in run(*map(repr, finite), "nan")]
    assert got[:-1] == quantize(np.array(finite, np.float32), 0.0, 0, np.int32).tolist()
    assert got[-1] == -2 ** 31  # NaN -> lowest


def test_model_crc_matches_zlib(core_source, tmp_path):
    """The self-test's first check, the model's CRC-32, is zlib's: what tinygen wrote in kModelCrc32."""
    import zlib

    run = compile_fragment(tmp_path, core_source, "Crc32", "#include <string.h>\n", """
  for (int i = 1; i < argc; ++i) printf("%lu\\n", (unsigned long)Crc32((const unsigned char*)argv[i], strlen(argv[i])));
""")
    words = ["a", "tinygen", "The quick brown fox jumps over the lazy dog", "0123456789" * 50]
    assert [int(v) for v in run(*words)] == [zlib.crc32(w.encode()) for w in words]


def test_the_header_holds_the_embedded_models_crc(generate):
    import zlib

    from tinygen.output.model_source import parse_byte_array

    project, _ = generate("mlp", "arduino")
    model = parse_byte_array((project / "model_data.cpp").read_text(), "g_model_data")
    header = (project / "tinygen_model.h").read_text()
    assert f"kModelCrc32 = 0x{zlib.crc32(model):08x}u;" in header
