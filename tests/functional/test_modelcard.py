"""The readable model card (Markdown and HTML) and the CLI around it: publish flags, refusals, `models card`."""

from __future__ import annotations

import re

import numpy as np
import pytest

from sklambda.publishing import build_card
from sklambda.registry.card import OPTIONAL_SECTIONS, ModelCard
from sklambda.registry.signing import ALGORITHM, SignatureCheck
from sklambda_infra import sample
from sklambda_infra.cli import main
from sklambda_infra.modelcard import render

SECTIONS = (
    "Model",
    "Intended use",
    "Training data",
    "Metrics",
    "Feature importance",
    "Decision threshold",
    "Data quality",
    "Known limitations",
)
SCRIPT = "<script>alert('x')</script>"
# What `sklambda models card` passes after verifying a card (the render tests do not need KMS).
CHECKED = SignatureCheck(True, key_id="arn:aws:kms:us-east-1:123456789012:key/trusted", algorithm=ALGORITHM)


@pytest.fixture(scope="module")
def card(churn, logistic_model) -> ModelCard:
    return build_card(
        logistic_model,
        churn.X,
        churn.y,
        name="churn",
        version="3",
        X_holdout=churn.X_holdout,
        y_holdout=churn.y_holdout,
        pii=sample.PII,
        description=f"Churn risk {SCRIPT}",
        owner=f"retention {SCRIPT}",
        intended_use="rank customers for retention offers",
        limitations=["trained on synthetic customers", "a | pipe"],
        costs=(1, 5),
    )[0]


def test_markdown_card_has_every_section_and_an_importance_bar(card, churn):
    text = render(card, "markdown", verification=CHECKED)
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    assert headings == list(SECTIONS)
    assert text.startswith("# Model card: churn version 3")
    top = card.importance["features"][0]["name"]
    assert re.search(rf"^\| {top} \| █{{24}} \| \+0\.\d+ ± 0\.\d+ \|$", text, flags=re.M)
    assert "chosen to minimize error costs" in text and "a false negative 5" in text
    assert "rank customers for retention offers" in text and "trained on synthetic customers" in text
    assert "| plan | category | 0.0% | basic" in text and "a \\| pipe" in text
    # No raw value of a pii feature, no raw HTML from the publisher's text
    assert "personal data: no values recorded" in text
    assert not any(cid in text for cid in churn.X["customer_id"])
    assert "<script>" not in text and "&lt;script&gt;alert('x')&lt;/script&gt;" in text


def test_html_card_is_self_contained_and_escapes_every_value(card, churn):
    page = render(card, "html", verification=CHECKED)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in page
    # THEN the publisher's <script> is text, not markup, in the description and owner
    assert "<script" not in page
    assert page.count("&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;") == 2
    # AND nothing is loaded from elsewhere; the chart is CSS bars
    assert not re.search(r"(src|href)=|https?://|@import|<link", page)
    assert page.count('class="bar"') == len(card.importance["features"])
    assert 'style="width:100.0%"' in page
    assert not any(cid in page for cid in churn.X["customer_id"])


def test_an_old_card_renders_with_the_missing_sections_marked(card):
    old = ModelCard.from_dict({k: v for k, v in card.to_dict().items() if k not in OPTIONAL_SECTIONS})
    text = render(old, "markdown", verification=CHECKED)
    assert text.count("not recorded (this card was published before the section existed)") == 3
    assert [h for h in re.findall(r"^## (.+)$", text, flags=re.M)] == list(SECTIONS)


@pytest.mark.parametrize("fmt", ["markdown", "html"])
def test_a_card_rendered_without_verification_says_so_first(card, fmt):
    # GIVEN a card whose signature nobody checked (the renderer's default, and `models card --no-verify`)
    # WHEN it is rendered
    text = render(card, fmt)
    # THEN its title and first section say NOT VERIFIED, and the signature row does not claim it is signed
    title = "Model card: churn version 3 (NOT VERIFIED)"
    headings = re.findall(r"^## (.+)$" if fmt == "markdown" else r"<h2>(.+?)</h2>", text, flags=re.M)
    assert (f"# {title}" in text) if fmt == "markdown" else (f"<h1>{title}</h1>" in text)
    assert headings[0] == "NOT VERIFIED" and headings[1:] == list(SECTIONS)
    assert "The signature of this card was not checked" in text
    assert "verified:" not in text and "NO: the card is not signed" in text


def test_an_unknown_format_is_refused(card):
    with pytest.raises(ValueError, match="unknown format 'pdf'"):
        render(card, "pdf")


# --- CLI ----------------------------------------------------------------------------------------------------------


@pytest.fixture
def cli(registry_env):
    def run(*args: str) -> int:
        return main(["--bucket", registry_env.bucket, "--signing-key", registry_env.signing_key_id, *args])

    return run


