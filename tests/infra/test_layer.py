"""The Lambda dependency layer: its pins cannot drift from pyproject.toml, and slimming keeps what runs.

Fast and offline: nothing is installed. The slimming rules run on a fake site-packages tree in tmp_path; the real
tree is checked by `python -m sklambda_infra.layer --verify`, which re-imports every module under Python 3.12.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cfnlint.decode import cfn_yaml

from sklambda.runtime_env import MANIFEST_NAME, RuntimeManifest
from sklambda_infra import layer
from sklambda_infra.layer import slimming

ROOT = Path(__file__).resolve().parents[2]
MAKEFILE = ROOT / "layers" / "deps" / "Makefile"
TEMPLATE = ROOT / "template.yaml"


@pytest.fixture(scope="module")
def pins() -> dict[str, layer.Pin]:
    return layer.parse_requirements(layer.REQUIREMENTS.read_text())


def write(root: Path, *relative: str, content: str = "x = 1\n") -> None:
    for rel in relative:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def dist_info(root: Path, name: str, version: str, *files: str) -> None:
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    write(root, f"{info.name}/METADATA", content=f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nText\n")
    record = [f"{f},sha256=abc,1" for f in files] + [f"{info.name}/RECORD,,"]
    write(root, f"{info.name}/RECORD", content="\n".join(record) + "\n")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A miniature of what pip installs into the layer, with the traps the real one has."""
    root = tmp_path / "python"
    write(
        root,
        "numpy/__init__.py",
        "numpy/_core/multiarray.py",
        "numpy/_core/tests/test_multiarray.py",
        "numpy/_core/tests/data/umath-validation-set-log.csv",
        "numpy/_core/include/numpy/ndarraytypes.h",
        "numpy/_core/__pycache__/multiarray.cpython-311.pyc",
        "numpy/__init__.pyi",
        "numpy/__init__.pxd",
        "numpy/testing/__init__.py",  # scikit-learn imports numpy.testing at run time
        "numpy/testing/_private/utils.py",
        "numpy/testing/tests/test_utils.py",
        "numpy/random/_examples/cython/extending.pyx",
        "numpy/random/_examples/numba/extending.py",
        "numpy.libs/libscipy_openblas64_-32a4b2a6.so",
        "scipy/__init__.py",
        "scipy/linalg/cython_blas.pxd",
        "scipy/special/tests/test_basic.py",
        "scipy/_lib/_testutils.py",
        "sklearn/__init__.py",
        "sklearn/utils/_testing.py",  # imported by sklearn.utils.estimator_checks
        "sklearn/utils/tests/test_validation.py",
        "sklearn/ensemble/_forest.py",
        "sklearn/ensemble/tests/test_forest.py",
        "sklearn/tree/_tree.pyx",
        "sklearn/meson.build",
        "pandas/__init__.py",
        "pandas/_testing/__init__.py",
        "pandas/tests/frame/test_api.py",
        "pandas/_libs/lib.cpython-312-x86_64-linux-gnu.so",
        "joblib/__init__.py",
        "joblib/test/test_parallel.py",
        "mylib/docs/__init__.py",  # a package that happens to be called docs stays
        "wrapt-stubs/__init__.pyi",
        "dateutil/__init__.py",
        "six.py",
        "__pycache__/six.cpython-311.pyc",
        "bin/f2py",
        "bin/jp.py",
        # Provided by the Lambda runtime, pulled by powertools and aws-xray-sdk:
        "boto3/__init__.py",
        "botocore/__init__.py",
        "botocore/data/s3/2006-03-01/service-2.json.gz",
        "s3transfer/__init__.py",
        "jmespath/__init__.py",
        "urllib3/__init__.py",
    )
    dist_info(root, "botocore", "1.44.8", "botocore/__init__.py")
    dist_info(root, "jmespath", "1.1.0", "jmespath/__init__.py", "../../bin/jp.py")
    dist_info(root, "python-dateutil", "2.9.0.post0", "dateutil/__init__.py")
    dist_info(root, "six", "1.17.0", "six.py")
    return root


def exists(root: Path, *relative: str) -> list[bool]:
    return [(root / rel).exists() for rel in relative]


# ---------------------------------------------------------------------------------------------- requirements


