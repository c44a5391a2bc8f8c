"""Output names: whatever the user typed -> a name safe as a folder, a CMake project name
and an Arduino sketch name (letters, digits, `_`, `-`; starts with a letter; <= 63 chars).

A project's name is never used as a C++ identifier (its code lives in namespace `tinygen`).
A library's is (`library_name`): its namespace, file names, include guards and Zephyr
Kconfig symbol. Names reach templates only as data, never as template source.
"""

from __future__ import annotations

import re
import unicodedata

MAX_NAME = 63  # Arduino's sketch-name limit, the strictest of the three ecosystems


def project_name(raw: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode()
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", ascii_text).strip("_-")
    name = re.sub(r"_+", "_", name)
    if not name or not name[0].isalpha():
        name = "model_" + name if name else "model"
    return name[:MAX_NAME].rstrip("_-")


# Names a library may not take: C++ keywords and the namespaces its code already uses.
_RESERVED = {
    "alignas", "alignof", "and", "asm", "auto", "bool", "break", "case", "catch", "char", "class", "const",
    "constexpr", "continue", "decltype", "default", "delete", "do", "double", "else", "enum", "explicit",
    "export", "extern", "false", "float", "for", "friend", "goto", "if", "inline", "int", "long", "mutable",
    "namespace", "new", "noexcept", "not", "nullptr", "operator", "or", "private", "protected", "public",
    "register", "return", "short", "signed", "sizeof", "static", "struct", "switch", "template", "this",
    "throw", "true", "try", "typedef", "typeid", "typename", "union", "unsigned", "using", "virtual", "void",
    "volatile", "while", "std", "tflite", "tinygen"}


def library_name(raw: str) -> str:
    """A library's name: a project name that is also a C++ identifier (`-` becomes `_`)."""
    name = project_name(raw).replace("-", "_")
    return f"{name}_model" if name.lower() in _RESERVED else name
