"""The compiled artifact: a fitted pipeline as a JSON program plus raw float64/integer arrays, never a pickle.

Layout of `CompiledProgram.to_bytes` (little-endian):

    MAGIC (8 bytes) | header length n (uint64) | header (n bytes of UTF-8 JSON) | array bytes

The header holds FORMAT, the steps (`sklambda.compiled.evaluate` reads them), the classes and, under "arrays", every
array's dtype, shape, offset and length in the array section, and the SHA-256 of that section. Only the numeric dtypes
of ARRAY_DTYPES are written or read: categories and classes live in the JSON, so nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FORMAT = "sklambda.compiled/v1"
MAGIC = b"SKLCMP\x00\x01"
# What an array of the program may be: numbers and booleans only (an object array would need pickle).
ARRAY_DTYPES = ("<f8", "<f4", "<i8", "<i4", "|b1")
_ALIGN = 8


class CompiledFormatError(ValueError):
    """Bytes that are not a compiled program this version reads: damaged, truncated, or of an unknown format."""


@dataclass(frozen=True)
class CompiledProgram:
    """A compiled model: `header` (JSON-serializable: format, steps, classes) and the `arrays` its steps name.

    Build one with `sklambda.compiled.compile.compile_model`; run it with `sklambda.compiled.evaluate.CompiledModel`.
    """

    header: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        """The program as bytes (layout in the module docstring). Raises CompiledFormatError for an array of a dtype
        outside ARRAY_DTYPES."""
        chunks: list[bytes] = []
        table: dict[str, dict[str, Any]] = {}
        offset = 0
        for name, array in self.arrays.items():
            array = np.asarray(array)
            dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
            if dtype.str not in ARRAY_DTYPES:
                raise CompiledFormatError(f"array {name!r} has dtype {array.dtype}, not one of {ARRAY_DTYPES}")
            data = np.ascontiguousarray(array, dtype=dtype).tobytes()
            pad = -len(data) % _ALIGN
            table[name] = {"dtype": dtype.str, "shape": list(array.shape), "offset": offset, "nbytes": len(data)}
            chunks.append(data + b"\x00" * pad)
            offset += len(data) + pad
        body = b"".join(chunks)
        header = {**self.header, "format": FORMAT, "arrays": table, "sha256": hashlib.sha256(body).hexdigest()}
        text = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
        text += b" " * (-len(text) % _ALIGN)  # the array section starts 8-byte aligned
        return MAGIC + struct.pack("<Q", len(text)) + text + body

    @classmethod
    def from_bytes(cls, blob: bytes) -> CompiledProgram:
        """The program `to_bytes` wrote. Arrays are read-only views of `blob` (no copy).

        Raises CompiledFormatError when the bytes are not such a program (wrong magic, truncated, a header that is not
        JSON, an unknown format version, an array outside the section or of a refused dtype, a checksum mismatch).
        """
        blob = bytes(blob)
        if len(blob) < len(MAGIC) + 8 or blob[: len(MAGIC)] != MAGIC:
            raise CompiledFormatError("not a sklambda compiled program (bad magic bytes)")
        (size,) = struct.unpack_from("<Q", blob, len(MAGIC))
        start = len(MAGIC) + 8
        if size > len(blob) - start:
            raise CompiledFormatError("compiled program truncated: the header runs past the end")
        try:
            header = json.loads(blob[start : start + size].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CompiledFormatError(f"compiled program header is not JSON: {e}") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            found = header.get("format") if isinstance(header, dict) else None
            raise CompiledFormatError(f"unknown compiled program format {found!r} (this version reads {FORMAT!r})")
        body = memoryview(blob)[start + size :]
        if hashlib.sha256(body).hexdigest() != header.get("sha256"):
            raise CompiledFormatError("compiled program damaged: its arrays do not match their checksum")
        arrays = {}
        try:
            for name, spec in header["arrays"].items():
                if spec["dtype"] not in ARRAY_DTYPES:
                    raise CompiledFormatError(f"array {name!r} has refused dtype {spec['dtype']!r}")
                dtype = np.dtype(spec["dtype"])
                shape = tuple(int(n) for n in spec["shape"])
                count = int(np.prod(shape, dtype=np.int64)) if shape else 1
                offset, nbytes = int(spec["offset"]), int(spec["nbytes"])
                if offset < 0 or nbytes != count * dtype.itemsize or offset + nbytes > len(body):
                    raise CompiledFormatError(f"array {name!r} lies outside the compiled program")
                arrays[name] = np.frombuffer(body, dtype=dtype, count=count, offset=offset).reshape(shape)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            if isinstance(e, CompiledFormatError):
                raise
            raise CompiledFormatError(f"compiled program header malformed: {e!r}") from None
        rest = {k: v for k, v in header.items() if k not in ("arrays", "sha256")}
        return cls(header=rest, arrays=arrays)
