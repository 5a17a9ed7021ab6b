"""An unmodified Open Inference Protocol client against the local stack: tritonclient.http with its defaults (binary
tensor data for inputs and outputs), only the API key added as a header, agreeing with the REST route."""

from __future__ import annotations

import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import tritonclient.http as triton
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

import sklambda
from sklambda.publishing import publish
from sklambda.registry.schema import to_records
from sklambda.registry.signing import CardSigner
from sklambda.registry.store import Registry
from tests.support import point_at_stack, triton_inputs

MODEL = "oip-tiny"


def mixed_data(n: int = 400, seed: int = 3) -> tuple[pd.DataFrame, pd.Series]:
    """A float feature with missing values, an integer, a boolean and a string category; a yes/no target."""
    rng = np.random.default_rng(seed)
    income = rng.normal(50.0, 10.0, n).round(2)
    income[rng.random(n) < 0.1] = np.nan
    X = pd.DataFrame(
        {
            "income": income,
            "age": rng.integers(18, 80, n),
            "active": rng.random(n) < 0.5,
            "plan": rng.choice(["basic", "plus", "premium"], n),
        }
    )
    logit = 0.05 * (np.nan_to_num(income, nan=50.0) - 50) - 0.03 * (X["age"] - 45) + np.where(X["active"], 1.0, -1.0)
    return X, pd.Series(np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no"), name="churned")


@pytest.fixture(scope="module")
def published(project_stack) -> SimpleNamespace:
    """The mixed-type model published to the shared stack's registry and promoted to production."""
    X, y = mixed_data()
    prep = ColumnTransformer(
        [
            ("num", SimpleImputer(strategy="median"), ["income", "age"]),
            ("flag", "passthrough", ["active"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
        ]
    )
    model = Pipeline([("prep", prep), ("model", LogisticRegression(max_iter=500))]).fit(X, y)
    details = project_stack.details
    with pytest.MonkeyPatch.context() as patch:
        point_at_stack(project_stack, patch)
        card = publish(
            model,
            X,
            y,
            name=MODEL,
            alias="production",
            registry=Registry(details["model_bucket"]),
            signer=CardSigner(details["signing_key_id"]),
        )
    return SimpleNamespace(card=card, X=X)


def rest_predict(stack, rows: list[dict]) -> dict:
    request = urllib.request.Request(
        f"{stack.api_url}/models/{MODEL}/predict",
        data=json.dumps({"instances": rows}).encode(),
        headers={"x-api-key": stack.api_key, "content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def test_tritonclient_unmodified_infers_with_binary_tensors_and_agrees_with_the_rest_route(project_stack, published):
    # GIVEN tritonclient.http as shipped, pointed at the local API (host:port, no scheme) with only the API key added
    client = triton.InferenceServerClient(url=project_stack.api_url.removeprefix("http://"))
    headers = {"x-api-key": project_stack.api_key}
    # WHEN it asks whether the server lives and what it is
    assert client.is_server_live(headers=headers)
    server = client.get_server_metadata(headers=headers)
    # THEN it is sklambda, with the binary tensor data extension
    assert server["name"] == "sklambda" and server["version"] == sklambda.__version__
    assert "binary_tensor_data" in server["extensions"]
    # WHEN it reads the model metadata THEN each feature has a datatype: float, int, bool, string
    metadata = client.get_model_metadata(MODEL, headers=headers)
    datatypes = {i["name"]: i["datatype"] for i in metadata["inputs"]}
    assert datatypes == {"income": "FP64", "age": "INT64", "active": "BOOL", "plan": "BYTES"}
    # GIVEN eight rows, the second with income missing (NaN), as tritonclient's default binary inputs
    frame = published.X.head(8).reset_index(drop=True)
    frame.loc[1, "income"] = np.nan
    inputs = triton_inputs(frame, datatypes)
    assert all(i._get_binary_data() is not None for i in inputs)  # the extension's default, not JSON data
    # WHEN it infers with its defaults (all outputs, as binary data)
    result = client.infer(MODEL, inputs, headers=headers)
    # THEN the outputs came as binary tensors
    assert "binary_data_size" in result.get_output("predict")["parameters"]
    assert "binary_data_size" in result.get_output("predict_proba")["parameters"]
    # AND they are the REST route's predictions and probabilities for the same rows (the NaN sent as null)
    rest = rest_predict(project_stack, to_records(frame))
    assert [p.decode() for p in result.as_numpy("predict").tolist()] == rest["predictions"]
    classes = result.get_output("predict_proba")["parameters"]["classes"]
    assert result.as_numpy("predict_proba").tolist() == [[p[c] for c in classes] for p in rest["probabilities"]]
    client.close()


def test_tritonclient_errors_come_back_as_its_own_exception_with_the_protocol_message(project_stack, published):
    # GIVEN tritonclient and a request that leaves a feature out
    client = triton.InferenceServerClient(url=project_stack.api_url.removeprefix("http://"))
    frame = published.X.head(2)[["income", "age", "active"]]
    inputs = triton_inputs(frame, {"income": "FP64", "age": "INT64", "active": "BOOL"})
    # WHEN it infers THEN it raises InferenceServerException with the 422 and the protocol's error text
    with pytest.raises(triton.InferenceServerException) as refused:
        client.infer(MODEL, inputs, headers={"x-api-key": project_stack.api_key})
    assert refused.value.status() == "422" and "plan" in refused.value.message()
    client.close()


def test_tritonclient_keeps_a_base_path_in_its_url_so_it_can_call_a_deployed_stage():
    # GIVEN a server on this machine that records request paths, and tritonclient pointed at host:port/v1 (a
    #       deployed API's URL carries its stage, e.g. https://<id>.execute-api.<region>.amazonaws.com/v1)
    seen: list[str] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    # A short poll interval: shutdown() waits for the loop to look (0.5 s by default).
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        client = triton.InferenceServerClient(url=f"127.0.0.1:{server.server_address[1]}/v1")
        # WHEN it asks whether the server lives
        assert client.is_server_live()
        client.close()
    finally:
        server.shutdown()
        server.server_close()
    # THEN the request went under the stage
    assert seen == ["/v1/v2/health/live"]
