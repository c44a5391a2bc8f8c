"""C/C++ source text for binary data: the model array and the golden vectors.

Produced in Python and handed to the templates as finished text: a 300 KB model should not
go through Jinja byte by byte.
"""

from __future__ import annotations

import math

import numpy as np

BYTES_PER_LINE = 12

C_TYPES = {
    "float32": "float", "int8": "int8_t", "uint8": "uint8_t", "int16": "int16_t",
    "uint16": "uint16_t", "int32": "int32_t", "uint32": "uint32_t", "int64": "int64_t",
    "bool": "bool",
}


def byte_array_body(data: bytes, indent: str = "    ") -> str:
    """`0x1c, 0x00, ...` lines of 12 bytes, the layout `xxd -i` users know."""
    hexes = [f"0x{b:02x}" for b in data]
    return "\n".join(indent + ", ".join(hexes[i:i + BYTES_PER_LINE]) + ","
                     for i in range(0, len(hexes), BYTES_PER_LINE))


def parse_byte_array(source: str, name: str) -> bytes:
    """Inverse of the emitted array (used by tests and `tinygen` self-checks)."""
    start = source.index("{", source.index(name + "[")) + 1
    end = source.index("}", start)
    return bytes(int(tok, 16) for tok in source[start:end].replace("\n", " ").split(",") if tok.strip())


def c_type(numpy_dtype: str) -> str:
    return C_TYPES[numpy_dtype]


def value_array_body(values: np.ndarray, per_line: int = 12, indent: str = "    ") -> str:
    """Typed values (ints, or floats exact to float32 round trip) for a C initializer."""
    flat = values.reshape(-1)
    if np.issubdtype(flat.dtype, np.floating):
        items = [_float_literal(float(v)) for v in flat.astype(np.float32)]
    elif flat.dtype == np.bool_:
        items = ["true" if v else "false" for v in flat]
    elif flat.dtype == np.int64:
        items = [f"INT64_C({int(v)})" for v in flat]
    else:
        items = [str(int(v)) for v in flat]
    return "\n".join(indent + ", ".join(items[i:i + per_line]) + ","
                     for i in range(0, len(items), per_line))


def _float_literal(value: float) -> str:
    if math.isnan(value):
        return "NAN"
    if math.isinf(value):
        return "INFINITY" if value > 0 else "-INFINITY"
    text = f"{value:.9g}"
    if "e" not in text and "." not in text:
        text += ".0"
    return text + "f"
