"""What an artifact needs against what the target runtime has: the publisher's installed packages are read only to
word the advice for a missing module (reading every distribution's metadata costs about half a second)."""

from __future__ import annotations

from sklambda.publishing.artifact import ArtifactNeeds, check_needs
from sklambda.runtime_env import RuntimeManifest

TARGET = RuntimeManifest(python="3.12", platform="linux", packages={"scikit-learn": "1.6.1"}, modules=("sklearn",))


class Installed:
    """An `installed` function that counts its calls."""

    def __init__(self, found: dict[str, tuple[str, str]]) -> None:
        self.found = found
        self.calls = 0

    def __call__(self) -> dict[str, tuple[str, str]]:
        self.calls += 1
        return self.found


def test_installed_packages_are_not_read_when_the_runtime_and_shipped_code_provide_every_module():
    # GIVEN an artifact that needs scikit-learn (in the layer) and a module of the code shipped with it
    needs = ArtifactNeeds({"sklearn": ["sklearn.pipeline.Pipeline"], "my_features": ["my_features.cap"]})
    installed = Installed({"lightgbm": ("lightgbm", "4.7.0")})
    # WHEN its needs are checked
    problems = check_needs(needs, TARGET, shipped=["my_features"], installed=installed)
    # THEN nothing is missing, and the installed packages were never read
    assert problems == []
    assert installed.calls == 0


def test_missing_modules_read_the_installed_packages_once_and_name_the_pin_or_the_code_to_ship():
    # GIVEN an artifact that needs an installed package and a module of the user's that is not shipped
    needs = ArtifactNeeds(
        {"lightgbm": ["lightgbm.LGBMClassifier"], "my_features": ["my_features.cap"], "sklearn": ["sklearn.base"]}
    )
    installed = Installed({"lightgbm": ("lightgbm", "4.7.0")})
    # WHEN its needs are checked
    problems = {p.module: p for p in check_needs(needs, TARGET, installed=installed)}
    # THEN the package is named with its pin, the module as code to ship, and the packages were read once
    assert problems["lightgbm"].check == "runtime_packages" and "'lightgbm==4.7.0'" in problems["lightgbm"].message
    assert problems["my_features"].check == "user_code" and "--code" in problems["my_features"].message
    assert set(problems) == {"lightgbm", "my_features"}
    assert installed.calls == 1


def test_a_mapping_of_installed_packages_is_still_accepted_and_main_is_reported_once():
    # GIVEN an artifact referencing the training script and an installed package, with `installed` as a mapping
    needs = ArtifactNeeds({"__main__": ["__main__.Subtract"], "lightgbm": ["lightgbm.LGBMClassifier"]})
    # WHEN its needs are checked
    problems = check_needs(needs, TARGET, installed={"lightgbm": ("lightgbm", "4.7.0")})
    # THEN the script's class is one user_code problem and the package one runtime_packages problem
    assert [(p.module, p.check) for p in problems] == [("__main__", "user_code"), ("lightgbm", "runtime_packages")]
