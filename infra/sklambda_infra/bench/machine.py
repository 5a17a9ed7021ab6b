"""What the numbers were measured on: CPU, cores, memory, Python, library versions, BLAS threading."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

LIBRARIES = (
    "scikit-learn",
    "numpy",
    "scipy",
    "pandas",
    "joblib",
    "pydantic",
    "aws-lambda-powertools",
    "aws-xray-sdk",
    "boto3",
    "botocore",
    "moto",
)
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_CORETYPE")


def _proc_field(path: str, key: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key:
                return value.strip()
    except OSError:
        return None
    return None


def _cpu() -> str:
    model = _proc_field("/proc/cpuinfo", "model name") or platform.processor() or "unknown"
    details = [
        f"{label} {value}" + (" MHz" if label == "at" else "")
        for label, value in (
            ("at", _proc_field("/proc/cpuinfo", "cpu MHz")),
            ("cache", _proc_field("/proc/cpuinfo", "cache size")),
        )
        if value
    ]
    return f"{model} ({', '.join(details)})" if details else model


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def describe() -> dict:
    mem_kb = _proc_field("/proc/meminfo", "MemTotal")
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": _cpu(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gib": round(int(mem_kb.split()[0]) / 1024**2, 1) if mem_kb else None,
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "libraries": versions,
        "thread_env": {k: os.environ.get(k, "unset") for k in THREAD_VARIABLES},
        "blas": blas_threads(),
        "load_average_start": load_average(),
    }


def blas_threads() -> list[str]:
    """The BLAS/OpenMP libraries numpy and scikit-learn loaded, with their thread counts (threadpoolctl)."""
    try:
        import numpy  # noqa: F401  (loads OpenBLAS)
        import sklearn.ensemble  # noqa: F401  (loads OpenMP)
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [
        f"{i.get('internal_api')} {i.get('version') or ''} ({i.get('num_threads')} threads, {i.get('prefix')})".replace(
            "  ", " "
        )
        for i in threadpool_info()
    ]
