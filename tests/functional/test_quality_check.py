"""The model-quality check (sklambda.monitoring.quality_check) against moto: labels written with the ground-truth
store, captured predictions written as Firehose delivers them, with their prediction ids."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import boto3
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline

from sklambda.monitoring.capture import CaptureRecord, Pseudonymizer, build_records
from sklambda.monitoring.ground_truth.store import Label, write_labels
from sklambda.monitoring.quality_check import run_quality_check
from sklambda.monitoring.windows import Window, capture_prefix, read_predictions
from sklambda.publishing import build_card
from sklambda.publishing.segments import segments_section
from sklambda.registry.schema import to_records
from sklambda_infra import sample
from tests.support import BuiltVersion, HtmlPage, store_built, write_capture

DATA_BUCKET = "sklambda-data-test"
END = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
WINDOW = Window.ending(END, 24)


@pytest.fixture
def data_bucket(registry_env):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=DATA_BUCKET)
    return s3


def serve(
    model,
    rows: int,
    *,
    seed: int,
    at: datetime,
    version: str = "1",
    prefix: str = "p",
    part: str = "part-0",
    data: tuple | None = None,
):
    """Capture `rows` churn predictions (new customers, or `data` = (X, y)) served at `at` with ids
    <prefix><seed>-<i>; returns (ids, true labels)."""
    X, y = data if data is not None else sample.churn_data(rows, seed=seed)
    ids = [f"{prefix}{seed}-{i}" for i in range(len(X))]
    write_capture(boto3.client("s3"), DATA_BUCKET, model, X, at=at, version=version, part=part, inference_ids=ids)
    return ids, y.tolist()


def label(ids, truth, *, at: datetime, flip: float = 0.0, seed: int = 0) -> None:
    """Store the true labels of `ids` as arriving at `at`; a share `flip` of them swapped (the concept changed)."""
    rng = np.random.default_rng(seed)
    swapped = rng.random(len(ids)) < flip
    values = [("no" if t == "yes" else "yes") if s else t for t, s in zip(truth, swapped, strict=True)]
    write_labels(boto3.client("s3"), DATA_BUCKET, "churn", [Label(i, v) for i, v in zip(ids, values, strict=True)],
                 arrival=at)  # fmt: skip


def check(registry_env, window: Window = WINDOW, **kwargs):
    return run_quality_check(
        "churn",
        registry=registry_env.registry,
        data_bucket=DATA_BUCKET,
        window=window,
        verifier=registry_env.verifier,
        clock=lambda: END,
        **kwargs,
    )


def read(key: str) -> bytes:
    return boto3.client("s3").get_object(Bucket=DATA_BUCKET, Key=key)["Body"].read()


def test_enough_labels_give_every_metric_with_an_interval_and_an_ok_verdict(
    registry_env, published, data_bucket, logistic_model, churn
):
    # GIVEN the holdout's customers served (twice: 800 predictions) in the window, so nothing has changed since publish,
    # and their true labels, arrived an hour before its end
    X, y = pd.concat([churn.X_holdout] * 2), pd.concat([churn.y_holdout] * 2)
    ids, truth = serve(logistic_model, len(X), seed=41, at=END - timedelta(hours=5), data=(X, y))
    label(ids, truth, at=END - timedelta(hours=1))
    # WHEN the quality check runs over the window
    result = check(registry_env)
    doc = result.document
    # THEN every label joined its prediction, and the window is ok against the card's holdout
    assert (doc["labeled_rows"], doc["join"]["matched"], doc["join"]["join_rate"]) == (800, 800, 1.0)
    assert result.verdict == "ok" and not result.model_degraded
    metrics = {m["name"]: m for m in doc["realized"]["metrics"]}
    for name in ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "brier", "ece"):
        m = metrics[name]
        assert m["lower"] <= m["value"] <= m["upper"], name
    assert metrics["roc_auc"]["value"] == pytest.approx(metrics["roc_auc"]["reference"])
    assert metrics["roc_auc"]["reference"] == pytest.approx(published.metrics["roc_auc"])
    assert metrics["roc_auc"]["verdict"] == "ok"
    # AND precision, recall and F1 of the positive class and the Brier score are judged against the card's holdout
    # values too (publish records them with the decision), which the holdout served again reproduces
    for name in ("precision", "recall", "f1", "brier"):
        assert metrics[name]["reference"] == pytest.approx(published.metrics[name]), name
        assert metrics[name]["value"] == pytest.approx(metrics[name]["reference"]) and metrics[name]["verdict"] == "ok"
    # AND the performance was estimated (CBPE) on the 800 predictions served in the window, beside the realized one
    assert doc["estimated"]["available"] and doc["estimated"]["rows"] == 800
    assert doc["estimated"]["verdict"] == "ok"
    beside = doc["estimated_vs_realized"]["accuracy"]
    assert beside["realized"] == pytest.approx(metrics["accuracy"]["value"])
    assert abs(beside["estimated"] - beside["realized"]) < 0.06
    # AND the reports, state, history and page are under reports/quality/churn/
    stamp = "2026-11-27T06-00-00Z"
    assert result.report_keys == {
        "json": f"reports/quality/churn/{stamp}.json",
        "html": f"reports/quality/churn/{stamp}.html",
        "state": "reports/quality/churn/state.json",
        "history": "reports/quality/churn/history.json",
        "page": "reports/quality/churn/index.html",
    }
    assert json.loads(read(result.report_keys["json"])) == doc
    assert json.loads(read(result.report_keys["state"]))["realized"]["last_verdict"] == "ok"


def test_a_changed_concept_degrades_the_model_after_two_windows_and_not_before(
    registry_env, published, data_bucket, logistic_model
):
    # GIVEN two consecutive daily windows whose labels contradict 40 % of the predictions
    results = []
    for day in (0, 1):
        end = END + timedelta(days=day)
        ids, truth = serve(logistic_model, 700, seed=50 + day, at=end - timedelta(hours=6), part=f"d{day}")
        label(ids, truth, at=end - timedelta(hours=2), flip=0.4, seed=day)
        # WHEN the check runs at the end of each
        results.append(check(registry_env, Window.ending(end, 24)))
    first, second = results
    # THEN both windows are degraded, accuracy among the degraded metrics, with a significant drop beyond tolerance
    assert [r.verdict for r in results] == ["degraded", "degraded"]
    accuracy = next(m for m in second.document["realized"]["metrics"] if m["name"] == "accuracy")
    assert accuracy["verdict"] == "degraded" and accuracy["drop"] > accuracy["tolerance"]
    assert accuracy["p_value"] < 0.05 and accuracy["upper"] < accuracy["reference"]
    # AND only the second declares the model degraded (the consecutive-window rule)
    assert (first.model_degraded, second.model_degraded) == (False, True)
    assert second.document["state"]["realized"]["consecutive_degraded"] == 2
    # AND the estimate, which follows the old concept (CBPE's assumption), shows no drop
    assert second.document["estimated"]["verdict"] == "ok" and not second.estimated_degraded


def test_too_few_labels_are_insufficient_labels_never_degraded(registry_env, published, data_bucket, logistic_model):
    # GIVEN windows where only 120 labels arrive, and they contradict half the predictions
    results = []
    for day in (0, 1):
        end = END + timedelta(days=day)
        ids, truth = serve(logistic_model, 120, seed=60 + day, at=end - timedelta(hours=6), part=f"d{day}")
        label(ids, truth, at=end - timedelta(hours=2), flip=0.5, seed=day)
        results.append(check(registry_env, Window.ending(end, 24)))
    # THEN each window says too few labels, and the model is never declared degraded
    for result in results:
        assert result.verdict == "insufficient_labels" and not result.model_degraded
        assert result.document["labeled_rows"] == 120
        assert {m["verdict"] for m in result.document["realized"]["metrics"]} <= {"insufficient_labels", "no_reference"}
    assert results[-1].document["state"]["realized"]["consecutive_degraded"] == 0
    # AND the report says so, in words, and the quality page draws those windows grey, not red
    report = read(results[-1].report_keys["html"]).decode()
    assert "too few labels" in report and "120 labeled rows" in report
    page = HtmlPage(read(results[-1].report_keys["page"]).decode())
    accuracy = next(i for i, m in enumerate(results[-1].document["realized"]["metrics"]) if m["name"] == "accuracy")
    realized = [p for p in page.points[f"metric-{accuracy}"] if p["data-series"] == "realized"]
    assert [p["fill"] for p in realized] == ["#95a5a6", "#95a5a6"]
    assert [p["fill"] for p in page.points["verdicts"]] == ["#95a5a6", "#95a5a6"]


def test_labels_join_predictions_served_days_before_the_window_within_the_lookback(
    registry_env, published, data_bucket, logistic_model
):
    # GIVEN 600 predictions served three days before the window, labeled inside it
    ids, truth = serve(logistic_model, 600, seed=70, at=END - timedelta(days=3))
    label(ids, truth, at=END - timedelta(hours=3))
    # WHEN the check looks back 7 days, then only 1
    found = check(registry_env, lookback_days=7).document
    missed = check(registry_env, lookback_days=1).document
    # THEN with 7 days every label joins; with 1 none does, and the join rate says so
    assert (found["join"]["matched"], found["join"]["join_rate"], found["labeled_rows"]) == (600, 1.0, 600)
    assert (missed["join"]["matched"], missed["join"]["join_rate"]) == (0, 0.0)
    assert missed["verdict"] == "insufficient_labels"
    assert found["window"]["predictions_from"] == (WINDOW.start - timedelta(days=7)).isoformat()
    # AND the estimate covers predictions served in the window only: there were none
    assert found["estimated"] == {
        "available": False,
        "reason": "no prediction of this version was served in the window",
    }


def test_labels_of_predictions_served_by_an_older_version_join_that_version(
    registry_env, published, data_bucket, logistic_model
):
    # GIVEN 300 predictions served by version 0 and 600 by version 1 (production now), all labeled in the window
    old_ids, old_truth = serve(logistic_model, 300, seed=80, at=END - timedelta(days=2), version="0", prefix="old")
    ids, truth = serve(logistic_model, 600, seed=81, at=END - timedelta(hours=4), part="new")
    label(old_ids + ids, old_truth + truth, at=END - timedelta(hours=1))
    # WHEN the check runs
    doc = check(registry_env).document
    # THEN each label joined the version that served its prediction, and only version 1's are checked against its card
    assert doc["join"]["by_version"] == {"1": 600, "0": 300}
    assert doc["labeled_rows"] == 600 and doc["join"]["matched"] == 900
    (current, older) = doc["versions"]
    assert (current["version"], current["current"], older["version"], older["current"]) == ("1", True, "0", False)
    assert older["labeled_rows"] == 300 and older["metrics"]["accuracy"]["value"] > 0.5
    assert "cost_per_row" not in older["metrics"]  # its card's costs are not this card's


def test_segments_of_the_card_are_reported_per_window(registry_env, churn, churn_v1, logistic_model, data_bucket):
    # GIVEN churn published with region as a segment and has_partner as a sensitive feature
    section = segments_section(
        logistic_model, "classification", churn.X_holdout, churn.y_holdout, "holdout", ["region"], ["has_partner"],
        positive="yes", threshold=churn_v1.card.decision["threshold"],
    )  # fmt: skip
    store_built(registry_env, replace(churn_v1, card=replace(churn_v1.card, segments=section)),
                alias="production")  # fmt: skip
    ids, truth = serve(logistic_model, 600, seed=90, at=END - timedelta(hours=4))
    label(ids, truth, at=END - timedelta(hours=1))
    # WHEN the check runs
    result = check(registry_env)
    segments = result.document["segments"]
    # THEN the window has the metrics of each group of both features, and the fairness differences of the sensitive one
    names = [f["name"] for f in segments["features"]]
    assert names == ["region", "has_partner"]
    region = segments["features"][0]
    assert {g["group"] for g in region["groups"]} == {"north", "south", "east", "west", "central"}
    assert sum(g["rows"] for g in region["groups"]) == 600
    partner_gaps = {g["name"] for g in segments["features"][1]["gaps"]}
    assert {"demographic_parity_difference", "equal_opportunity_difference"} <= partner_gaps
    # AND the page draws one chart per segment feature
    page = HtmlPage(read(result.report_keys["page"]).decode())
    assert {"segment-0", "segment-1"} <= set(page.charts)


def test_the_quality_page_links_its_reports_and_the_drift_page_relatively(
    registry_env, published, data_bucket, logistic_model
):
    # GIVEN two checked windows
    for day in (0, 1):
        end = END + timedelta(days=day)
        ids, truth = serve(logistic_model, 550, seed=100 + day, at=end - timedelta(hours=3), part=f"d{day}")
        label(ids, truth, at=end - timedelta(hours=1))
        result = check(registry_env, Window.ending(end, 24))
    # WHEN the page is read
    page = HtmlPage(read(result.report_keys["page"]).decode())
    # THEN it links both windows' reports beside it, and the drift page in its sibling folder
    stamps = ["2026-11-27T06-00-00Z", "2026-11-28T06-00-00Z"]
    reports = sorted(link for link in page.links() if not link.startswith("../"))
    assert reports == sorted(f"{s}.{kind}" for s in stamps for kind in ("html", "json"))
    assert page.attrs("a", id="drift-page")[0]["href"] == "../../drift/churn/index.html"
    # AND each metric's chart has a realized and an estimated point per window, and the holdout value as a reference
    roc = next(i for i, m in enumerate(result.document["realized"]["metrics"]) if m["name"] == "roc_auc")
    points = page.points[f"metric-{roc}"]
    assert sorted(p["data-series"] for p in points) == ["estimated", "estimated", "realized", "realized"]
    # AND the report links the page back
    report = HtmlPage(read(result.report_keys["html"]).decode())
    assert "index.html" in report.links() and "../../drift/churn/index.html" in report.links()


def test_the_prediction_reader_keeps_labeled_ids_and_the_versions_window_and_quarantines_torn_lines(data_bucket):
    # GIVEN one capture object with lines of churn v1 and v0, another model's line in churn's partition, an id with a
    # quote in it, a torn line, and a record written before prediction ids existed
    at = END - timedelta(hours=2)

    def line(identifier, version="1", model="churn", when=at, p=0.8):
        record = CaptureRecord(when.isoformat(timespec="milliseconds"), model, version, "r", 0, {"region": "north"},
                               "yes", {"no": 1 - p, "yes": p}, "k", identifier)  # fmt: skip
        return record.to_json_line()

    body = "".join(
        [
            line("a"),  # labeled
            line("b"),  # unlabeled, v1, in the window: estimated on
            line("c", version="0"),  # unlabeled, v0: not needed
            line('q"uote'),  # labeled, id with a JSON escape
            line("d", model="other"),  # another model's, labeled id
            line("e", when=END - timedelta(days=3)),  # labeled, served before the window (lookback)
            line(None),  # no id, in the window: estimated on only
            '{"capture":"sklambda/v1","timestamp":"2026-11-27T04:00:00.000+00:00","model":"churn","ver\n',
        ]
    ).encode()
    data_bucket.put_object(Bucket=DATA_BUCKET, Key=capture_prefix("churn", at.date()) + "mixed", Body=body)
    old = line("e", when=END - timedelta(days=3)).encode()
    data_bucket.put_object(Bucket=DATA_BUCKET, Key=capture_prefix("churn", (END - timedelta(days=3)).date()) + "o",
                           Body=old)  # fmt: skip
    # WHEN the predictions of labeled ids a, q"uote, d, e and of v1's window are read, with a 7-day lookback
    period = Window(WINDOW.start - timedelta(days=7), END)
    found = read_predictions(data_bucket, DATA_BUCKET, "churn", period, labeled={"a", 'q"uote', "d", "e"},
                             served=("1", WINDOW), positive="yes", features=["region"])  # fmt: skip
    frame = found.frame
    # THEN it has a, b (v1's window), q"uote, e twice (two objects), and the id-less line; not c, not the other model's
    assert sorted(frame["inference_id"].dropna()) == sorted(["a", "b", 'q"uote', "e", "e"])
    assert frame["inference_id"].isna().sum() == 1
    assert found.unidentified == 1 and found.quarantined == 1
    assert set(frame["probability"]) == {0.8} and set(frame["region"]) == {"north"}
    assert str(frame["time"].dt.tz) == "UTC"


def test_a_window_without_labels_or_captures_is_reported_as_such(registry_env, published, data_bucket):
    # GIVEN nothing captured and no label arrived
    # WHEN the check runs
    result = check(registry_env)
    doc = result.document
    # THEN the window is insufficient_labels with a join rate of 0, no estimate (nothing served), and still reported
    assert (result.verdict, doc["labeled_rows"], doc["join"]["join_rate"]) == ("insufficient_labels", 0, 0.0)
    assert doc["estimated"]["available"] is False and doc["segments"] is None and doc["versions"] == []
    assert json.loads(read(result.report_keys["json"]))["verdict"] == "insufficient_labels"


def test_a_regressor_gets_mae_rmse_r2_and_mean_bias_with_intervals_and_per_segment(
    registry_env, churn, churn_v1, data_bucket
):
    # GIVEN a regressor of monthly charges in production, its card's holdout metrics and region as a segment (the
    # check reads the card only: the churn version's card, made a regressor's), and 600 of its predictions labeled
    numeric = [c for c in sample.NUMERIC if c != "monthly_charges"]
    X, target = churn.X[[*numeric, "region"]], "monthly_charges"
    model = Pipeline([("prep", ColumnTransformer([("num", SimpleImputer(), numeric)])), ("model", LinearRegression())])
    model.fit(X, churn.X[target])
    holdout, truth_h = churn.X_holdout[X.columns], churn.X_holdout[target]
    error = model.predict(holdout) - truth_h
    mae, rmse = float(np.abs(error).mean()), float(np.sqrt((error**2).mean()))
    r2 = float(1 - (error**2).sum() / ((truth_h - truth_h.mean()) ** 2).sum())
    card = replace(
        churn_v1.card,
        name="charges",
        task="regression",
        classes=None,
        decision=None,
        estimation=None,
        metrics={"split": "holdout", "rows": len(holdout), "mae": mae, "rmse": rmse, "r2": r2},
        segments=segments_section(model, "regression", holdout, truth_h, "holdout", ["region"], []),
    )
    store_built(registry_env, replace(churn_v1, card=card), alias="production")
    served = pd.concat([churn.X_holdout] * 2)  # the holdout's population: nothing changed
    ids = [f"r{i}" for i in range(len(served))]
    records = build_records(model="charges", version="1", request_id="r", rows=to_records(served[X.columns]),
                            predictions=model.predict(served[X.columns]).tolist(), probabilities=None,
                            feature_names=list(X.columns), pii=(), pseudonymizer=Pseudonymizer(b"k" * 32),
                            inference_ids=ids, now=END - timedelta(hours=3))  # fmt: skip
    data_bucket.put_object(Bucket=DATA_BUCKET, Key=capture_prefix("charges", END.date()) + "p",
                           Body="".join(r.to_json_line() for r in records).encode())  # fmt: skip
    write_labels(data_bucket, DATA_BUCKET, "charges",
                 [Label(i, t) for i, t in zip(ids, served[target].tolist(), strict=True)],
                 arrival=END - timedelta(hours=1))  # fmt: skip
    # WHEN its quality is checked
    result = run_quality_check("charges", registry=registry_env.registry, data_bucket=DATA_BUCKET, window=WINDOW,
                               verifier=registry_env.verifier, clock=lambda: END)  # fmt: skip
    doc = result.document
    # THEN it has the regression metrics with intervals, equal to the holdout's, and the window is ok
    metrics = {m["name"]: m for m in doc["realized"]["metrics"]}
    assert set(metrics) == {"mae", "rmse", "r2", "mean_bias"}
    for m in metrics.values():
        assert m["lower"] <= m["value"] <= m["upper"], m["name"]
    assert metrics["mae"]["value"] == pytest.approx(card.metrics["mae"])
    assert metrics["rmse"]["value"] == pytest.approx(card.metrics["rmse"])
    assert doc["labeled_rows"] == len(served) and result.verdict == "ok"
    # AND no estimate (CBPE is for classifiers), and MAE and mean bias per region
    assert doc["estimated"]["available"] is False and "no CBPE" in doc["estimated"]["reason"]
    region = doc["segments"]["features"][0]
    assert region["name"] == "region" and set(region["groups"][0]["metrics"]) == {"mae", "mean_bias"}


def test_card_tags_set_one_models_rule_and_a_bad_tag_is_refused_before_anything_is_written(
    registry_env, churn_v1, data_bucket, logistic_model
):
    # GIVEN churn tagged to be judged on 100 labels, in one window, with a wide ROC AUC tolerance
    tags = {"quality.min_labeled_rows": "100", "quality.consecutive_windows": "1", "quality.tolerance.roc_auc": "0.5"}
    store_built(registry_env, replace(churn_v1, card=replace(churn_v1.card, tags=tags)),
                alias="production")  # fmt: skip
    ids, truth = serve(logistic_model, 150, seed=120, at=END - timedelta(hours=4))
    label(ids, truth, at=END - timedelta(hours=1), flip=0.5)
    # WHEN the check runs
    result = check(registry_env)
    # THEN 150 labels are enough for a verdict, one degraded window degrades the model, and ROC AUC is within tolerance
    config = result.document["realized"]["config"]
    assert (config["min_labeled_rows"], config["consecutive_windows"], config["tolerances"]["roc_auc"]) == (100, 1, 0.5)
    assert result.verdict == "degraded" and result.model_degraded
    assert "roc_auc" not in result.document["realized"]["degraded_metrics"]
    # AND a tag naming no setting fails the check, naming the tag, with nothing written for the window
    bad = {"quality.tolerance.auroc": "0.1"}
    store_built(registry_env, replace(churn_v1, card=replace(churn_v1.card, version="2", tags=bad)),
                alias="production")  # fmt: skip
    with pytest.raises(ValueError, match=r"quality\.tolerance\.auroc"):
        check(registry_env, Window.ending(END + timedelta(days=1), 24))
    listed = data_bucket.list_objects_v2(Bucket=DATA_BUCKET, Prefix="reports/quality/churn/2026-11-28")
    assert listed.get("KeyCount", 0) == 0


def test_a_multiclass_model_gets_its_metrics_and_estimate_per_window(registry_env, churn, data_bucket, target_runtime):
    # GIVEN a 3-class model (churn's `plan`) published with a holdout, and its holdout's rows served twice and labeled
    columns = ["age", "tenure_months", "monthly_charges"]
    model = LogisticRegression(max_iter=500).fit(churn.X[columns], churn.X["plan"])
    built = build_card(model, churn.X[columns], churn.X["plan"], name="plan", version="1",
                       X_holdout=churn.X_holdout[columns], y_holdout=churn.X_holdout["plan"])  # fmt: skip
    card = store_built(registry_env, BuiltVersion(*built), alias="production")
    served = pd.concat([churn.X_holdout] * 2)
    proba = model.predict_proba(served[columns])
    ids = [f"m{i}" for i in range(len(served))]
    records = build_records(model="plan", version="1", request_id="r", rows=to_records(served[columns]),
                            predictions=model.classes_[proba.argmax(axis=1)].tolist(),
                            probabilities=[dict(zip(map(str, model.classes_), p, strict=True)) for p in proba.tolist()],
                            feature_names=columns, pii=(), pseudonymizer=Pseudonymizer(b"k" * 32), inference_ids=ids,
                            now=END - timedelta(hours=3))  # fmt: skip
    data_bucket.put_object(Bucket=DATA_BUCKET, Key=capture_prefix("plan", END.date()) + "p",
                           Body="".join(r.to_json_line() for r in records).encode())  # fmt: skip
    write_labels(data_bucket, DATA_BUCKET, "plan", [Label(i, t) for i, t in zip(ids, served["plan"], strict=True)],
                 arrival=END - timedelta(hours=1))  # fmt: skip
    # WHEN its quality is checked
    result = run_quality_check("plan", registry=registry_env.registry, data_bucket=DATA_BUCKET, window=WINDOW,
                               verifier=registry_env.verifier, clock=lambda: END)  # fmt: skip
    doc = result.document
    # THEN the realized multiclass metrics equal the holdout's, and the window is ok
    metrics = {m["name"]: m for m in doc["realized"]["metrics"]}
    assert {"accuracy", "f1_macro", "roc_auc_ovr", "log_loss"} <= set(metrics)
    assert metrics["accuracy"]["value"] == pytest.approx(card.metrics["accuracy"])
    assert metrics["roc_auc_ovr"]["value"] == pytest.approx(card.metrics["roc_auc_ovr"])
    assert result.verdict == "ok"
    # AND CBPE estimated accuracy, macro F1 and OvR ROC AUC on the served predictions, beside the realized ones
    assert doc["estimated"]["available"] and doc["estimated"]["verdict"] == "ok"
    assert {m["name"] for m in doc["estimated"]["metrics"]} == {"accuracy", "f1_macro", "roc_auc_ovr"}
    assert set(doc["estimated_vs_realized"]) == {"accuracy", "f1_macro", "roc_auc_ovr"}
