"""The publisher's view of installed distributions: scanned once, scanned again when a package is installed."""

from __future__ import annotations

import sys
from importlib.metadata import packages_distributions, version

from sklambda.publishing.artifact import installed_modules


def test_installed_modules_name_each_module_with_its_distribution_and_version():
    # WHEN the publisher lists what is installed
    found = installed_modules()
    # THEN a module is mapped to the distribution and version importlib.metadata gives it
    dist = packages_distributions()["sklearn"][0]
    assert found["sklearn"] == (dist, version(dist))


def test_a_package_installed_between_two_publishes_is_seen_by_the_second(tmp_path, monkeypatch):
    # GIVEN a directory on sys.path, listed once while empty
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    assert "skl_fake_mod" not in installed_modules()
    # WHEN a distribution is installed into it (as pip writes one: dist-info with METADATA and RECORD)
    info = tmp_path / "skl_fake-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: skl-fake\nVersion: 1.2\n")
    (info / "RECORD").write_text("skl_fake_mod/__init__.py,,\nskl_fake-1.2.dist-info/METADATA,,\n")
    (tmp_path / "skl_fake_mod").mkdir()
    (tmp_path / "skl_fake_mod" / "__init__.py").write_text("")
    # THEN the next listing has it
    assert installed_modules()["skl_fake_mod"] == ("skl-fake", "1.2")
