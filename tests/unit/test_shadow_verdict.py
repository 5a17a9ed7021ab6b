"""How a shadow comparison's quality verdict reads (sklambda.updating.shadow.quality_verdict) and is coloured on its
page (page.render_shadow_report): a `reject` on few rows is inconclusive, not shown worse."""

from __future__ import annotations

import pytest

from sklambda.updating.page import LEVEL_COLOUR, render_shadow_report
from sklambda.updating.shadow import quality_verdict


@pytest.mark.parametrize(
    ("decision", "upper", "verdict", "level"),
    [
        ("replace", 0.03, "would replace: shown better", "better"),
        ("keep_champion", 0.02, "would keep the stable version: not shown better", "neutral"),
        # gain +0.0048, lower bound -0.0475 on 208 rows: the interval reaches far above -margin
        ("reject", 0.057, "not shown non-inferior: may be worse by more than the margin (0.01)", "warning"),
        ("reject", -0.02, "shown worse by more than the margin (0.01)", "worse"),
    ],
)
def test_each_gate_decision_reads_as_what_it_shows(decision, upper, verdict, level) -> None:
    assert quality_verdict(decision, upper, 0.01) == (verdict, level)


def test_an_inconclusive_reject_is_a_warning_badge_not_an_alarm() -> None:
    # GIVEN a comparison whose gate rejected the shadow on 208 labeled rows, its interval reaching above -margin
    verdict, level = quality_verdict("reject", 0.057, 0.01)
    document = {"model": "churn", "alias": "production", "shadow_version": "5", "stable_version": "4",
                "summary": "s", "quality": {"available": True, "verdict": verdict, "level": level}}  # fmt: skip
    # WHEN its page is rendered THEN the badge has the warning colour, not the alarm's
    page = render_shadow_report(document)
    assert f"background:{LEVEL_COLOUR['warning']}'>not shown non-inferior" in page
    assert f"background:{LEVEL_COLOUR['worse']}" not in page


def test_the_quality_bar_draws_the_non_inferiority_bound_the_verdict_uses() -> None:
    # GIVEN a comparison judged with a margin of 0.01
    quality = {"available": True, "verdict": "v", "level": "warning", "gain": 0.0048, "interval": [-0.0475, 0.057],
               "margin": 0.01}  # fmt: skip
    document = {"model": "churn", "alias": "production", "shadow_version": "5", "stable_version": "4",
                "summary": "s", "quality": quality}  # fmt: skip
    # WHEN its page is rendered THEN the dashed bound is at -margin, as the verdict speaks of it (not at 0)
    assert ">bound -0.01</text>" in render_shadow_report(document)
