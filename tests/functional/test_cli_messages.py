"""What the sklambda command says: progress on stderr, when an alias change takes effect (and --wait for it), and a
message instead of a traceback for every user mistake."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import joblib
import pytest
from sklearn.linear_model import LogisticRegression

from sklambda_infra import sample
from sklambda_infra.cli import build_parser, main
from tests.support import cli_arguments, store_built


@pytest.fixture
def cli(registry_env, monkeypatch, tmp_path):
    """The CLI on this test's moto registry, with no local stack and no API configured."""
    monkeypatch.setenv("SKLAMBDA_LOCAL_FILE", str(tmp_path / "no-local-stack.json"))
    for name in ("SKLAMBDA_API_URL", "SKLAMBDA_API_KEY"):
        monkeypatch.delenv(name, raising=False)

    def run(*args: str) -> int:
        return main(["--bucket", registry_env.bucket, "--signing-key", registry_env.signing_key_id, *args])

    return run


@pytest.fixture
def two_versions(registry_env, churn_v1):
    """churn versions 1 (on production) and 2, stored from the session's build: the alias commands need versions
    in the registry, not a publish each."""
    store_built(registry_env, churn_v1, alias="production")
    store_built(registry_env, churn_v1.relabelled("churn", "2"))


def publish_args(files, *extra):
    return (
        "publish",
        *("--model", files["model"], "--data", files["train"], "--holdout", files["holdout"]),
        *("--target", "churned", "--name", "churn", "--pii", *sample.PII),
        *extra,
    )


def test_publish_shows_its_stages_on_stderr_as_plain_lines_and_the_result_on_stdout(cli, files, capsys, monkeypatch):
    # GIVEN a model file and its data, stderr not a terminal (captured), and a machine without the layer's host copy
    # (its build stands in: it logs one line and finds the copy this session uses)
    import sklambda_infra.runtime

    real_ensure = sklambda_infra.runtime.ensure_runtime_path

    def build(log=None):
        log("pip: installing 40 wheels")
        return real_ensure()

    monkeypatch.setattr(sklambda_infra.runtime, "runtime_path_ready", lambda: False)
    monkeypatch.setattr(sklambda_infra.runtime, "ensure_runtime_path", build)
    # WHEN it is published
    assert cli(*publish_args(files)) == 0
    out, err = capsys.readouterr()
    # THEN each stage is one plain line with its duration, in order, the build's log line kept whole; stdout has only
    # the result; no escape codes
    stages = [line.split("... done in ")[0] for line in err.splitlines() if " done in " in line]
    assert "publish: building the target runtime, the dependency layer's host copy (first use only, ~15 s)...\n" \
           "pip: installing 40 wheels\n" in err  # fmt: skip
    assert stages == [
        "publish: building the target runtime, the dependency layer's host copy (first use only, ~15 s)",
        "publish: checking the model and its data",
        "publish: computing metrics, baseline and importance",
        "publish: parity gate: serving the artifact in the target runtime",
        "publish: signing the card with KMS",
        "publish: uploading the version",
    ]
    assert out.startswith("published churn version 1") and "publish: " not in out
    assert "\x1b" not in out + err and "\r" not in err


