"""Bundle size: what the Lambda function unzips to (dependency layer, runtime layer, function code).

The numbers come from the layer build (`python -m sklambda_infra.layer`), which writes `layer-report.json`. The
benchmark builds into its own folder (build/bench/layers) so it never races a build someone runs by hand.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from sklambda_infra.bench import common

OUT = common.BUILD / "layers"
REPORT_NAME = "layer-report.json"
BUILD_TIMEOUT_SECONDS = 1800


@dataclass
class BundleResult:
    measured: bool
    reason: str = ""  # why not measured
    report_path: str = ""
    build_seconds: float | None = None
    build_exit_code: int | None = None
    report: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def run(*, report: Path | None = None, verify: bool = False) -> BundleResult:
    """Build the layer and read its report, or only read `report` when one is given."""
    if report is not None:
        return _read(report, build_seconds=None, code=None)
    if importlib.util.find_spec("sklambda_infra.layer") is None:
        return BundleResult(False, "sklambda_infra.layer does not exist yet: the layer build is not available")
    command = [sys.executable, "-m", "sklambda_infra.layer", "--out", str(OUT), "--verify" if verify else "--no-verify"]
    common.log(f"bundle: {' '.join(command[1:])} (installs manylinux wheels from PyPI; a few minutes)")
    (OUT / REPORT_NAME).unlink(missing_ok=True)
    started = time.perf_counter()
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        return BundleResult(False, f"the layer build did not finish in {BUILD_TIMEOUT_SECONDS} s")
    seconds = time.perf_counter() - started
    if not (OUT / REPORT_NAME).exists():
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        return BundleResult(False, f"the layer build exited {proc.returncode} without a report:\n{tail}")
    # A non-zero exit with a report is still a measurement (e.g. over the limit, or verification failed).
    return _read(OUT / REPORT_NAME, build_seconds=seconds, code=proc.returncode)


def _read(path: Path, *, build_seconds: float | None, code: int | None) -> BundleResult:
    try:
        report = json.loads(path.read_text())
        sizes(report)  # fails early on a report of another shape
    except (OSError, ValueError, KeyError, TypeError) as e:
        return BundleResult(False, f"cannot read the layer report {path}: {type(e).__name__}: {e}")
    return BundleResult(True, report_path=str(path), build_seconds=build_seconds, build_exit_code=code, report=report)


def sizes(report: dict) -> dict[str, int | bool | None]:
    """The sizes BENCHMARKS.md shows, from a layer report (schema_version 1 of sklambda_infra.layer)."""
    deps, total = report["deps_layer"], report["total"]
    return {
        "deps_before_slim": deps["before_slim_bytes"],
        "deps_after_slim": deps["after_slim_bytes"],
        "deps_zipped": deps.get("zipped_bytes"),
        "runtime": report["runtime_layer"]["bytes"],
        "runtime_zipped": report["runtime_layer"].get("zipped_bytes"),
        "function": report["function"]["bytes"],
        "function_zipped": report["function"].get("zipped_bytes"),
        "function_present": report["function"].get("present", True),
        "total": total["unzipped_bytes"],
        "total_zipped": total.get("zipped_bytes"),
        "limit": total["lambda_limit_bytes"],
        "target": total["target_bytes"],
    }