def test_requirements_pin_every_runtime_dependency_of_pyproject_identically(pins: dict[str, layer.Pin]) -> None:
    # GIVEN the runtime dependencies of pyproject.toml, less those the Lambda runtime provides
    project = {n: p for n, p in layer.pyproject_dependencies().items() if n not in layer.RUNTIME_PROVIDED}
    assert "scikit-learn" in project

    # WHEN each is looked up in the layer's requirements.txt
    mismatched = {
        name: (str(pin), str(pins.get(name)))
        for name, pin in project.items()
        if name not in pins or (pins[name].extras, pins[name].spec) != (pin.extras, pin.spec)
    }

    # THEN every one is there with the same extras and the same pin
    assert mismatched == {}


def test_requirements_pin_every_package_exactly(pins: dict[str, layer.Pin]) -> None:
    # GIVEN the layer's requirements, transitive ones included
    # WHEN their specifiers are read
    loose = [str(pin) for pin in pins.values() if pin.version is None]

    # THEN each is an exact == pin, so two builds ship the same bytes
    assert loose == []


def test_requirements_leave_out_what_the_lambda_runtime_provides(pins: dict[str, layer.Pin]) -> None:
    # GIVEN the distributions the Lambda Python runtime ships (a layer copy would shadow them)
    # WHEN the layer's requirements are read
    # THEN none of them is there
    assert set(layer.RUNTIME_PROVIDED) & set(pins) == set()
    assert {"boto3", "botocore", "s3transfer", "jmespath", "urllib3"} <= set(layer.RUNTIME_PROVIDED)


def test_python_dateutil_stays_below_3_because_the_runtime_botocore_requires_it(pins: dict[str, layer.Pin]) -> None:
    # GIVEN the layer's python-dateutil pin (pandas alone would take 4.x)
    version = pins["python-dateutil"].version

    # THEN it is a 2.x release
    assert version is not None and int(version.split(".")[0]) < 3


def test_parse_requirements_reads_extras_pins_and_ignores_comments() -> None:
    # GIVEN a requirements text with comments, extras and an inline comment
    text = "# header\n\nAWS_Lambda.Powertools[Tracer] == 3.37.0  # why\nboto3>=1.40,<2\n"

    # WHEN it is parsed
    parsed = layer.parse_requirements(text)

    # THEN names are canonical, extras kept, and only == pins have a version
    assert parsed["aws-lambda-powertools"] == layer.Pin("aws-lambda-powertools", frozenset({"tracer"}), "==3.37.0")
    assert parsed["aws-lambda-powertools"].version == "3.37.0"
    assert parsed["boto3"].version is None


def test_check_pins_reports_an_unpinned_transitive_dependency_but_not_the_runtime_ones(tmp_path: Path) -> None:
    # GIVEN an installed tree where pip pulled narwhals (unpinned), botocore (runtime-provided) and six (pinned)
    dist_info(tmp_path, "narwhals", "2.29.0", "narwhals/__init__.py")
    dist_info(tmp_path, "botocore", "1.44.8", "botocore/__init__.py")
    dist_info(tmp_path, "six", "1.17.0", "six.py")
    pins = layer.parse_requirements("six==1.16.0\n")

    # WHEN the tree is checked against the pins
    problems = layer.check_pins(layer.installed_dists(tmp_path), pins)

    # THEN narwhals and the six mismatch are reported, botocore is not
    assert problems == [
        "narwhals==2.29.0 was installed but is not pinned with == in requirements.txt or extra-requirements.txt",
        "six: the requirements pin 1.16.0 but pip installed 1.17.0",
    ]


def test_extra_requirements_file_says_how_to_add_a_package_and_adds_none_by_default() -> None:
    # GIVEN the one documented place to add packages to the layer
    text = layer.EXTRA_REQUIREMENTS.read_text()

    # THEN its header explains the pins rule and the size check, and it pins nothing yet
    assert "==" in text and "every distribution it pulls" in text and "250 MiB" in text
    assert layer.parse_requirements(text) == {}
    assert layer.LAYER_REQUIREMENTS == (layer.REQUIREMENTS, layer.EXTRA_REQUIREMENTS)