def not_a_model(files, kind: str) -> str:
    """A --model file of the given kind that is not a fitted estimator saved with joblib."""
    path = files["dir"] / f"{kind}.model"
    if kind == "csv":
        path.write_text(Path(files["train"]).read_text())
    elif kind == "text":
        path.write_text("this is my model\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        blob = Path(files["model"]).read_bytes()
        path.write_bytes(blob[: len(blob) // 2])
    elif kind == "dict":
        joblib.dump({"coef": [1, 2]}, path)
    elif kind == "unfitted":
        joblib.dump(LogisticRegression(), path)
    return str(path)


@pytest.mark.parametrize(
    ("kind", "expected", "before_runtime"),
    [
        (
            "csv",
            "is not a model saved with joblib.dump: a text file, not a joblib or pickle file (it starts with",
            True,
        ),
        ("text", "a text file, not a joblib or pickle file (it starts with 'this is my model')", True),
        ("empty", "is not a model saved with joblib.dump: the file is empty", True),
        ("truncated", "is not a model saved with joblib.dump: a damaged or truncated joblib/pickle file", True),
        ("dict", "[model] dict is not a scikit-learn estimator", False),
        ("unfitted", "[model] LogisticRegression is not fitted: fit it before publishing", False),
    ],
)
def test_a_model_file_that_is_not_a_fitted_estimator_is_refused_without_a_traceback(
    cli, files, capsys, monkeypatch, kind, expected, before_runtime
):
    # GIVEN a --model file that is a CSV, text, empty, a truncated pickle, a pickled dict, or an unfitted estimator
    files = dict(files, model=not_a_model(files, kind))
    if before_runtime:  # a file that is no pickle at all is refused before the ~15 s target runtime build
        import sklambda_infra.runtime

        def must_not_build(*args, **kwargs):
            raise AssertionError("the target runtime was built before the model file was checked")

        monkeypatch.setattr(sklambda_infra.runtime, "ensure_runtime_path", must_not_build)
    # WHEN it is published
    code = cli(*publish_args(files))
    err = capsys.readouterr().err
    # THEN the command refuses it in a short message naming the file's problem, with exit 2 and no traceback
    assert code == 2 and expected in err, err
    assert "Traceback" not in err and len(err.splitlines()) <= 8


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("models", "show", "nothing"), "error: unknown model 'nothing'"),
        (("models", "show", "churn", "--version", "9"), "error: model 'churn' has no version '9'"),
        (
            ("models", "show", "churn", "--alias", "staging"),
            "error: model 'churn' has no alias 'staging' (its versions: 1: ask for one by version, or promote one to "
            "'staging')",
        ),
        (("models", "show", "Churn Model"), "error: invalid model name 'Churn Model'"),
        (("promote", "churn", "9"), "error: model 'churn' has no version '9'"),
        (("rollback", "churn"), "error: alias 'production' of model 'churn' has no previous version to roll back to"),
        (("models", "card", "churn", "--output", "/no/such/folder/card.md"), "error: No such file or directory"),
    ],
)
def test_unknown_models_versions_and_aliases_are_one_line_each(cli, published, capsys, args, expected):
    # GIVEN churn version 1 on production
    # WHEN a command names what does not exist
    code = cli(*args)
    err = capsys.readouterr().err
    # THEN it says so in one line and exits 2
    assert code == 2 and err.startswith(expected) and len(err.splitlines()) == 1, err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_local_stack_that_stopped_is_reported_not_raised(monkeypatch, tmp_path, capsys):
    # GIVEN details of a local stack whose process is gone, and of one whose endpoint no longer answers
    monkeypatch.delenv("SKLAMBDA_MODEL_BUCKET", raising=False)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    details = {"model_bucket": "models", "signing_key_id": "key", "aws_endpoint_url": f"http://127.0.0.1:{free_port()}"}
    stale, silent = tmp_path / "stale.json", tmp_path / "silent.json"
    stale.write_text(json.dumps({**details, "pid": int(gone.stdout)}))
    silent.write_text(json.dumps({**details, "pid": os.getpid()}))
    # WHEN models are listed through each
    monkeypatch.setenv("SKLAMBDA_LOCAL_FILE", str(stale))
    stale_code, stale_err = main(["models", "list"]), capsys.readouterr().err
    monkeypatch.setenv("SKLAMBDA_LOCAL_FILE", str(silent))
    silent_code, silent_err = main(["models", "list"]), capsys.readouterr().err
    # THEN the first says the stack is not running and how to start one; the second that it cannot be reached
    assert stale_code == 2 and "not running any more" in stale_err and "make local" in stale_err
    assert silent_code == 3 and f"cannot reach {details['aws_endpoint_url']}: is the local stack running?" in silent_err
    assert "Traceback" not in stale_err + silent_err


def test_a_bad_endpoint_url_is_a_usage_error(capsys):
    # GIVEN an endpoint that is no URL WHEN any command runs THEN argparse refuses it with a usage line, exit 2
    with pytest.raises(SystemExit) as ended:
        main(["--endpoint-url", "localhost 4566", "models", "list"])
    assert ended.value.code == 2 and "expected an http(s) URL" in capsys.readouterr().err


