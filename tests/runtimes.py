"""The extra runtime copies the test suite publishes to, beside the layer's own (sklambda_infra.layer.local_env):
the layer with LightGBM added (the tested example of adding a package) and the other supported scikit-learn.

Stated once here for tests/functional/test_parity.py and tests/infra/test_local_env.py. `python -m tests.runtimes`
builds both into the runtime cache, which `make test` runs as set-up (each copy is a pip install of about 380 MB
from pip's cache or the package index: set-up, like installing the dev tools, not part of what a test measures).
"""

from __future__ import annotations

import sys
from pathlib import Path

LIGHTGBM = "4.7.0"  # py3-none manylinux_2_28 wheel; needs narwhals, numpy, scipy (all in the layer) and libgomp
OTHER_SKLEARN = "1.8.0"
LIGHTGBM_EXTRAS = f"lightgbm=={LIGHTGBM}\n"  # an extra-requirements.txt's text


def lightgbm_copy(folder: Path) -> Path:
    """The layer's host copy with LightGBM added, built from an extras file written in `folder`."""
    from sklambda_infra import layer

    extras = folder / "extra-requirements.txt"
    extras.write_text(LIGHTGBM_EXTRAS)
    return layer.local_env([layer.REQUIREMENTS, extras])


def other_sklearn_copy() -> Path:
    """The layer's host copy with the other supported scikit-learn."""
    from sklambda_infra import layer

    return layer.local_env(sklearn=OTHER_SKLEARN)


def main() -> int:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        print(f"  {lightgbm_copy(Path(folder))}")
    print(f"  {other_sklearn_copy()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