def test_read_pins_merges_the_extra_file_and_refuses_a_package_pinned_in_both(tmp_path: Path) -> None:
    # GIVEN an extras file adding lightgbm, and one that pins numpy again
    extras = tmp_path / "extra.txt"
    extras.write_text("# lightgbm for the churn model\nlightgbm==4.7.0\n")
    again = tmp_path / "again.txt"
    again.write_text("numpy==2.4.6\n")

    # WHEN the layer's pins are read with each
    merged = layer.read_pins([layer.REQUIREMENTS, extras])

    # THEN lightgbm joins the layer's pins, and a second pin of numpy is refused naming the file
    assert merged["lightgbm"].version == "4.7.0" and merged["numpy"].version == "2.4.6"
    with pytest.raises(ValueError, match=r"numpy is pinned twice: again in .*again.txt"):
        layer.read_pins([layer.REQUIREMENTS, again])


def test_requirements_pin_a_supported_scikit_learn(pins: dict[str, layer.Pin]) -> None:
    # GIVEN the layer's scikit-learn pin, the one build-time choice of the version
    # THEN it is one of the versions the build supports
    assert pins[layer.SKLEARN].version in layer.SUPPORTED_SKLEARN


def test_sklearn_override_replaces_the_pin_and_refuses_an_unsupported_version(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN no override in the environment
    monkeypatch.delenv(layer.SKLEARN_ENV, raising=False)

    # WHEN the pins are read with another supported scikit-learn, from the argument or the environment
    by_argument = layer.read_pins(sklearn="1.8.0")
    monkeypatch.setenv(layer.SKLEARN_ENV, "1.9.0")
    by_environment = layer.read_pins()

    # THEN only scikit-learn's pin changes
    default = layer.read_pins(sklearn=None, requirements=[layer.REQUIREMENTS, layer.EXTRA_REQUIREMENTS])
    assert by_argument[layer.SKLEARN].version == "1.8.0" and by_environment[layer.SKLEARN].version == "1.9.0"
    assert {k: v for k, v in by_argument.items() if k != layer.SKLEARN} == {
        k: v for k, v in default.items() if k != layer.SKLEARN
    }
    # AND a version nobody checked is refused with the supported list
    with pytest.raises(ValueError, match=r"scikit-learn 1\.5\.2 is not a supported .*1\.8\.0"):
        layer.read_pins(sklearn="1.5.2")


def test_layer_modules_are_the_importable_top_level_names(site: Path) -> None:
    # GIVEN an installed tree with packages, plain modules, an extension module, a namespace package and metadata
    write(site, "lightgbm/__init__.py", "google/protobuf/__init__.py", "_cffi_backend.cpython-312-x86_64-linux-gnu.so")
    dist_info(site, "protobuf", "6.0.0", "google/protobuf/__init__.py")
    dist_info(site, "lightgbm", "4.7.0", "lightgbm/__init__.py")

    # WHEN its modules are listed
    modules = layer.layer_modules(site)

    # THEN packages, *.py and *.so modules and the namespace package are there; metadata, libs, stubs, bin are not
    assert {"numpy", "sklearn", "lightgbm", "six", "_cffi_backend", "google", "dateutil"} <= set(modules)
    assert not {"numpy.libs", "wrapt-stubs", "bin", "__pycache__"} & set(modules)
    assert not any(m.endswith("dist-info") for m in modules)


def test_write_manifest_lists_the_installed_distributions_less_the_runtime_provided(site: Path) -> None:
    # GIVEN an installed tree where pip also pulled botocore and jmespath (the Lambda runtime's)
    dist_info(site, "lightgbm", "4.7.0", "lightgbm/__init__.py")
    write(site, "lightgbm/__init__.py")

    # WHEN the manifest is written for a Lambda build and read back
    path = layer.write_manifest(site, "manylinux_2_34_x86_64", "3.12")
    manifest = RuntimeManifest.read(site)

    # THEN it sits in the layer's python/ folder and holds the layer's own distributions with their versions
    assert path == site / MANIFEST_NAME == layer.manifest_path(site)
    assert manifest.packages == {"lightgbm": "4.7.0", "python-dateutil": "2.9.0.post0", "six": "1.17.0"}
    assert manifest.python == "3.12" and manifest.platform == "manylinux_2_34_x86_64"
    assert "lightgbm" in manifest.modules and manifest.provides("lightgbm.sklearn")


def test_lambda_platforms_accept_manylinux_2_28_wheels_and_nothing_newer_than_the_runtime_glibc() -> None:
    # GIVEN numpy 2.4 / scipy 1.17 / scikit-learn 1.9 ship cp312 wheels only as manylinux_2_27/_2_28
    # WHEN the platform tags for python3.12 on Amazon Linux 2023 (glibc 2.34) are listed
    tags = layer.lambda_platforms("x86_64")

    # THEN they reach from the runtime's glibc down to manylinux2014, newest first
    assert tags[0] == "manylinux_2_34_x86_64"
    assert {"manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"} <= set(tags)
    assert "manylinux_2_35_x86_64" not in tags


# ---------------------------------------------------------------------------------------------- slimming


def test_slim_removes_tests_folders_caches_stubs_and_build_sources(site: Path) -> None:
    # GIVEN an installed tree
    # WHEN it is slimmed
    result = layer.slim(site)

    # THEN test folders, caches, stubs, Cython/C sources, headers, examples and scripts are gone
    removed = [
        "numpy/_core/tests",
        "numpy/testing/tests",
        "scipy/special/tests",
        "sklearn/utils/tests",
        "sklearn/ensemble/tests",
        "pandas/tests",
        "joblib/test",
        "numpy/_core/__pycache__",
        "__pycache__",
        "numpy/__init__.pyi",
        "numpy/__init__.pxd",
        "numpy/_core/include",
        "scipy/linalg/cython_blas.pxd",
        "sklearn/tree/_tree.pyx",
        "sklearn/meson.build",
        "numpy/random/_examples",
        "wrapt-stubs",
        "bin",
    ]
    assert exists(site, *removed) == [False] * len(removed)
    assert result.removed_files[layer.TESTS] == 8
    assert result.removed_bytes[layer.TESTS] > 0


def test_slim_keeps_the_testing_helpers_the_libraries_import_at_run_time(site: Path) -> None:
    # GIVEN an installed tree with numpy.testing, pandas._testing, sklearn.utils._testing and scipy's testutils
    # WHEN it is slimmed
    layer.slim(site)

    # THEN those, the code around the removed test folders, and packages merely named docs are still there
    kept = [
        "numpy/testing/__init__.py",
        "numpy/testing/_private/utils.py",
        "pandas/_testing/__init__.py",
        "sklearn/utils/_testing.py",
        "scipy/_lib/_testutils.py",
        "sklearn/ensemble/_forest.py",
        "numpy/_core/multiarray.py",
        "pandas/_libs/lib.cpython-312-x86_64-linux-gnu.so",
        "numpy.libs/libscipy_openblas64_-32a4b2a6.so",
        "mylib/docs/__init__.py",
        "dateutil/__init__.py",
        "python_dateutil-2.9.0.post0.dist-info/METADATA",
        "six.py",
    ]
    assert exists(site, *kept) == [True] * len(kept)


def test_slim_removes_the_packages_the_lambda_runtime_provides_with_their_dist_info(site: Path) -> None:
    # GIVEN a tree into which pip pulled boto3, botocore, s3transfer, jmespath and urllib3
    # WHEN it is slimmed
    result = layer.slim(site)

    # THEN they and their metadata are gone, and the report names what was removed
    gone = ["boto3", "botocore", "s3transfer", "jmespath", "urllib3"]
    gone += ["botocore-1.44.8.dist-info", "jmespath-1.1.0.dist-info"]
    assert exists(site, *gone) == [False] * len(gone)
    assert result.runtime_provided == ["botocore 1.44.8", "jmespath 1.1.0"]
    assert result.removed_bytes[layer.RUNTIME] > 0


def test_slim_refuses_before_deleting_anything_when_a_rule_would_remove_a_kept_path(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a kept path that a rule matches (as if a library's runtime code lived in a tests folder)
    monkeypatch.setattr(slimming, "KEEP", ("pandas/tests",))

    # WHEN the tree is slimmed
    with pytest.raises(RuntimeError, match="pandas/tests"):
        layer.slim(site)

    # THEN nothing was deleted
    assert exists(site, "pandas/tests/frame/test_api.py", "botocore/__init__.py") == [True, True]


def test_strip_targets_every_extension_module_but_not_the_vendored_libraries(site: Path) -> None:
    # GIVEN extension modules and an auditwheel-vendored library (stripping those corrupts them)
    # WHEN the files to strip are listed
    targets = [p.relative_to(site).as_posix() for p in layer.strip_targets(site)]

    # THEN only the extension modules are listed
    assert targets == ["pandas/_libs/lib.cpython-312-x86_64-linux-gnu.so"]


def test_strip_is_skipped_with_a_reason_when_binutils_is_missing(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN no `strip` on PATH
    monkeypatch.setattr(slimming.shutil, "which", lambda name: None)

    # WHEN binaries are stripped
    result = layer.strip_binaries(site)

    # THEN nothing changes and the reason is given
    assert (result.saved_bytes, result.files) == (0, 0)
    assert result.skipped is not None and "strip" in result.skipped


def test_package_sizes_count_vendored_libraries_and_metadata_with_their_distribution(tmp_path: Path) -> None:
    # GIVEN numpy with its vendored numpy.libs, both listed in its RECORD
    write(tmp_path, "numpy/__init__.py", content="a" * 100)
    write(tmp_path, "numpy.libs/libopenblas.so", content="b" * 1000)
    dist_info(tmp_path, "numpy", "2.4.6", "numpy/__init__.py", "numpy.libs/libopenblas.so")

    # WHEN sizes are attributed to distributions
    sizes = layer.package_sizes(tmp_path, layer.installed_dists(tmp_path))

    # THEN everything is numpy's
    assert list(sizes) == ["numpy"]
    assert sizes["numpy"] >= 1100


# ---------------------------------------------------------------------------------------------- sam build


def test_every_makefile_layer_in_the_template_has_its_build_target() -> None:
    # GIVEN the layers template.yaml builds with BuildMethod: makefile
    resources = cfn_yaml.load(str(TEMPLATE))["Resources"]
    makefile_layers = {
        name: res["Properties"]["ContentUri"]
        for name, res in resources.items()
        if res.get("Metadata", {}).get("BuildMethod") == "makefile"
    }
    assert "DependenciesLayer" in makefile_layers

    # THEN the Makefile in each one's ContentUri has a build-<LogicalId> target
    for name, content_uri in makefile_layers.items():
        makefile = (ROOT / content_uri / "Makefile").read_text()
        assert f"\nbuild-{name}:" in makefile


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_makefile_finds_the_repository_from_sam_scratch_dir(tmp_path: Path) -> None:
    # GIVEN SAM's way of running it: from a scratch copy of the folder, with the source Makefile and ARTIFACTS_DIR
    scratch = tmp_path / "scratch"
    shutil.copytree(MAKEFILE.parent, scratch)
    env = {**os.environ, "ARTIFACTS_DIR": str(tmp_path / "artifacts")}
    env.pop("SKLAMBDA_REPO", None)

    # WHEN make shows what it would run
    proc = subprocess.run(
        ["make", "--dry-run", "--makefile", str(MAKEFILE), "build-DependenciesLayer"],
        cwd=scratch,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )

    # THEN it runs the shared install-and-slim code of this repository into $(ARTIFACTS_DIR)/python
    assert f'PYTHONPATH="{ROOT}/infra"' in proc.stdout
    assert "-m sklambda_infra.layer --deps-only" in proc.stdout
    # AND it installs the extra requirements with the layer's own
    assert f'--requirements "{ROOT}/layers/deps/requirements.txt"' in proc.stdout
    assert f'--requirements "{ROOT}/layers/deps/extra-requirements.txt"' in proc.stdout
    assert f'--target "{tmp_path / "artifacts"}/python"' in proc.stdout


def test_publish_outside_a_checkout_says_where_the_layer_pins_are_instead_of_a_missing_file(tmp_path: Path) -> None:
    # GIVEN requirement files that are not there, as in a wheel installed outside a sklambda clone
    from sklambda_infra.layer import LayerBuildError
    from sklambda_infra.runtime import runtime_paths

    missing = tmp_path / "layers" / "deps" / "requirements.txt"

    # WHEN the target runtime for publish is asked for
    with pytest.raises(LayerBuildError) as raised:
        runtime_paths(requirements=[missing])

    # THEN the error names the missing file, where it comes from, and the two ways out
    message = str(raised.value)
    assert str(missing) in message and "sklambda checkout" in message
    assert "pip install -e ." in message and "SKLAMBDA_RUNTIME_PATH" in message
