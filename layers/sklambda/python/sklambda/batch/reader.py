"""Streaming an object into records: bounded memory whatever the file size.

Bytes come from the S3 StreamingBody in blocks (gunzipped incrementally with zlib, output bounded per call),
are cut into physical lines, and lines into records:
- a record is one physical line, except that in CSV a line with an odd number of '"' opens a quoted field
  and the record continues over the next lines until the quotes balance (RFC 4180 escapes '"' as '""', so
  the parity is exact for well-formed CSV);
- blank lines are skipped (they are not rows); a trailing '\\r' is dropped (CRLF files);
- a record longer than max_line_bytes is rejected: its first max_line_bytes are kept for the report, the
  rest is discarded up to the next newline without being held in memory (for an unterminated quote, the
  record is cut at the first line boundary past the limit and reading resumes there).
Each record keeps the 1-based physical line number where it starts.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import accumulate

from sklambda.batch.errors import ChunkingUnsafe

BLOCK_BYTES = 1 << 20


class CorruptInput(Exception):
    """The byte stream cannot be read further (corrupt or truncated gzip)."""


@dataclass
class RecordBatch:
    """Records as read (bytes, without line ending), the 1-based physical line each starts on, the byte offset of
    its first byte in the (decompressed) object, and those the reader already rejected, by index."""

    records: list[bytes] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    # index in records -> why the reader already rejected it (too long, unterminated quote)
    rejected: dict[int, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.records)


def raw_blocks(body, *, gzip: bool, counter: list[int] | None = None) -> Iterator[bytes]:
    """Decompressed blocks of at most BLOCK_BYTES each (a gzip bomb cannot balloon one block)."""
    counter = counter if counter is not None else [0]
    if not gzip:
        while block := body.read(BLOCK_BYTES):
            counter[0] += len(block)
            yield block
        return
    d = zlib.decompressobj(wbits=47)
    seen_member = False
    while block := body.read(BLOCK_BYTES):
        counter[0] += len(block)
        data = block
        while True:
            if d.eof:  # a new gzip member follows (concatenated gzip files are one stream)
                d = zlib.decompressobj(wbits=47)
            try:
                out = d.decompress(data, BLOCK_BYTES)
            except zlib.error as e:
                raise CorruptInput(f"the gzip data is corrupt ({e})") from None
            seen_member = True
            if out:
                yield out
            data = d.unused_data if d.eof else d.unconsumed_tail
            if not data and (d.eof or len(out) < BLOCK_BYTES):
                break
    if seen_member and not d.eof:
        raise CorruptInput("the gzip data is truncated (it ends before the end of the compressed stream)")


class RecordReader:
    """Turns decompressed blocks into RecordBatches of up to `batch_rows` records."""

    def __init__(
        self,
        blocks: Iterable[bytes],
        *,
        batch_rows: int,
        max_line_bytes: int,
        quoted: bool,
        allow_multiline: bool = True,
        start_offset: int = 0,
    ) -> None:
        """`start_offset`: the byte offset in the object of the first block's first byte (a byte range's start)."""
        self._blocks = iter(blocks)
        self.batch_rows = batch_rows
        self.max_line = max_line_bytes
        self.quoted = quoted
        self.allow_multiline = allow_multiline
        self.next_line = 1  # physical line number of the next line to start
        self.physical_lines = 0
        self._leftover = b""
        self._skipping = False  # inside an over-long line: discard up to the next newline
        self._pending: list[bytes] | None = None  # lines of an open quoted record
        self._pending_line = 0
        self._pending_offset = 0
        self._pending_len = 0
        self._fed = start_offset  # offset of the byte after the last block fed
        self._out = RecordBatch()

    # -- output -------------------------------------------------------------------------------------
    def _emit(self, record: bytes, line: int, offset: int, reason: str | None = None) -> None:
        out = self._out
        if reason is not None:
            out.rejected[len(out.records)] = reason
        out.records.append(record)
        out.lines.append(line)
        out.offsets.append(offset)

    def __iter__(self) -> Iterator[RecordBatch]:
        for block in self._blocks:
            self._feed(block)
            while len(self._out) >= self.batch_rows:
                yield self._take(self.batch_rows)
        self._finish()
        while len(self._out):
            yield self._take(self.batch_rows)

    def _take(self, n: int) -> RecordBatch:
        out = self._out
        if len(out) <= n:
            self._out = RecordBatch()
            return out
        head = RecordBatch(
            out.records[:n], out.lines[:n], out.offsets[:n], {i: r for i, r in out.rejected.items() if i < n}
        )
        self._out = RecordBatch(
            out.records[n:], out.lines[n:], out.offsets[n:], {i - n: r for i, r in out.rejected.items() if i >= n}
        )
        return head

    # -- input --------------------------------------------------------------------------------------
    def _feed(self, block: bytes) -> None:
        self._fed += len(block)
        if self._skipping:
            nl = block.find(b"\n")
            if nl < 0:
                return
            self._skipping = False
            self._advance(1)
            block = block[nl + 1 :]
        buf = self._leftover + block if self._leftover else block
        cut = buf.rfind(b"\n")
        if cut < 0:
            self._leftover = buf
            self._check_leftover()
            return
        self._leftover = buf[cut + 1 :]
        self._lines(buf[: cut + 1], self._fed - len(buf))
        self._check_leftover()

    def _check_leftover(self) -> None:
        if len(self._leftover) > self.max_line:
            # One line (or an open quoted record) longer than allowed: reject it without reading it whole.
            if self._pending is not None:
                self._reject_pending()
            else:
                self._emit(
                    self._leftover[: self.max_line], self.next_line, self._fed - len(self._leftover), self._too_long()
                )
            self._leftover = b""
            self._skipping = True

    def _too_long(self) -> str:
        return f"the row is longer than {self.max_line} bytes (the limit); it was not read"

    def _advance(self, n: int) -> None:
        self.next_line += n
        self.physical_lines += n

    def _lines(self, buf: bytes, start: int) -> None:
        """Cut `buf` (whole lines, ending with a newline; its first byte at offset `start`) into records."""
        lines = buf.split(b"\n")
        lines.pop()  # buf ends with a newline
        offsets = list(accumulate((len(ln) + 1 for ln in lines[:-1]), initial=start))
        if b"\r" in buf:
            lines = [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]
        fast = (
            self._pending is None
            and not (self.quoted and b'"' in buf)
            and (len(buf) <= self.max_line or max(map(len, lines)) <= self.max_line)
            and b"" not in lines
        )
        if fast:
            first = self.next_line
            self._out.records.extend(lines)
            self._out.lines.extend(range(first, first + len(lines)))
            self._out.offsets.extend(offsets)
            self._advance(len(lines))
            return
        for ln, offset in zip(lines, offsets, strict=True):
            self._line(ln, offset)

    def _line(self, ln: bytes, offset: int) -> None:
        line_no = self.next_line
        self._advance(1)
        if self._pending is not None:
            self._pending.append(ln)
            self._pending_len += len(ln) + 1
            if ln.count(b'"') % 2:
                record = b"\n".join(self._pending)
                start = self._pending_line
                self._pending = None
                self._emit(record, start, self._pending_offset)
            elif self._pending_len > self.max_line:
                self._reject_pending()
            return
        if not ln:
            return
        if len(ln) > self.max_line:
            self._emit(ln[: self.max_line], line_no, offset, self._too_long())
            return
        if self.quoted and ln.count(b'"') % 2:
            if not self.allow_multiline:
                raise ChunkingUnsafe(
                    f"line {line_no} of this byte range opens a quoted field that spans lines; "
                    "score the whole object in one pass"
                )
            self._pending = [ln]
            self._pending_line = line_no
            self._pending_offset = offset
            self._pending_len = len(ln)
            return
        self._emit(ln, line_no, offset)

    def _reject_pending(self) -> None:
        record = b"\n".join(self._pending or [])[: self.max_line]
        self._emit(
            record,
            self._pending_line,
            self._pending_offset,
            f"a quoted field is not closed within {self.max_line} bytes (the row limit); the row was not read",
        )
        self._pending = None

    def _finish(self) -> None:
        if self._skipping:
            self._advance(1)
        elif self._leftover:
            tail, self._leftover = self._leftover, b""
            self._lines(tail + b"\n", self._fed - len(tail))
        if self._pending is not None:
            record = b"\n".join(self._pending)[: self.max_line]
            reason = "a quoted field is not closed before the end of the file"
            self._emit(record, self._pending_line, self._pending_offset, reason)
            self._pending = None
