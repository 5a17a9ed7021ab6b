"""Terminal or log: progress redraws one line on a real terminal (a pty) and writes plain lines into a pipe, and the
Makefile's install step shows pip's progress only on a terminal."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Two steps and a bold heading, as a command shows them; the timer is off so the output does not depend on time.
SCRIPT = """
import sys
from sklambda_infra.progress import Progress, bold
print(bold("== heading"), flush=True)
shown = Progress("publish", redraw_seconds=None)
shown.step("checking the data")
shown.step("parity gate")
shown.done()
"""


def run_attached(command: list[str], *, terminal: bool, env: dict[str, str] | None = None) -> str:
    """Run `command` with stdout and stderr on a new pty (`terminal`) or a pipe; return what it wrote."""
    environment = {**os.environ, "TERM": "xterm", **(env or {})}
    environment.pop("NO_COLOR", None) if "NO_COLOR" not in (env or {}) else None
    if not terminal:
        done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60, check=True)
        return done.stdout + done.stderr
    main, secondary = pty.openpty()
    with subprocess.Popen(command, env=environment, stdout=secondary, stderr=secondary, stdin=subprocess.DEVNULL) as p:
        os.close(secondary)
        chunks = []
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # EIO: the child closed the pty
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert p.wait(timeout=60) == 0
    os.close(main)
    return b"".join(chunks).decode().replace("\r\n", "\n")  # the pty's line discipline turns \n into \r\n


def test_on_a_terminal_steps_are_redrawn_in_place_and_headings_are_bold():
    # WHEN the steps run with stdout and stderr on a pty
    text = run_attached([sys.executable, "-c", SCRIPT], terminal=True)
    # THEN the heading is bold and each step's line is rewritten with a carriage return until it is done
    assert "\x1b[1m== heading\x1b[0m" in text
    assert re.search(r"\rpublish: checking the data\.\.\. \d+\.\d s", text)
    assert re.search(r"\rpublish: checking the data\.\.\. done in \d+\.\d s *\n", text)
    assert re.search(r"\rpublish: parity gate\.\.\. done in \d+\.\d s *\n", text)


@pytest.mark.parametrize(("terminal", "env"), [(False, {}), (True, {"TERM": "dumb"}), (True, {"NO_COLOR": "1"})])
def test_in_a_pipe_or_on_a_dumb_terminal_output_is_plain(terminal, env):
    # WHEN the same steps run into a pipe, on a dumb terminal, or on a terminal with NO_COLOR
    text = run_attached([sys.executable, "-c", SCRIPT], terminal=terminal, env=env)
    # THEN there is no escape code; a pipe or dumb terminal also gets one plain line per step
    assert "\x1b" not in text
    if env.get("NO_COLOR"):
        assert "== heading\n" in text
    else:
        lines = text.splitlines()
        assert lines[0] == "== heading" and "\r" not in text
        assert [line.split(" done in ")[0] for line in lines[1:]] == [
            "publish: checking the data...",
            "publish: parity gate...",
        ]


def pip_output_statement() -> str:
    """The shell statement of the Makefile's PIP_OUTPUT, which sets $pip_output."""
    line = next(x for x in (ROOT / "Makefile").read_text().splitlines() if x.startswith("PIP_OUTPUT ="))
    return line.split("=", 1)[1].strip()


@pytest.mark.parametrize(("terminal", "expected"), [(True, "--progress-bar=on"), (False, "--quiet --progress-bar=off")])
def test_the_install_step_shows_pips_progress_only_on_a_terminal(terminal, expected):
    # WHEN the install step's pip options are worked out with make's stdout on a terminal, then in a pipe
    text = run_attached(["sh", "-c", f'{pip_output_statement()}; echo "$pip_output"'], terminal=terminal)
    # THEN pip shows its progress on the terminal and is quiet in a log
    assert text.strip() == expected
