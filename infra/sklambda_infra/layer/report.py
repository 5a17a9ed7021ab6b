"""The build report: ``<out>/layer-report.json`` (schema_version 1, read by the benchmarks) and the table printed
after a build."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from .install import Dist
from .measure import LAMBDA_DIRECT_UPLOAD_ZIP, LAMBDA_UNZIPPED_LIMIT, MIB, TARGET_UNZIPPED, mib, tree_size
from .options import Options
from .paths import DEFAULT_OUT, FUNCTION_SRC, REPORT_NAME, display_path
from .requirements import SKLEARN
from .slimming import CACHES, DOCS, RUNTIME, SCRIPTS, SOURCES, TESTS, SlimResult, StripResult


def make_report(
    opts: Options, state: dict, out: Path, zipped: Mapping[str, int], function_present: bool, verification: dict | None
) -> dict:
    """The report of a full build (schema_version 1): sizes before and after slimming, per package, zipped, against
    Lambda's limits, timings and the verification. ``state`` is what install_and_slim and finish_slim gathered."""
    slimmed: SlimResult = state["slimmed"]
    stripped: StripResult = state["stripped"]
    dists: Mapping[str, Dist] = state["dists"]
    runtime_bytes, runtime_files = tree_size(out / "runtime")
    function_bytes, function_files = tree_size(out / "function")
    deps_after = state["after"]["bytes"]
    total = deps_after + runtime_bytes + function_bytes
    before_pk, after_pk = state["before"]["packages"], state["after"]["packages"]
    packages = [
        {
            "name": name,
            "version": dists[name].version if name in dists else None,
            "before_bytes": before_pk.get(name, 0),
            "after_bytes": after_pk.get(name, 0),
        }
        for name in sorted(set(before_pk) | set(after_pk), key=lambda n: (-after_pk.get(n, 0), n))
    ]
    return {
        "schema_version": 1,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python_version": opts.python_version,
        "platforms": list(opts.platforms),
        "requirements": " + ".join(display_path(Path(r)) for r in opts.requirements),
        "scikit_learn": dists[SKLEARN].version if SKLEARN in dists else None,
        "manifest": display_path(state["manifest"]),
        "out": display_path(out),
        "deps_layer": {
            "before_slim_bytes": state["before"]["bytes"],
            "before_slim_files": state["before"]["files"],
            "after_slim_bytes": deps_after,
            "after_slim_files": state["after"]["files"],
            "zipped_bytes": zipped["deps"],
            "zip_needs_s3_upload": zipped["deps"] > LAMBDA_DIRECT_UPLOAD_ZIP,
            "removed_bytes": {**slimmed.removed_bytes, "strip": stripped.saved_bytes},
            "removed_files": slimmed.removed_files,
            "removed_dirs_sample": {c: paths[:12] for c, paths in slimmed.removed_paths.items()},
            "runtime_provided_removed": slimmed.runtime_provided,
            "stripped_files": stripped.files,
            "strip_skipped": stripped.skipped,
        },
        "packages": packages,
        "runtime_layer": {"bytes": runtime_bytes, "files": runtime_files, "zipped_bytes": zipped["runtime"]},
        "function": {
            "path": display_path(FUNCTION_SRC),
            "present": function_present,
            "bytes": function_bytes,
            "files": function_files,
            "zipped_bytes": zipped["function"],
        },
        "total": {
            "unzipped_bytes": total,
            "zipped_bytes": sum(zipped.values()),
            "lambda_limit_bytes": LAMBDA_UNZIPPED_LIMIT,
            "target_bytes": TARGET_UNZIPPED,
            "headroom_to_limit_bytes": LAMBDA_UNZIPPED_LIMIT - total,
            "headroom_to_target_bytes": TARGET_UNZIPPED - total,
            "within_lambda_limit": total < LAMBDA_UNZIPPED_LIMIT,
            "within_target": total <= TARGET_UNZIPPED,
        },
        "timings": state["timings"],
        "verification_status": "not_run" if verification is None else ("ok" if verification["ok"] else "failed"),
        "verification": verification,
    }


