"""Measuring a bundle as Lambda counts it: unzipped bytes per tree and per distribution, zipped bytes, the limits."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from pathlib import Path

from .install import Dist

# Lambda refuses a function whose code plus layers unzip to more than this ("must be smaller than 262144000
# bytes"): 250 MiB. Our own budget leaves room for the models' growth and a second layer.
LAMBDA_UNZIPPED_LIMIT = 262_144_000
TARGET_UNZIPPED = 200 * 1024 * 1024
# A zip larger than this cannot be uploaded to Lambda directly, only through S3 (as `sam deploy` does).
LAMBDA_DIRECT_UPLOAD_ZIP = 50 * 1024 * 1024

MIB = 1024 * 1024


def tree_size(path: Path) -> tuple[int, int]:
    """Unzipped bytes and file count, as Lambda counts them (the sum of the files' sizes)."""
    if not path.exists() and not path.is_symlink():
        return 0, 0
    if path.is_file() or path.is_symlink():
        return path.lstat().st_size, 1
    total = files = 0
    for dirpath, _dirnames, filenames in os.walk(path):
        for name in filenames:
            total += os.lstat(os.path.join(dirpath, name)).st_size
            files += 1
    return total, files


def package_sizes(root: Path, dists: Mapping[str, Dist]) -> dict[str, int]:
    """Bytes per distribution (``numpy`` counts numpy/, numpy.libs/ and its dist-info); others by entry name."""
    owner = {top: name for name, dist in dists.items() for top in dist.top_level}
    sizes: dict[str, int] = {}
    for entry in root.iterdir():
        key = owner.get(entry.name, entry.name)
        sizes[key] = sizes.get(key, 0) + tree_size(entry)[0]
    return sizes


def zip_tree(src: Path, dest: Path) -> int:
    """Zip the contents of ``src`` (deflate, as ``sam package`` does); returns the archive's size."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        if src.exists():
            for dirpath, dirnames, filenames in os.walk(src):
                dirnames.sort()
                for name in sorted(filenames):
                    path = Path(dirpath) / name
                    zf.write(path, path.relative_to(src).as_posix())
    return dest.stat().st_size


def mib(n: int) -> str:
    """Sizes as Lambda counts them: its "250 MB" limit is 262,144,000 bytes, i.e. MiB."""
    return f"{n / MIB:.1f} MiB" if abs(n) >= MIB // 10 or n == 0 else f"{n / 1024:.0f} KiB"
