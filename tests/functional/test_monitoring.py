"""The drift check over captured predictions in S3: window selection, reports, consecutive-window state, the monitoring
page."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from sklambda.errors import ModelRefused
from sklambda.monitoring import drift_check
from sklambda.monitoring.drift_check import StateStore, run_drift_check
from sklambda.monitoring.windows import Window
from sklambda_infra import sample
from tests.support import HtmlPage, store_built, write_capture

DATA_BUCKET = "sklambda-data-test"
END = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
WINDOW = Window.ending(END, hours=24)


@pytest.fixture
def data_bucket(registry_env):
    registry_env.s3().create_bucket(Bucket=DATA_BUCKET)
    return registry_env.s3()


def capture(s3, model, X, *, version="1", at=END - timedelta(hours=1), name="part-0"):
    write_capture(s3, DATA_BUCKET, model, X, at=at, version=version, part=name)


def check(registry_env):
    return run_drift_check("churn", registry=registry_env.registry, data_bucket=DATA_BUCKET, window=WINDOW,
                           verifier=registry_env.verifier)  # fmt: skip


def test_clean_window_is_no_drift_with_json_and_html_reports(registry_env, published, data_bucket, logistic_model):
    # GIVEN a day of captured predictions drawn like the training data
    X, _ = sample.churn_data(3000, seed=11)
    capture(data_bucket, logistic_model, X)
    # WHEN the drift check runs over that day
    result = check(registry_env)
    # THEN there is no drift, and both reports and the state are in S3
    assert result.report.verdict == "no_drift" and not result.model_drifted
    assert result.report.rows == 3000
    doc = json.loads(data_bucket.get_object(Bucket=DATA_BUCKET, Key=result.report_keys["json"])["Body"].read())
    assert doc["verdict"] == "no_drift" and doc["model"] == {"name": "churn", "version": "1"}
    html = data_bucket.get_object(Bucket=DATA_BUCKET, Key=result.report_keys["html"])["Body"].read().decode()
    assert "monthly_charges" in html and "no_drift" in html
    assert StateStore(data_bucket, DATA_BUCKET).load("churn") == result.state
    # AND the report says the card (whose baseline is the reference) was verified with the trusted key
    verified = {"verified": True, "key_id": registry_env.signing_key_id, "algorithm": "ECDSA_SHA_256"}
    assert doc["card_signature"] == result.to_dict()["card_signature"] == verified


def test_a_card_forged_after_publishing_is_refused_and_nothing_is_written(
    registry_env, published, data_bucket, logistic_model
):
    # GIVEN captures, and the card's baseline rewritten after publishing (its old signature kept)
    capture(data_bucket, logistic_model, sample.churn_data(500, seed=13)[0])
    key = registry_env.registry.card_key("churn", "1")
    card = json.loads(data_bucket.get_object(Bucket=registry_env.bucket, Key=key)["Body"].read())
    card["baseline"]["features"] = {}
    data_bucket.put_object(Bucket=registry_env.bucket, Key=key, Body=json.dumps(card).encode())
    # WHEN the drift check runs
    with pytest.raises(ModelRefused) as refused:
        check(registry_env)
    # THEN it is refused for its signature, and no report or state was written
    assert refused.value.reason == "bad_signature"
    listed = data_bucket.list_objects_v2(Bucket=DATA_BUCKET, Prefix="reports/")
    assert listed.get("KeyCount", 0) == 0


def test_a_check_asked_not_to_verify_says_so_in_its_report(registry_env, published, data_bucket, logistic_model):
    # GIVEN captures of the published model
    capture(data_bucket, logistic_model, sample.churn_data(500, seed=14)[0])
    # WHEN the check is explicitly run without a verifier
    result = run_drift_check("churn", registry=registry_env.registry, data_bucket=DATA_BUCKET, window=WINDOW,
                             verifier=None)  # fmt: skip
    # THEN the report says plainly that the card was not verified
    doc = json.loads(data_bucket.get_object(Bucket=DATA_BUCKET, Key=result.report_keys["json"])["Body"].read())
    assert doc["card_signature"]["verified"] is False and "not checked" in doc["card_signature"]["note"]


def test_a_shift_must_persist_for_consecutive_windows_before_the_model_is_drifted(
    registry_env, published, data_bucket, logistic_model
):
    # GIVEN captured rows whose monthly charges rose by 15 (plans got dearer)
    X, _ = sample.churn_data(3000, seed=12)
    X["monthly_charges"] = X["monthly_charges"] + 15
    capture(data_bucket, logistic_model, X)
    # WHEN two consecutive checks see it
    first, second = check(registry_env), check(registry_env)
    # THEN each window is drifted on that feature, but only the second declares the model drifted
    assert first.report.verdict == "drift" and "monthly_charges" in first.report.drifted_features
    assert (first.model_drifted, second.model_drifted) == (False, True)


def test_records_of_other_versions_or_outside_the_window_are_ignored(
    registry_env, published, data_bucket, logistic_model
):
    X, _ = sample.churn_data(1000, seed=13)
    capture(data_bucket, logistic_model, X, version="2", name="other-version")
    capture(data_bucket, logistic_model, X, at=END + timedelta(minutes=5), name="after-window")
    capture(data_bucket, logistic_model, X.head(200), name="in-window")
    result = check(registry_env)
    # THEN only the 200 in-window rows of version 1 count: too few to judge
    assert result.report.rows == 200
    assert result.report.verdict == "insufficient_data" and not result.model_drifted


def test_no_raw_identifier_is_read_back_from_the_capture(registry_env, published, data_bucket, logistic_model):
    X, _ = sample.churn_data(600, seed=14)
    capture(data_bucket, logistic_model, X)
    result = check(registry_env)
    assert json.dumps(result.report.to_dict()).count("C01") == 0


def test_lines_in_any_layout_are_read_and_torn_or_foreign_lines_are_skipped(
    registry_env, published, data_bucket, logistic_model
):
    import gzip

    from sklambda.monitoring.windows import capture_prefix, read_capture

    # GIVEN 40 captured rows, then an object holding 5 of the same records re-serialized with other key order
    # (decoded the slow way), a blank line, a torn line, another model's line, and no final newline, gzipped
    X, _ = sample.churn_data(40, seed=13)
    capture(data_bucket, logistic_model, X)
    key = capture_prefix("churn", END.date()) + "part-0"
    records = [
        json.loads(line) for line in data_bucket.get_object(Bucket=DATA_BUCKET, Key=key)["Body"].read().splitlines()
    ]
    reordered = [json.dumps(dict(reversed(list(r.items())))) for r in records[:5]]
    body = "\n".join(
        [*reordered, "", '{"capture":"sklambda/v1","timestamp":"2026-', json.dumps({**records[0], "model": "x"})]
    )
    data_bucket.put_object(
        Bucket=DATA_BUCKET, Key=capture_prefix("churn", END.date()) + "part-1.gz", Body=gzip.compress(body.encode())
    )
    card = registry_env.registry.get_card("churn", "1")
    # WHEN the window is read in full, and sampled to 20 rows
    full = read_capture(data_bucket, DATA_BUCKET, card, WINDOW)
    sampled = read_capture(data_bucket, DATA_BUCKET, card, WINDOW, max_rows=20)
    # THEN every record of the model is read once, whatever its layout, and nothing else
    assert (full.rows, full.rows_in_window, full.estimated) == (45, 45, False)
    assert full.features["age"].tolist() == [*X["age"], *X["age"][:5]]  # objects in key order, lines in order
    # AND the sample holds 20 of them, with the window's size estimated from the lines it visited
    assert sampled.rows == 20 and sampled.estimated
    assert 20 <= sampled.rows_in_window <= 49
    assert set(sampled.features["customer_id"]) <= set(full.features["customer_id"])


def test_records_written_before_prediction_ids_are_read_with_those_that_have_them(
    registry_env, published, data_bucket, logistic_model
):
    from sklambda.monitoring.windows import capture_prefix, read_capture

    # GIVEN 10 captured rows in today's layout (with an inference_id key) and 10 in the layout before ids existed
    X, _ = sample.churn_data(20, seed=17)
    capture(data_bucket, logistic_model, X)
    key = capture_prefix("churn", END.date()) + "part-0"
    records = [
        json.loads(line) for line in data_bucket.get_object(Bucket=DATA_BUCKET, Key=key)["Body"].read().splitlines()
    ]
    assert all("inference_id" in r for r in records)
    old = [{k: v for k, v in r.items() if k != "inference_id"} for r in records[10:]]
    lines = [json.dumps(r, separators=(",", ":")) for r in [*records[:10], *old]]
    data_bucket.put_object(Bucket=DATA_BUCKET, Key=key, Body="\n".join(lines).encode() + b"\n")
    # WHEN the window is read
    window = read_capture(data_bucket, DATA_BUCKET, registry_env.registry.get_card("churn", "1"), WINDOW)
    # THEN every row is read, old and new, none quarantined
    assert (window.rows, window.rows_in_window) == (20, 20)
    assert window.features["age"].tolist() == X["age"].tolist()


def _line_of(record: dict, **features) -> bytes:
    """A capture line in CaptureRecord's own byte layout (so it takes read_capture's fast path) with some values
    replaced, as an older or broken writer could have left it."""
    from sklambda.monitoring.capture import CAPTURE_MARKER

    changed = {**record, "features": {**record["features"], **features}}
    changed.pop("capture", None)
    return json.dumps({"capture": CAPTURE_MARKER, **changed}, separators=(",", ":")).encode()


def test_records_that_cannot_be_used_are_quarantined_counted_and_the_rest_compared(
    registry_env, published, data_bucket, logistic_model
):
    from sklambda.monitoring.windows import capture_prefix

    # GIVEN 300 good captured rows, and next to them lines no check can use: the lone surrogate in "plan",
    # a truncated line, a line with a byte that is not UTF-8, a 5,000-digit integer, wrong types, a number beyond
    # float64, an Infinity token, features that are not an object, a prediction that is an object
    X, _ = sample.churn_data(300, seed=31)
    capture(data_bucket, logistic_model, X)
    key = capture_prefix("churn", END.date()) + "part-0"
    good = json.loads(data_bucket.get_object(Bucket=DATA_BUCKET, Key=key)["Body"].read().splitlines()[0])
    bad = [
        _line_of(good, plan="\ud800"),
        _line_of(good)[:-40],
        _line_of(good, region="north").replace(b"north", b"n\xffrth"),
        _line_of(good, age=0).replace(b'"age":0', b'"age":' + b"9" * 5000),
        _line_of(good, age="forty-two"),
        _line_of(good, plan=7),
        _line_of(good, monthly_income=2 * 10**308),
        _line_of(good, monthly_charges=0.5).replace(b'"monthly_charges":0.5', b'"monthly_charges":Infinity'),
        json.dumps({**good, "features": ["not", "an", "object"]}).encode(),
        json.dumps({**good, "prediction": {"yes": 1}}).encode(),
    ]
    data_bucket.put_object(Bucket=DATA_BUCKET, Key=capture_prefix("churn", END.date()) + "part-1", Body=b"\n".join(bad))
    # WHEN the drift check runs
    result = check(registry_env)
    # THEN it completes: the 300 good rows are compared, the 10 bad lines quarantined and counted by reason
    assert result.report.rows == 300
    assert result.quarantined_records == 10
    reasons = result.quarantine_reasons
    assert reasons["features.plan: not valid Unicode text (a lone surrogate)"] == 1
    assert reasons["line is not a JSON object (torn, truncated or not UTF-8)"] == 3
    assert reasons["features.age: not a number"] == 1
    assert reasons["features.monthly_income: a number beyond the 64-bit float range"] == 1
    assert reasons["features.monthly_charges: not a finite number"] == 1
    # AND both reports are written and say so, without any of the values
    doc = json.loads(data_bucket.get_object(Bucket=DATA_BUCKET, Key=result.report_keys["json"])["Body"].read())
    assert doc["quarantined_records"] == 10 and doc["quarantine_reasons"] == reasons
    assert result.to_dict()["quarantined_records"] == 10
    html = data_bucket.get_object(Bucket=DATA_BUCKET, Key=result.report_keys["html"])["Body"].read().decode()
    assert "10 record(s) quarantined" in html and "forty-two" not in html


# --- the monitoring page ------------------------------------------------------------------------------------------


def check_day(registry_env, day: int, **options):
    """The check of the day-long window ending `day` days after END."""
    window = Window.ending(END + timedelta(days=day), hours=24)
    return run_drift_check("churn", registry=registry_env.registry, data_bucket=DATA_BUCKET, window=window,
                           verifier=registry_env.verifier, **options)  # fmt: skip


def read(s3, key: str) -> bytes:
    return s3.get_object(Bucket=DATA_BUCKET, Key=key)["Body"].read()


def publish_version_2(registry_env, churn_v1) -> None:
    """churn version 2 (version 1's model and baseline, published again) promoted to production."""
    card = churn_v1.card
    artifact = replace(card.artifact, key=card.artifact.key.replace("/versions/1/", "/versions/2/"))
    store_built(registry_env, replace(churn_v1, card=replace(card, version="2", artifact=artifact)), alias="production")


def test_checks_of_consecutive_windows_build_one_page_with_every_window(
    registry_env, published, churn_v1, data_bucket, logistic_model
):
    # GIVEN four consecutive days of captures: two of version 1, then version 2 in production and two days where
    # monthly charges rose by 15
    for day in range(4):
        X, _ = sample.churn_data(600, seed=40 + day)
        if day >= 2:
            X["monthly_charges"] = X["monthly_charges"] + 15
        capture(data_bucket, logistic_model, X, version="1" if day < 2 else "2", at=END + timedelta(days=day, hours=-1))
    # WHEN the drift check runs once per window, version 2 promoted after the second
    results = []
    for day in range(4):
        if day == 2:
            publish_version_2(registry_env, churn_v1)
        results.append(check_day(registry_env, day))
    # THEN every check points at the same page, beside its reports
    page_key = "reports/drift/churn/index.html"
    assert {r.report_keys["page"] for r in results} == {page_key} and not any(r.page_error for r in results)
    page = HtmlPage(read(data_bucket, page_key).decode())
    # AND the page has the four windows, in order, in every chart, with their versions, and links to each report
    ends = [(END + timedelta(days=day)).isoformat() for day in range(4)]
    for chart in ("verdicts", "feature-0", "feature-5"):
        assert [p["data-window"] for p in page.points[chart]] == ends, chart
    assert [r.report.verdict for r in results] == ["no_drift", "no_drift", "drift", "drift"]
    assert [r.model_drifted for r in results] == [False, False, False, True]
    names = sorted(r.report_keys[kind].rsplit("/", 1)[1] for r in results for kind in ("html", "json"))
    assert sorted(link for link in page.links() if not link.startswith("../")) == names
    text = " ".join(page.text)
    assert "v1" in text and "v2" in text and "monthly_charges" in text
    # AND the history beside it holds the same windows
    history = json.loads(read(data_bucket, results[-1].report_keys["history"]))
    assert [w["window"]["end"] for w in history["windows"]] == ends
    assert [w["model_version"] for w in history["windows"]] == ["1", "1", "2", "2"]
    # AND each report states its window and baseline, and links the page
    doc = json.loads(read(data_bucket, results[-1].report_keys["json"]))
    assert doc["window"] == {
        "start": (END + timedelta(days=2)).isoformat(),
        "end": ends[-1],
        "end_exclusive": True,
        "hours": 24.0,
        "rows_in_window": 600,
        "rows_in_window_estimated": False,
        "rows_compared": 600,
    }
    card = registry_env.registry.get_card("churn", "2")
    assert doc["baseline"] == {"model": "churn", "version": "2", "published_at": card.created_at}
    assert doc["monitoring_page"] == {"key": page_key, "href": "index.html"}
    assert doc["prediction_distribution"]["type"] == "classification"
    html = HtmlPage(read(data_bucket, results[-1].report_keys["html"]).decode())
    assert "index.html" in html.links() and "the end is not in it" in "".join(html.text)


def capture_days(data_bucket, model, *, days: int, seed: int) -> None:
    """500 captured churn rows an hour before the end of each of `days` daily windows (seeds seed, seed + 1, ...)."""
    for day in range(days):
        capture(data_bucket, model, sample.churn_data(500, seed=seed + day)[0], at=END + timedelta(days=day, hours=-1))


def test_the_page_keeps_the_last_n_windows_and_a_recheck_replaces_its_window(
    registry_env, published, data_bucket, logistic_model
):
    # GIVEN three days of captures
    capture_days(data_bucket, logistic_model, days=3, seed=50)
    # WHEN each day is checked with a history of two windows, and the last day is checked again
    for day in (0, 1, 2, 2):
        result = check_day(registry_env, day, history_windows=2)
    # THEN the page and the history have the last two windows, once each
    page = HtmlPage(read(data_bucket, result.report_keys["page"]).decode())
    ends = [(END + timedelta(days=day)).isoformat() for day in (1, 2)]
    assert [p["data-window"] for p in page.points["verdicts"]] == ends
    history = json.loads(read(data_bucket, result.report_keys["history"]))
    assert [w["window"]["end"] for w in history["windows"]] == ends


def test_a_missing_or_unreadable_history_is_rebuilt_from_the_reports(
    registry_env, published, data_bucket, logistic_model
):
    # GIVEN two checked days whose history was then deleted, as before the page existed
    capture_days(data_bucket, logistic_model, days=3, seed=60)
    first = check_day(registry_env, 0)
    check_day(registry_env, 1)
    data_bucket.delete_object(Bucket=DATA_BUCKET, Key=first.report_keys["history"])
    # WHEN the third day is checked
    third = check_day(registry_env, 2)
    # THEN the page has all three windows, the first two read back from their reports
    page = HtmlPage(read(data_bucket, third.report_keys["page"]).decode())
    assert len(page.points["verdicts"]) == 3
    # AND a history that is not JSON is rebuilt the same way
    data_bucket.put_object(Bucket=DATA_BUCKET, Key=third.report_keys["history"], Body=b"{torn")
    again = check_day(registry_env, 2)
    assert len(json.loads(read(data_bucket, again.report_keys["history"]))["windows"]) == 3


def test_a_page_that_cannot_be_written_leaves_the_reports_and_verdict_standing(
    registry_env, published, data_bucket, logistic_model, monkeypatch
):
    # GIVEN captures, and a page that fails to render
    capture(data_bucket, logistic_model, sample.churn_data(500, seed=70)[0])

    def broken(*args, **kwargs):
        raise RuntimeError("no page today")

    monkeypatch.setattr(drift_check, "render_page", broken)
    # WHEN the check runs
    result = check(registry_env)
    # THEN the reports and state are written, the verdict returned, and the failure said in the result
    assert result.page_error == "RuntimeError: no page today" and result.to_dict()["page_error"] == result.page_error
    assert "page" not in result.report_keys
    read(data_bucket, result.report_keys["json"])
    assert StateStore(data_bucket, DATA_BUCKET).load("churn") == result.state


def test_two_checks_writing_the_history_at_once_both_keep_their_window(
    registry_env, published, data_bucket, logistic_model
):
    # GIVEN two checked days, and a third check whose history write is overtaken by another check's write
    capture_days(data_bucket, logistic_model, days=3, seed=80)
    check_day(registry_env, 0)
    history_key = drift_check.HistoryStore.key("churn")
    overtaken = []

    class Racing:
        """The S3 client, except that another check writes the history just before this one's first write."""

        def __getattr__(self, name):
            return getattr(data_bucket, name)

        def put_object(self, **kwargs):
            if kwargs["Key"] == history_key and not overtaken:
                overtaken.append(check_day(registry_env, 1))
            return data_bucket.put_object(**kwargs)

    # WHEN the third day is checked
    result = check_day(registry_env, 2, s3=Racing())
    # THEN its conditional write failed once, and it merged again: the history has all three windows
    assert overtaken
    history = json.loads(read(data_bucket, result.report_keys["history"]))
    assert [w["window"]["end"] for w in history["windows"]] == [(END + timedelta(days=d)).isoformat() for d in range(3)]