def render(report: Mapping) -> str:
    """The human-readable table printed after a build."""
    deps, total = report["deps_layer"], report["total"]
    removed = deps["removed_bytes"]
    labels = {
        RUNTIME: "runtime-provided: " + ", ".join(x.split()[0] for x in deps["runtime_provided_removed"]),
        TESTS: "tests/ and test/ folders",
        CACHES: "__pycache__ / .pyc",
        SOURCES: "type stubs, Cython/C sources, headers",
        DOCS: "docs and examples",
        SCRIPTS: "bin/ console scripts",
        "strip": f"debug symbols ({deps['stripped_files']} .so stripped)",
    }
    if deps["strip_skipped"]:
        labels["strip"] = f"debug symbols: SKIPPED, {deps['strip_skipped']}"
    lines = [
        f"Lambda bundle, python{report['python_version']} ({report['platforms'][0]} .. {report['platforms'][-1]})",
        "",
        f"  {'':50}{'unzipped':>13}{'zipped':>13}",
        f"  {'deps layer as pip installed it':50}{mib(deps['before_slim_bytes']):>13}",
    ]
    lines += [f"    - {labels[k]:48}{mib(-v):>13}" for k, v in removed.items() if v]
    lines += [
        f"  {'deps layer, slimmed':50}{mib(deps['after_slim_bytes']):>13}{mib(deps['zipped_bytes']):>13}",
        f"  {'runtime layer (sklambda)':50}{mib(report['runtime_layer']['bytes']):>13}"
        f"{mib(report['runtime_layer']['zipped_bytes']):>13}",
        f"  {'function code (' + report['function']['path'] + ')':50}{mib(report['function']['bytes']):>13}"
        f"{mib(report['function']['zipped_bytes']):>13}"
        + ("" if report["function"]["present"] else "   (not written yet)"),
        f"  {'TOTAL deployed bundle':50}{mib(total['unzipped_bytes']):>13}{mib(total['zipped_bytes']):>13}",
        "",
        f"  Lambda limit {total['lambda_limit_bytes'] / MIB:.0f} MiB: "
        + ("OK" if total["within_lambda_limit"] else "OVER")
        + f", {total['unzipped_bytes'] / total['lambda_limit_bytes']:.0%} used, headroom "
        + f"{total['headroom_to_limit_bytes'] / MIB:.1f} MiB",
        f"  Our target  {total['target_bytes'] / MIB:.0f} MiB: "
        + ("OK" if total["within_target"] else "OVER")
        + f", headroom {total['headroom_to_target_bytes'] / MIB:.1f} MiB",
        f"  Zipped deps layer {deps['zipped_bytes'] / MIB:.1f} MiB: "
        + (
            f"over the {LAMBDA_DIRECT_UPLOAD_ZIP / MIB:.0f} MiB direct-upload limit: deploy via S3 (sam deploy does)"
            if deps["zip_needs_s3_upload"]
            else "can be uploaded directly"
        ),
        "",
        f"  {'top packages':50}{'before':>13}{'after':>13}",
    ]
    for pkg in report["packages"][:10]:
        label = f"{pkg['name']} {pkg['version'] or ''}".strip()
        lines.append(f"  {label:50}{mib(pkg['before_bytes']):>13}{mib(pkg['after_bytes']):>13}")
    lines.append("")
    lines.append("  timings: " + ", ".join(f"{k.removesuffix('_seconds')} {v}s" for k, v in report["timings"].items()))
    lines += render_verification(report.get("verification"))
    return "\n".join(lines)


def render_verification(verification: Mapping | None) -> list[str]:
    if verification is None:
        return ["", "  verification: not run"]
    smoke, walk = verification["smoke"], verification["walk"]
    lines = ["", f"  verification under {verification['interpreter']}: " + ("OK" if verification["ok"] else "FAILED")]
    if "error" in smoke:
        lines.append(f"    smoke test error: {smoke['error']}")
        lines.append(smoke.get("traceback", ""))
    else:
        lines.append(
            "    python " + smoke["python"] + "; " + ", ".join(f"{k} {v}" for k, v in smoke["versions"].items())
        )
        lines.append("    import seconds: " + ", ".join(f"{k} {v}" for k, v in smoke["import_seconds"].items()))
        pools = ", ".join(
            f"{b['internal_api']} {b['version'] or ''} ({b['num_threads']} threads)" for b in smoke["thread_pools"]
        )
        lines.append(f"    native thread pools loaded (threadpoolctl): {pools}")
        lines.append(f"    sklambda modules imported: {len(smoke['sklambda_modules'])}")
        for name, m in smoke["models"].items():
            lines.append(
                f"    {name}: train accuracy {m['train_accuracy']}, predict_proba(row 0) {m['proba_first_row']}, "
                f"fit {m['fit_seconds']}s, predict 1 row {m['predict_one_row_ms']} ms, "
                f"joblib {m['artifact_bytes']} B, round-trip identical {m['roundtrip_identical']}"
            )
        if "reference_model" in smoke:
            ref = smoke["reference_model"]
            lines.append(
                f"    model pickled by Python {ref['pickled_by_python']} loads here: max |proba diff| "
                f"{ref['max_abs_proba_diff']:.2e}"
            )
        failed = [k for k, v in smoke["checks"].items() if not v]
        lines.append(
            f"    checks: {len(smoke['checks']) - len(failed)}/{len(smoke['checks'])} passed"
            + (f"; FAILED: {', '.join(failed)}" if failed else "")
        )
    if "error" in walk:
        lines.append(f"    module walk error: {walk['error']}")
    else:
        before = walk.get("modules_imported_before_slimming", "?")
        lines.append(
            f"    module walk: {walk['modules_imported']} modules import after slimming ({before} before; "
            f"{walk.get('removed_modules', 0)} removed on purpose), {walk['seconds']}s; "
            f"broken by slimming: {len(walk['broken_by_slimming'])}"
        )
        for name, err in list(walk["broken_by_slimming"].items())[:20]:
            lines.append(f"      BROKEN {name}: {err}")
        optional = ", ".join(f"{k} ({v})" for k, v in list(walk["optional_missing"].items())[:8])
        lines.append(f"    failing both before and after (optional extras not installed): {optional}")
    return lines


def read_report(out: Path = DEFAULT_OUT) -> dict:
    """The last build's report, for the benchmark script. Raises FileNotFoundError when no build wrote one."""
    return json.loads((out / REPORT_NAME).read_text())
