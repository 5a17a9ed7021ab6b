"""Progress of long steps: plain lines in a log, one redrawn line on a terminal, never an escape code but bold where
styling is allowed."""

from __future__ import annotations

import io

import pytest

from sklambda_infra import progress
from sklambda_infra.progress import Progress


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_in_a_log_each_step_is_one_plain_line_with_its_duration():
    # GIVEN a progress on a plain stream (a pipe or a file)
    clock, out = FakeClock(), io.StringIO()
    shown = Progress("publish", out, clock=clock)
    # WHEN two steps run, 2.1 s and 0.25 s long, the second told twice
    shown.step("checking the data")
    clock.now += 2.1
    shown.step("signing")
    shown.step("signing")
    clock.now += 0.25
    shown.done()
    # THEN each is one line, written as it starts and completed as it ends; no carriage return, no escape code
    assert out.getvalue() == "publish: checking the data... done in 2.1 s\npublish: signing... done in 0.2 s\n"


def test_a_note_during_a_step_keeps_the_log_line_whole():
    # GIVEN a step running in a log
    clock, out = FakeClock(), io.StringIO()
    shown = Progress("publish", out, clock=clock)
    shown.step("building the runtime")
    # WHEN the build logs a line, then the step ends
    shown.note("pip: installing 23 wheels")
    clock.now += 15
    shown.done()
    # THEN the step's line is ended before the note and repeated with its result after it
    assert out.getvalue().splitlines() == [
        "publish: building the runtime...",
        "pip: installing 23 wheels",
        "publish: building the runtime... done in 15.0 s",
    ]


def test_a_step_that_raises_ends_as_failed_and_the_error_propagates():
    # GIVEN a stage around a block that raises
    clock, out = FakeClock(), io.StringIO()
    shown = Progress("layer", out, clock=clock)
    # WHEN it raises THEN the error propagates and the line says the step failed
    with pytest.raises(RuntimeError), shown.stage("installing"):
        clock.now += 3
        raise RuntimeError("pip failed")
    assert out.getvalue() == "layer: installing... failed in 3.0 s\n"


def test_on_a_terminal_the_step_is_redrawn_in_place_without_escape_codes():
    # GIVEN a progress on a terminal, redrawn only when told (no timer)
    clock, out = FakeClock(), FakeTTY()
    shown = Progress("publish", out, clock=clock, live=True, redraw_seconds=None)
    # WHEN a step starts, a log line comes 4 s later, and the step ends
    shown.step("parity gate")
    clock.now += 4
    shown.note("a log line")
    shown.done()
    # THEN the line is rewritten with carriage returns, ends with its result and a newline, and holds no ESC
    text = out.getvalue()
    assert text.split("\r") == [
        "",
        "publish: parity gate... 0.0 s",
        " " * len("publish: parity gate... 0.0 s"),  # the line cleared for the note
        "a log line\n",
        "publish: parity gate... 4.0 s",
        "publish: parity gate... done in 4.0 s\n",
    ]
    assert "\x1b" not in text


@pytest.mark.parametrize(
    ("tty", "environment", "expected"),
    [
        (True, {}, True),
        (True, {"NO_COLOR": "1"}, False),
        (True, {"NO_COLOR": ""}, True),  # no-color.org: only a non-empty value turns styling off
        (True, {"TERM": "dumb"}, False),
        (False, {}, False),
    ],
)
def test_bold_is_used_only_on_a_terminal_that_allows_styling(monkeypatch, tty, environment, expected):
    # GIVEN a stream that is or is not a terminal, and NO_COLOR / TERM as given
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    stream = FakeTTY() if tty else io.StringIO()
    # WHEN a heading is made bold for it
    heading = progress.bold("== Publishing", stream)
    # THEN it carries SGR bold only where styling is allowed
    assert (heading == "\x1b[1m== Publishing\x1b[0m") is expected
    assert (heading == "== Publishing") is not expected


def test_a_dumb_terminal_gets_plain_lines(monkeypatch):
    # GIVEN a TTY whose TERM is dumb (it cannot redraw a line)
    monkeypatch.setenv("TERM", "dumb")
    # WHEN progress is made for it THEN it is not live
    assert Progress("publish", FakeTTY()).live is False