def publish_args(files, *extra, train: str | None = None):
    return (
        "publish",
        *("--model", files["model"], "--data", train or files["train"], "--holdout", files["holdout"]),
        *("--target", "churned", "--name", "churn", "--pii", *sample.PII),
        *extra,
    )


def test_publish_with_documentation_costs_and_a_gate_then_render_the_card(cli, files, registry_env, capsys):
    # GIVEN a publish with every new option
    code = cli(
        *publish_args(files, "--promote", "production"),
        *("--owner", "retention team", "--intended-use", "retention offers"),
        *("--limitation", "synthetic data", "--limitation", "EU only"),
        *("--cost-fp", "1", "--cost-fn", "5", "--min-metric", "roc_auc=0.7", "--min-metric", "log_loss=0.6"),
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "published churn version 1" in out and "decision: yes when P >= 0.2" in out and "(costs)" in out
    stored = registry_env.registry.get_card("churn", "1")
    assert stored.documentation["limitations"] == ["synthetic data", "EU only"]
    assert stored.decision["costs"] == {"false_positive": 1.0, "false_negative": 5.0}
    # WHEN the card is rendered for the production alias, as HTML into a file and as Markdown to stdout
    page = files["dir"] / "card.html"
    assert cli("models", "card", "churn", "--format", "html", "--output", str(page)) == 0
    assert f"to {page}" in capsys.readouterr().out
    assert cli("models", "card", "churn", "--version", "1") == 0
    markdown = capsys.readouterr().out
    # THEN both show the model as published and signed
    html = page.read_text()
    assert "<h1>Model card: churn version 1</h1>" in html and "retention team" in html and "ECDSA_SHA_256" in html
    assert markdown.startswith("# Model card: churn version 1") and "| Aliases | production |" in markdown
    assert "| Signature | verified: ECDSA_SHA_256 with the trusted KMS key" in markdown and "- EU only" in markdown


def test_a_refused_publish_prints_one_line_per_problem_and_exits_2(cli, files, churn, registry_env, capsys):
    # GIVEN training data with a constant column
    train = files["dir"] / "constant.csv"
    churn.X.assign(region="north", churned=churn.y).to_csv(train, index=False)
    # WHEN published with contradictory decision options too
    code = cli(*publish_args(files, "--threshold", "0.3", "--cost-fp", "1", "--cost-fn", "2", train=str(train)))
    err = capsys.readouterr().err
    # THEN it exits 2 with a readable report naming each problem, and no traceback
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    lines = lines[next(i for i, line in enumerate(lines) if line.startswith("error:")) :]  # after the progress lines
    assert lines[0] == "error: publish refused: 2 problems with the model or its data"
    assert lines[1:] == [
        "  - [decision]: give a threshold or costs, not both: costs choose the threshold",
        "  - [constant_feature] 'region': has the same value in all 1600 training rows",
    ]
    assert registry_env.registry.list_versions("churn") == []


def test_a_failed_metric_gate_exits_2(cli, files, capsys):
    assert cli(*publish_args(files, "--min-metric", "roc_auc=0.99")) == 2
    assert "[metric_gate]: holdout roc_auc 0.8" in capsys.readouterr().err


def test_a_malformed_metric_gate_is_a_usage_error(cli, files, capsys):
    with pytest.raises(SystemExit):
        cli(*publish_args(files, "--min-metric", "roc_auc"))
    assert "expected NAME=VALUE" in capsys.readouterr().err


def test_publish_prints_the_data_quality_warnings(cli, files, churn, capsys):
    train = files["dir"] / "sparse.csv"
    X = churn.X.copy()
    X.loc[X.index[: int(0.4 * len(X))], "monthly_income"] = np.nan
    X.assign(churned=churn.y).to_csv(train, index=False)
    assert cli(*publish_args(files, train=str(train))) == 0
    assert (
        "warning [null_rate] 'monthly_income': is null in 42% of the training rows (over 30%)"
        in capsys.readouterr().out
    )


def test_models_card_of_an_unknown_alias_is_reported(cli, published, capsys):
    assert cli("models", "card", "churn", "--alias", "staging") == 2
    assert "has no alias 'staging'" in capsys.readouterr().err


def test_one_cost_without_the_other_is_refused(cli, files, capsys):
    assert cli(*publish_args(files, "--cost-fn", "5")) == 2
    assert "give both --cost-fp and --cost-fn" in capsys.readouterr().err


def test_a_regressor_card_says_it_has_no_threshold(churn):
    from sklearn.linear_model import LinearRegression

    X = churn.X[["age", "tenure_months"]]
    y = churn.X["monthly_charges"]
    card = build_card(LinearRegression().fit(X, y), X, y, name="bill", version="1")[0]
    text = render(card, "markdown")
    assert "No decision threshold: the model is not a binary classifier" in text
    assert "Measured on the training data" in text and "r2" in text
