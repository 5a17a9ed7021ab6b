"""What the demo's parts share: printing a step, an HTTP call to the local API, a table, waiting for a batch
summary, and the model-quality windows (QualityDemo) the penguins and churn parts both run."""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

from sklambda_infra.progress import bold


def say(text: str) -> None:
    print("\n" + bold(f"== {text}", sys.stdout), flush=True)  # bold only on a terminal: a piped log stays plain


def http(method: str, url: str, *, api_key: str | None, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    if api_key:
        req.add_header("x-api-key", api_key)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def wait_for_summary(s3: Any, bucket: str, key: str, timeout: float = 60.0) -> dict:
    """The local stack's SQS poller runs the batch function; its summary appears when the job is done."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except s3.exceptions.NoSuchKey:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no s3://{bucket}/{key} after {timeout:.0f} s; see .sklambda/demo.log") from None
            time.sleep(0.2)


def table(rows: list[dict], columns: list[str]) -> str:
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    lines = ["  " + "  ".join(c.ljust(widths[c]) for c in columns)]
    lines.append("  " + "  ".join("-" * widths[c] for c in columns))
    lines += ["  " + "  ".join(str(r[c]).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


class QualityWindow:
    """One demo window: its [start, end), the positions of the birds served in it and their prediction ids."""

    def __init__(self, label: str, start: datetime, positions: Any, ids: list[str]) -> None:
        self.label, self.start, self.positions, self.ids = label, start, positions, ids
        self.window: Any = None


class QualityDemo:
    """The model-quality part of the demo: windows of served predictions with ids, labels sent through the API and
    a label file, and the quality check invoked as its function (QualityCheckFunction) on each window."""

    def __init__(self, api, key, name, X, s3, data_bucket, stack, registry, verifier) -> None:
        from sklambda.monitoring.model_quality.degradation import DegradationConfig

        self.api, self.key, self.name, self.s3, self.bucket = api, key, name, s3, data_bucket
        self.stack, self.registry, self.verifier = stack, registry, verifier
        self.X = X
        self.min_rows = DegradationConfig().min_labeled_rows
        self.start = datetime.now(UTC)
        self.count = 0

    def window(self, label: str, positions: Any) -> QualityWindow:
        """Serve the birds at `positions` with ids of our own, wait for their capture, and close the window."""
        from sklambda.monitoring.windows import Window, read_capture
        from sklambda.registry.schema import to_records
        from sklambda.registry.signing import read_card

        self.count += 1
        w = QualityWindow(label, self.start, positions, [f"w{self.count}-{i:04d}" for i in range(len(positions))])
        rows = to_records(self.X.iloc[positions].reset_index(drop=True))
        for i in range(0, len(rows), 500):
            status, body = http("POST", f"{self.api}/models/{self.name}/predict", api_key=self.key,
                                body={"instances": rows[i : i + 500], "inference_ids": w.ids[i : i + 500]})  # fmt: skip
            assert status == 200, body
        version = self.registry.resolve(self.name, alias="production")
        served, _ = read_card(self.registry, self.verifier, self.name, version)
        probe = Window(w.start, datetime.now(UTC) + timedelta(seconds=60))
        deadline = time.monotonic() + 30
        while read_capture(self.s3, self.bucket, served, probe).rows < len(rows) and time.monotonic() < deadline:
            time.sleep(0.2)
        return w

    def label_window(self, w: QualityWindow, y: Any, *, via_file: bool = False) -> None:
        """Send the true labels of w's birds: half through POST /feedback, half as a CSV under feedback/ if
        `via_file` (else all through the API)."""
        labels = [{"id": i, "label": str(v)} for i, v in zip(w.ids, y.iloc[w.positions], strict=True)]
        half = len(labels) // 2 if via_file else len(labels)
        status, body = http("POST", f"{self.api}/models/{self.name}/feedback", api_key=self.key,
                            body={"labels": labels[:half]})  # fmt: skip
        assert status in (200, 201), body
        shown = f"  {w.label:<{LABEL_WIDTH}} POST /models/{self.name}/feedback: {status}, {body['accepted']} labels"
        if via_file:
            path = f"{w.ids[0][:2]}-labels.csv"
            text = "inference_id,label\n" + "".join(f"{r['id']},{r['label']}\n" for r in labels[half:])
            text += "w1-9999,female\nw1-0000,unicorn\n"  # an id never served is stored; a class the model lacks is not
            self.s3.put_object(Bucket=self.bucket, Key=f"feedback/{self.name}/{path}", Body=text.encode())
            summary = wait_for_summary(self.s3, self.bucket, f"ground-truth/summaries/{self.name}/{path}.summary.json")
            shown += (f"; feedback/{self.name}/{path}: {summary['rows_read']} rows, {summary['rows_accepted']} stored "
                      f"(one for an id never served: it joins nothing), "
                      f"{summary['rows_rejected']} rejected")  # fmt: skip
            errors = self.s3.get_object(Bucket=self.bucket, Key=summary["outputs"]["errors"])["Body"].read().decode()
            for line in errors.splitlines():
                entry = json.loads(line)
                reasons = "; ".join(f"{r['field'] or 'row'}: {r['message']}" for r in entry["reasons"])
                shown += f"\n  {'':<{LABEL_WIDTH}}   line {entry['line']}: {reasons}"
        print(shown)

    def close(self, w: QualityWindow) -> None:
        """End w at the next whole second, and wait for that moment: the next window starts there, so none shares a
        label or a prediction with another, and reports (named by their window's end) never collide."""
        from sklambda.monitoring.windows import Window

        if w.window is None:
            # Reports are named by their window's end to the second: at least a second after the window's start.
            end = max(datetime.now(UTC), w.start + timedelta(seconds=1)).replace(microsecond=0) + timedelta(seconds=1)
            w.window = Window(w.start, end)
            time.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()))
            self.start = end

    def check(self, w: QualityWindow, note: str = "") -> dict:
        """Close w, invoke the quality check (QualityCheckFunction) on it and print its outcome."""
        self.close(w)
        end = w.window.end
        event = {"model": self.name, "window_hours": (end - w.start).total_seconds() / 3600, "end": end.isoformat()}
        out = self.stack.invoke("QualityCheckFunction", event)
        result = out["results"][0]
        assert result["status"] == "checked", result
        realized = result["metrics"]
        estimated = result.get("estimated_metrics") or {}

        def shown(metrics: dict, name: str) -> str:
            m = metrics.get(name)
            if not m or m.get("value") is None:
                return "-"
            return f"{m['value']:.3f} [{m['lower']:.3f}, {m['upper']:.3f}]"

        # Each is judged against its own kind on the holdout: realized against realized, the estimate against the
        # estimate the same calibration maps give on the holdout.
        refs = [(kind, m["accuracy"].get("reference")) for kind, m in (("realized", realized), ("estimated", estimated))
                if m.get("accuracy")]  # fmt: skip
        held = ", ".join(f"{kind} {ref:.3f}" for kind, ref in refs if ref is not None)
        print(f"  {w.label:<{LABEL_WIDTH}} quality: {result['verdict']} ({result['labeled_rows']} labeled, join rate "
              f"{result['join_rate']:.1%}); accuracy realized {shown(realized, 'accuracy')}, estimated "
              f"{shown(estimated, 'accuracy')} (holdout: {held}); estimate {result['estimated_verdict']}")  # fmt: skip
        if note:
            print(f"  {'':<{LABEL_WIDTH}} {note}")
        if result["degraded_metrics"]:
            print(f"  {'':<{LABEL_WIDTH}} degraded (realized): {', '.join(result['degraded_metrics'])}")
        dropped = [n for n, m in estimated.items() if m.get("verdict") == "degraded"]
        if dropped:
            print(f"  {'':<{LABEL_WIDTH}} degraded (estimated): {', '.join(dropped)}")
        flagged = sorted({f["feature"] for f in result.get("segments_flagged") or []})
        if flagged:
            # The window's report has each group's metrics: name the groups behind the flagged gaps.
            report = json.loads(self.s3.get_object(Bucket=self.bucket, Key=result["reports"]["json"])["Body"].read())
            for feature in report["segments"]["features"]:
                if feature["name"] in flagged:
                    shares = ", ".join(
                        f"{g['group']} {g['metrics']['accuracy']:.2f}"
                        for g in feature["groups"]
                        if g["metrics"].get("accuracy") is not None
                    )
                    print(f"  {'':<{LABEL_WIDTH}} accuracy per {feature['name']} (gap flagged): {shares}")
        if result["model_degraded"]:
            run = result["state"]["realized"]["consecutive_degraded"]
            print(f"  {'':<{LABEL_WIDTH}} model degraded ({run} windows in a row, pooled drop confirmed): "
                  f"PerformanceDegraded event {result.get('event_id')}")  # fmt: skip
        return result


LABEL_WIDTH = 24
# Predictions per model-quality window: above the 500 labeled rows a window needs to be judged.
QUALITY_ROWS = 600
