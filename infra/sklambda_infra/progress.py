"""Progress of long steps on stderr, and the rule for when terminal styling may be used.

A step ("publish: checking the training data") is shown two ways, chosen by the stream:

- on a terminal (the stream is a TTY and TERM is not ``dumb``): one line redrawn in place with the seconds elapsed,
  then ``... done in 2.1 s``. It is redrawn with a carriage return and spaces, never an escape code;
- anywhere else (a pipe, a file, CI): plain lines, ``publish: checking the training data... done in 2.1 s``. The
  step's text is written when it starts (so a log shows what is running) and the result completes the line.

Progress goes to stderr so that stdout stays parseable (``--json``). ``styled`` says whether bold text may be
written: on a terminal only, and never when NO_COLOR is set to a non-empty value (https://no-color.org).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TextIO

NO_COLOR = "NO_COLOR"  # set and non-empty: no colour or other styling (https://no-color.org)
TERM = "TERM"  # "dumb": a terminal that cannot redraw a line (Emacs shell, some CI runners)
REDRAW_SECONDS = 0.2  # how often a live line's elapsed time is redrawn
BOLD, RESET = "\033[1m", "\033[0m"  # SGR 1 and 0 (ECMA-48): used only where `styled` allows


def is_terminal(stream: TextIO) -> bool:
    """Whether `stream` is an interactive terminal that can redraw a line: a TTY, and TERM is not "dumb"."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):  # a closed or stream-like object without a file descriptor
        return False
    return tty and os.environ.get(TERM, "") != "dumb"


def styled(stream: TextIO) -> bool:
    """Whether escape codes (bold) may be written to `stream`: a terminal (is_terminal) and NO_COLOR unset or empty."""
    return is_terminal(stream) and not os.environ.get(NO_COLOR, "")


def bold(text: str, stream: TextIO | None = None) -> str:
    """`text` in bold when `stream` (default stdout) is styled, else unchanged: a heading that a log shows as text."""
    return f"{BOLD}{text}{RESET}" if styled(stream or sys.stdout) else text


def seconds(elapsed: float) -> str:
    """Elapsed seconds as shown: "0.4 s", "12.3 s", "95 s"."""
    return f"{elapsed:.0f} s" if elapsed >= 60 else f"{elapsed:.1f} s"


class Progress:
    """The steps of one command, shown on `stream` (default stderr) with the prefix `label` ("publish").

    `live`: redraw the current step in place (default: is_terminal(stream)), every `redraw_seconds` (None: only when
    a step starts or ends). `clock`: monotonic seconds (tests pass a fake). One step runs at a time: `step(text)`
    ends the current one (done) and starts the next, which makes `step` a stage hook for code that must not print
    (sklambda.publishing.publish(on_stage=...)). `note(line)` writes a whole line (a log line) without breaking the
    step shown. Thread-safe.
    """

    def __init__(
        self,
        label: str,
        stream: TextIO | None = None,
        *,
        live: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        redraw_seconds: float | None = REDRAW_SECONDS,
    ) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.live = is_terminal(self.stream) if live is None else live
        self._clock = clock
        self._redraw = redraw_seconds
        self._lock = threading.RLock()
        self._text: str | None = None  # the current step
        self._started = 0.0
        self._open = False  # a line of the current step is on the screen/log, not yet ended by a newline
        self._width = 0  # characters of the live line last drawn (cleared by spaces on redraw)
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    # -- steps ---------------------------------------------------------------------------------------------------

    def step(self, text: str) -> None:
        """End the current step as done and start `text`; the step already shown, when told again, goes on."""
        with self._lock:
            if text == self._text:
                return
            self._end("done")
            self._text, self._started = text, self._clock()
            self._draw()
        if self.live and self._redraw is not None and self._ticker is None:
            self._stop.clear()
            self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
            self._ticker.start()

    def done(self, outcome: str = "done") -> None:
        """End the current step (if any) with `outcome` ("done", "failed", "skipped") and its elapsed time."""
        with self._lock:
            self._end(outcome)
        self._halt()

    def fail(self) -> None:
        """End the current step as failed (the error itself is the caller's to report)."""
        self.done("failed")

    @contextlib.contextmanager
    def stage(self, text: str) -> Iterator[None]:
        """One step around a block: done when it returns, failed when it raises (the exception propagates)."""
        self.step(text)
        try:
            yield
        except BaseException:
            self.fail()
            raise
        self.done()

    @contextlib.contextmanager
    def steps(self) -> Iterator[Callable[[str], None]]:
        """Yield `step`, a stage hook; the last step ends done when the block returns, failed when it raises."""
        try:
            yield self.step
        except BaseException:
            self.fail()
            raise
        self.done()

    def note(self, line: str) -> None:
        """Write `line` whole (e.g. a build's log line) and show the current step again after it."""
        with self._lock:
            if self._open:
                self._write("\n" if not self.live else "\r" + " " * self._width + "\r")
                self._open, self._width = False, 0
            self._write(line + "\n")
            if self._text is not None and self.live:
                self._draw()

    # -- drawing -------------------------------------------------------------------------------------------------

    def _head(self) -> str:
        return f"{self.label}: {self._text}..." if self.label else f"{self._text}..."

    def _draw(self) -> None:
        """Show the current step: redrawn with its elapsed time when live, else its text once."""
        if self._text is None:
            return
        if self.live:
            line = f"{self._head()} {seconds(self._clock() - self._started)}"
            self._write("\r" + line + " " * max(0, self._width - len(line)))
            self._width = len(line)
            self._open = True
        elif not self._open:
            self._write(self._head())
            self._open = True

    def _end(self, outcome: str) -> None:
        if self._text is None:
            return
        result = f"{outcome} in {seconds(self._clock() - self._started)}"
        if self.live:
            line = f"{self._head()} {result}"
            self._write("\r" + line + " " * max(0, self._width - len(line)) + "\n")
        elif self._open:
            self._write(f" {result}\n")
        else:  # a note ended the step's line: repeat its text with the result
            self._write(f"{self._head()} {result}\n")
        self._text, self._open, self._width = None, False, 0

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed pipe must not turn progress into the command's failure
            pass

    def _tick(self) -> None:
        while not self._stop.wait(self._redraw or REDRAW_SECONDS):
            with self._lock:
                if self._text is not None:
                    self._draw()

    def _halt(self) -> None:
        ticker, self._ticker = self._ticker, None
        if ticker is not None and ticker is not threading.current_thread():
            self._stop.set()
            ticker.join()