def local_stack_file(tmp_path, registry_env, ttl: str, api_url: str | None = None) -> str:
    """Details of a running local stack (this process) whose registry is the test's and whose alias TTL is `ttl`."""
    details = {
        "pid": os.getpid(),
        "model_bucket": registry_env.bucket,
        "signing_key_id": registry_env.signing_key_id,
        "aws_endpoint_url": "",
        "api_url": api_url,
        "api_key": "local-key",
        "functions": {"PredictFunction": {"environment": {"SKLAMBDA_ALIAS_TTL_SECONDS": ttl}}},
    }
    path = tmp_path / "local.json"
    path.write_text(json.dumps(details))
    return str(path)


def test_promote_and_rollback_say_when_running_functions_pick_the_change_up(
    cli, two_versions, registry_env, capsys, monkeypatch, tmp_path
):
    # GIVEN two versions, and a running local stack on this registry whose functions cache aliases for 5 s
    monkeypatch.setenv("SKLAMBDA_LOCAL_FILE", local_stack_file(tmp_path, registry_env, "5"))
    capsys.readouterr()
    # WHEN version 2 is promoted, promoted again, then rolled back
    assert cli("promote", "churn", "2") == 0
    assert cli("promote", "churn", "2") == 0
    assert cli("rollback", "churn") == 0
    out = capsys.readouterr().out.splitlines()
    # THEN each change says what moved and within what time it is served; the repeated promote changes nothing
    ttl = "  running functions pick it up within the alias TTL: 5 s (the running local stack's AliasTtlSeconds)"
    assert out == [
        "churn: production -> 2 (was 1)",
        ttl,
        "churn: production already points at version 2; nothing changed",
        "churn: production rolled back to 1 (was 2)",
        ttl,
    ]


class FakeApi(BaseHTTPRequestHandler):
    """GET /models/<name>?alias=... answering version `served` to requests with the right x-api-key."""

    served = "1"
    seen: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:
        type(self).seen.append((self.path, self.headers.get("x-api-key")))
        status, body = (200, {"model": {"version": self.served}}) if self.headers.get("x-api-key") == "k" else (403, {})
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        return


@pytest.fixture
def fake_api():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApi)
    # A short poll interval: shutdown() waits for the loop to look (0.5 s by default).
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    FakeApi.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("served", "code"), [("2", 0), ("1", 1)])
def test_promote_wait_asks_the_api_until_it_serves_the_new_version(cli, two_versions, capsys, fake_api, served, code):
    # GIVEN two versions, and an API serving production as version `served`
    FakeApi.served = served
    # WHEN version 2 is promoted with --wait (and no time to wait beyond one answer)
    result = cli("promote", "churn", "2", "--wait", "--timeout", "0", "--api-url", fake_api, "--api-key", "k")
    out, err = capsys.readouterr()
    # THEN the API was asked with the key; served, the command says so and succeeds, else it fails saying what it saw
    assert FakeApi.seen[0] == ("/models/churn?alias=production", "k")
    assert result == code
    if code == 0:
        assert "  the API serves churn production -> 2 (after " in out
    else:
        assert "error: churn production -> 2 not served after 0 s; last answer: version 1" in err
    assert f"promote: waiting until {fake_api} serves production -> 2..." in err


def test_wait_without_an_api_waits_out_the_alias_ttl(cli, two_versions, capsys):
    # GIVEN two versions and no API known
    # WHEN version 2 is promoted with --wait on a stack whose TTL is 0 s
    assert cli("promote", "churn", "2", "--wait", "--alias-ttl", "0") == 0
    # THEN it says the change is served everywhere because the TTL passed, not because the API said so
    out = capsys.readouterr().out
    assert "production -> 2 is served everywhere: the alias TTL (0 s) has passed (the API was not asked)" in out


def test_every_option_with_a_default_says_it_in_its_help():
    # GIVEN the CLI's parser, subcommands included
    import argparse

    # WHEN every option with a default is looked at THEN its help states the default
    silent = [
        f"{path} {name}"
        for path, name, action in cli_arguments(build_parser())
        if action.option_strings
        and action.default not in (None, False, [], argparse.SUPPRESS)
        and "default" not in (action.help or "")
    ]
    assert silent == []
