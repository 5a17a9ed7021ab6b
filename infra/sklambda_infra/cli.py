"""The `sklambda` command: publish, gate, promote (canaries too), roll back, shadow, inspect models; run it locally.

Where the registry lives: --bucket/--signing-key/--endpoint-url, else SKLAMBDA_MODEL_BUCKET,
SKLAMBDA_SIGNING_KEY_ID and AWS_ENDPOINT_URL, else a running local stack's .sklambda/local.json
(beside the nearest template.yaml).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sklambda import config
from sklambda.connection import ENV_DATA_BUCKET, Target, find_local_details, read_local_details, resolve
from sklambda.errors import ConfigurationError, SklambdaError
from sklambda_infra import cli_errors, retrain_cli, rollout
from sklambda_infra.local.cli import TEMPLATE, project_root
from sklambda_infra.local.cli import register as register_local
from sklambda_infra.progress import Progress


def _local_details() -> tuple[dict[str, Any] | None, Path]:
    """The running local stack's details and their path (sklambda.connection's rules); None when none is running
    (no file, or the process that wrote it is gone: a stack stopped by a crash)."""
    path = find_local_details()
    return read_local_details(path), path


def _connect(args: argparse.Namespace, *, need_signer: bool = False, need_key: bool = False):
    """Resolve where the registry is (sklambda.connection.resolve: options, else environment, else a running local
    stack) and return (Registry, CardSigner | None); the signing key resolved is left in `args.signing_key`."""
    from sklambda.registry.signing import CardSigner
    from sklambda.registry.store import Registry

    try:
        target = resolve(
            model_bucket=args.bucket,
            signing_key_id=args.signing_key,
            endpoint_url=args.endpoint_url,
            need_signing_key=need_signer or need_key,
            arguments="--bucket/--signing-key",
        )
    except ConfigurationError as e:
        hint = " (or pass --no-verify to read the card without checking its signature)" if need_key else ""
        raise SklambdaError(f"{e.message}{hint}") from None
    if target.endpoint_url:
        try:
            _endpoint_url(target.endpoint_url)
        except argparse.ArgumentTypeError as e:
            raise SklambdaError(f"the AWS endpoint is not usable ({config.AWS_ENDPOINT_URL}?): {e}") from None
    if target.local_file is not None:
        print(f"using the local stack from {target.local_file}", file=sys.stderr)
    target.use()
    if target.local_file is not None and target.runtime_path and not os.environ.get(config.RUNTIME_PATH, "").strip():
        os.environ[config.RUNTIME_PATH] = target.runtime_path  # the stack's workers' packages: publish checks in them
    args.signing_key = target.signing_key_id
    return Registry(target.model_bucket), (CardSigner(target.signing_key_id) if need_signer else None)


def _read_card(args: argparse.Namespace):
    """(registry, card, SignatureCheck) of the version `args` names: verified with the stack's signing key unless
    --no-verify. A card that fails verification is refused (ModelRefused), never returned."""
    from sklambda.errors import ModelRefused
    from sklambda.registry.signing import CardVerifier, read_card

    registry, _ = _connect(args, need_key=not args.no_verify)
    version = args.version or registry.resolve(args.name, alias=args.alias)
    verifier = None if args.no_verify else CardVerifier(args.signing_key)
    try:
        card, check = read_card(registry, verifier, args.name, version)
    except ModelRefused as e:
        hint = ""
        if e.reason in ("unsigned", "bad_signature"):
            hint = "; the serving functions refuse it too (`--no-verify` shows it, marked NOT VERIFIED)"
        raise ModelRefused(f"refusing to show the card: {e.message}{hint}", reason=e.reason) from None
    if not check.verified:
        print(f"WARNING: NOT VERIFIED: {UNVERIFIED}", file=sys.stderr)
    return registry, card, check


UNVERIFIED = "--no-verify was given, the signature of this card was not checked; do not trust its contents"


def _publish(args: argparse.Namespace) -> int:
    import pandas as pd

    from sklambda.errors import PublishRejected
    from sklambda.publishing import publish
    from sklambda_infra.modelview import compiled_text
    from sklambda_infra.runtime import ensure_runtime_path, runtime_path_ready

    registry, signer = _connect(args, need_signer=True)
    # Every input file is read and checked before the target runtime is built (~15 s the first time on a machine):
    # a typo in a path, or a file that is not a CSV, is refused at once, all problems together.
    problems = _model_file_problems(args.model)
    frames: dict[str, pd.DataFrame] = {}
    for option, path in (("data", args.data), ("holdout", args.holdout)):
        if path is None:
            continue
        try:
            frame = pd.read_csv(path)
        except FileNotFoundError:
            problems.append(f"[{option}] no file {path}")
            continue
        except ValueError as e:  # pandas ParserError / EmptyDataError, UnicodeDecodeError
            problems.append(f"[{option}] {path} is not a readable CSV file: {str(e).splitlines()[0]}")
            continue
        if args.target not in frame.columns:
            columns = ", ".join(map(str, frame.columns))
            problems.append(f"[target] target column {args.target!r} is not in {path} (columns: {columns})")
        frames[option] = frame
    if problems:
        print("error: publish refused:\n" + "\n".join(f"  - {m}" for m in problems), file=sys.stderr)
        return 2
    progress = Progress("publish")
    if runtime_path_ready():
        ensure_runtime_path()
    else:
        with progress.stage("building the target runtime, the dependency layer's host copy (first use only, ~15 s)"):
            ensure_runtime_path(progress.note)
    data, holdout = frames["data"], frames.get("holdout")
    options: dict[str, Any] = {}
    if holdout is not None:
        options.update(X_holdout=holdout.drop(columns=[args.target]), y_holdout=holdout[args.target])
    if (args.cost_fp is None) != (args.cost_fn is None):
        print(
            "error: publish refused:\n  - [decision]: give both --cost-fp and --cost-fn (either may be 0)",
            file=sys.stderr,
        )
        return 2
    if args.cost_fp is not None:
        options["costs"] = (args.cost_fp, args.cost_fn)
    try:
        card = publish(
            args.model,  # the file's exact bytes are uploaded, after the checks read them
            data.drop(columns=[args.target]),
            data[args.target],
            name=args.name,
            registry=registry,
            signer=signer,
            version=args.version,
            alias=args.promote,
            pii=args.pii,
            nullable=args.nullable,
            categorical=args.categorical,
            description=args.description,
            owner=args.owner,
            intended_use=args.intended_use,
            limitations=args.limitation,
            threshold=args.threshold,
            positive_class=args.positive_class,
            min_metrics=dict(args.min_metric) or None,
            code=args.code,
            on_stage=progress.step,
            allow_holdout_overlap=args.allow_holdout_overlap,
            segments=args.segment,
            sensitive=args.sensitive,
            fairness_bounds=dict(args.fairness_bound) or None,
            compile=False if args.no_compile else None,
            **options,
        )
    except BaseException as e:
        progress.fail()
        if not isinstance(e, PublishRejected):
            raise
        # The message is already the report, one line per problem: no need to repeat e.errors.
        print(f"error: {e.message}", file=sys.stderr)
        return 2
    progress.done()
    print(f"published {card.name} version {card.version} (sha256 {card.artifact.sha256[:12]}, signed)")
    print(f"  served by {compiled_text(card)}")
    _print_metrics(card.metrics)
    if card.decision:
        d = card.decision
        print(f"  decision: {d['positive_class']} when P >= {d['threshold']:.4f} ({d['source']})")
    for w in (card.quality or {}).get("warnings", []):
        where = f" {w['feature']!r}" if w.get("feature") else ""
        print(f"  warning [{w['check']}]{where}: {w['message']}")
    if args.promote:
        print(f"{args.promote} -> {card.version}")
        _say_when(args, registry)
    return 0


def _endpoint_url(text: str) -> str:
    """--endpoint-url: an http(s) URL, as botocore requires (it raises a bare ValueError for anything else)."""
    from urllib.parse import urlsplit

    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(f"expected an http(s) URL such as http://127.0.0.1:4566, got {text!r}")
    return text


def _model_file_problems(path: str) -> list[str]:
    """Why the --model file cannot be a model, read before anything slow runs: missing, unreadable, or not a pickle
    (a CSV given as the model). Its content is only scanned here, never run (sklambda.publishing.artifact)."""
    from sklambda.publishing.artifact import ArtifactUnreadable, scan_artifact

    if not Path(path).is_file():
        return [f"[model] no file {path}"]
    try:
        scan_artifact(Path(path).read_bytes())
    except OSError as e:
        return [f"[model] cannot read {path}: {e.strerror or e}"]
    except ArtifactUnreadable as e:
        return [f"[model] {path} is not a model saved with joblib.dump: {e}"]
    return []


def _metric_gate(text: str) -> tuple[str, float]:
    """NAME=VALUE for --min-metric and --fairness-bound."""
    name, sep, value = text.partition("=")
    try:
        if not sep or not name.strip():
            raise ValueError
        return name.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, e.g. roc_auc=0.8, got {text!r}") from None


def _print_metrics(metrics: dict) -> None:
    shown = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, float))
    print(f"  {metrics.get('split', '')} metrics: {shown}")


def _promote(args: argparse.Namespace) -> int:
    """Move an alias (or start, ramp or finish a canary on it), after the champion/challenger gate with --gate."""
    _check_promote(args)
    gate = (_gate_frame(args), _gate_config(args)) if args.gate else None  # a bad file or option before connecting
    registry, _ = _connect(args, need_key=args.gate)
    if args.finish:
        current = registry.get_alias(args.name, args.alias)
        record = registry.finish_canary(args.name, args.alias)
        print(f"{args.name}: {record.alias} -> {record.version} (canary finished; was {current.version})")
        return _takes_effect(args, registry, record)
    _check_schemas(args, registry)
    if gate is not None:
        champion = registry.get_alias(args.name, args.alias).version
        result = _run_gate(args, registry, champion, args.version, *gate)
        _print_gate(args, result, champion, args.version)
        if result.decision != "replace":
            print(f"error: not promoted: the gate says {result.decision}: {result.reason}", file=sys.stderr)
            return cli_errors.FAILED
    if args.canary is not None:
        return _start_canary(args, registry)
    before = _alias_target(registry, args.name, args.alias)
    record = registry.set_alias(args.name, args.alias, args.version)
    if before == record.version:
        print(f"{args.name}: {record.alias} already points at version {record.version}; nothing changed")
        return 0
    print(f"{args.name}: {record.alias} -> {record.version}" + (f" (was {before})" if before else ""))
    return _takes_effect(args, registry, record)


# promote's options that only mean something with --canary, and their names in the bounds (helper "rollout"'s
# sklambda.updating.rollout.RolloutBounds states their defaults).
_BOUND_OPTIONS = ("max_error_rate_increase", "max_latency_ratio", "max_quality_drop", "min_requests")


def _check_promote(args: argparse.Namespace) -> None:
    """Refuse promote options that do not go together (SklambdaError: exit 2), before anything is read."""
    given = [f"--{o.replace('_', '-')}" for o in ("key", *_BOUND_OPTIONS) if getattr(args, o) is not None]
    if args.finish:
        extra = [
            o
            for o, v in (
                ("VERSION", args.version),
                ("--canary", args.canary),
                ("--gate", args.gate),
                ("--allow-schema-change", args.allow_schema_change),
            )
            if v
        ]
        if extra or given:
            refused = ", ".join(extra + given)
            raise SklambdaError(f"--finish moves the alias to its canary version: it takes no {refused}")
        return
    if args.version is None:
        raise SklambdaError("give the VERSION to promote (or --finish to move the alias to its canary version)")
    if given and args.canary is None:
        raise SklambdaError(f"{', '.join(given)} go with --canary PERCENT")
    if not args.gate and (args.data or args.target):
        raise SklambdaError("--data and --target go with --gate")
    if args.gate and not (args.data and args.target):
        raise SklambdaError("--gate needs --data CSV and --target COLUMN: the labeled rows both versions are scored on")


def _check_schemas(args: argparse.Namespace, registry: Any) -> None:
    """Refuse (SklambdaError) a version whose input schema refuses rows shaped for the alias's version (a required
    feature one has and the other lacks, a type change: sklambda.registry.schema.schema_changes): its callers would
    get 422s from it, from the canary's share of them at once. With --allow-schema-change, print the warning and go
    on. Nothing to compare on an alias's first promote or a version that does not exist (start_canary says so)."""
    from sklambda.registry.schema import schema_changes

    stable = _alias_target(registry, args.name, args.alias)
    if stable is None or stable == args.version or not registry.version_exists(args.name, args.version):
        return
    changes = schema_changes(
        registry.get_card(args.name, stable).input_schema,
        registry.get_card(args.name, args.version).input_schema,
        old_name=f"version {stable}",
        new_name=f"version {args.version}",
    )
    if not changes:
        return
    listed = "\n".join(f"  - {c}" for c in changes)
    what = f"a canary of version {args.version}" if args.canary is not None else f"version {args.version}"
    message = (
        f"the input schemas of versions {stable} and {args.version} of {args.name} differ, so {what} refuses "
        f"requests shaped for version {stable} (422):\n{listed}"
    )
    if not args.allow_schema_change:
        raise SklambdaError(f"{message}\nupdate the callers first, or pass --allow-schema-change to promote anyway")
    print(f"warning: {message}\n  (--allow-schema-change: promoting anyway)", file=sys.stderr)


def _start_canary(args: argparse.Namespace, registry: Any) -> int:
    """Start (or ramp) a canary of args.version on the alias, its key checked against both versions' schemas and its
    bounds by the rollout check's rules (sklambda.updating.rollout.rollout_bounds_from)."""
    from sklambda.updating.rollout import rollout_bounds_from

    current = registry.get_alias(args.name, args.alias)
    if args.key is not None:
        for version in (current.version, args.version):
            names = registry.get_card(args.name, version).input_schema.names
            if args.key not in names:
                raise SklambdaError(
                    f"--key {args.key!r} is not a feature of version {version} of {args.name} (its features: "
                    f"{', '.join(names)}): the canary's key must be a feature of both versions"
                )
    bounds = {o: getattr(args, o) for o in _BOUND_OPTIONS if getattr(args, o) is not None}
    try:
        rollout_bounds_from(bounds)  # the rollout check's own rules, before anything is written
    except ValueError as e:
        raise SklambdaError(f"rollback bounds: {e}") from None
    try:
        record = registry.start_canary(
            args.name, args.alias, args.version, args.canary, key=args.key, bounds=bounds or None
        )
    except ValueError as e:  # the alias's own stable version
        raise SklambdaError(str(e)) from None
    canary = record.canary
    ramp = current.canary is not None and current.canary.version == canary.version
    key = f"the feature {canary.key}" if canary.key else "each row's inference_id"
    print(f"{args.name}: {record.alias} -> {record.version}, canary {canary.version} takes {canary.weight:g} % of the "
          f"callers{f' (was {current.canary.weight:g} %)' if ramp else ''}, sticky per {key}")  # fmt: skip
    if canary.bounds:
        print(f"  rollback bounds: {', '.join(f'{k}={v:g}' for k, v in canary.bounds.items())}")
    return _takes_effect(args, registry, record)


def _gate_frame(args: argparse.Namespace) -> Any:
    """The --data CSV, checked to hold the --target column."""
    import pandas as pd

    try:
        frame = pd.read_csv(args.data)
    except FileNotFoundError:
        raise SklambdaError(f"no file {args.data}") from None
    except ValueError as e:
        raise SklambdaError(f"{args.data} is not a readable CSV file: {str(e).splitlines()[0]}") from None
    if args.target not in frame.columns:
        raise SklambdaError(
            f"target column {args.target!r} is not in {args.data} (columns: {', '.join(frame.columns)})"
        )
    return frame


def _gate_config(args: argparse.Namespace) -> Any:
    """The GateConfig of the --metric/--margin/--min-gain/--alpha given; the gate's own defaults otherwise."""
    from sklambda.updating.gate import GateConfig

    try:
        given = {"metric": args.metric, "margin": args.margin, "min_gain": args.min_gain, "alpha": args.alpha}
        return GateConfig(**{k: v for k, v in given.items() if v is not None})
    except ValueError as e:
        raise SklambdaError(str(e)) from None


def _run_gate(args: argparse.Namespace, registry: Any, champion: str, challenger: str, frame: Any, config: Any) -> Any:
    """Gate `challenger` against `champion` of args.name on `frame` (_gate_frame) with `config` (_gate_config):
    sklambda.updating.versions.gate_versions, both versions loaded verified with the signing key; the GateResult."""
    from sklambda.registry.signing import CardVerifier
    from sklambda.updating.versions import gate_versions

    try:
        return gate_versions(
            registry, CardVerifier(args.signing_key), args.name, champion, challenger,
            frame.drop(columns=[args.target]), frame[args.target].to_numpy(), config=config,
        )  # fmt: skip
    except ValueError as e:
        raise SklambdaError(str(e)) from None


def _print_gate(args: argparse.Namespace, result: Any, champion: str, challenger: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(result.to_dict()))
        return
    print(f"{args.name}: challenger {challenger} against champion {champion} on {result.rows:,} rows")
    print(f"  {result.reason}")
    print(f"  decision: {result.decision}")


def _gate(args: argparse.Namespace) -> int:
    """Gate a challenger version against the champion on a labeled CSV file (sklambda.updating.gate)."""
    from sklambda.updating.gate import REPLACE

    frame, config = _gate_frame(args), _gate_config(args)  # a bad file or option before connecting
    registry, _ = _connect(args, need_key=True)
    champion = args.champion or registry.resolve(args.name, alias="production")
    result = _run_gate(args, registry, champion, args.challenger, frame, config)
    _print_gate(args, result, champion, args.challenger)
    return 0 if result.decision == REPLACE else 1 if result.decision == "keep_champion" else 4


def _rollback(args: argparse.Namespace) -> int:
    registry, _ = _connect(args)
    before = registry.get_alias(args.name, args.alias)
    record = registry.rollback(args.name, args.alias)
    if before.canary is not None:
        print(f"{args.name}: {record.alias} canary {before.canary.version} dropped ({before.canary.weight:g} %): "
              f"version {record.version} answers every caller")  # fmt: skip
    else:
        print(f"{args.name}: {record.alias} rolled back to {record.version} (was {before.version})")
    return _takes_effect(args, registry, record)


def _shadow(args: argparse.Namespace) -> int:
    """Set or stop the shadow version of an alias (scored on captured traffic by the monitoring run, never answers)."""
    if args.stop == (args.version is not None):
        raise SklambdaError("give either a VERSION to shadow or --stop")
    registry, _ = _connect(args)
    if args.stop:
        before = registry.get_alias(args.name, args.alias).shadow
        registry.clear_shadow(args.name, args.alias)
        what = f"shadow {before.version} stopped" if before else "had no shadow; nothing changed"
        print(f"{args.name}: {args.alias} {what}")
        return 0
    before = registry.get_alias(args.name, args.alias).shadow
    try:
        record = registry.set_shadow(args.name, args.alias, args.version)
    except ValueError as e:  # the stable version, or the canary's
        raise SklambdaError(str(e)) from None
    was = "" if before is None or before.version == args.version else f" (was version {before.version})"
    print(f"{args.name}: {record.alias} -> {record.version}, shadow {args.version}{was}: scored on the captured "
          "requests of each monitoring window, never answering callers")  # fmt: skip
    return 0


def _alias_target(registry: Any, name: str, alias: str) -> str | None:
    """The version `alias` points at now, None when it does not exist yet (its first promote)."""
    from sklambda.errors import ModelNotFound

    try:
        return registry.get_alias(name, alias).version
    except ModelNotFound:
        return None


def _say_when(args: argparse.Namespace, registry: Any) -> tuple[rollout.AliasTtl, dict[str, Any] | None]:
    """Print when running functions serve an alias change; return the TTL and the local stack's details when the
    registry is that stack's."""
    local, _ = _local_details()
    stack = local if local and local.get("model_bucket") == registry.bucket else None
    ttl = rollout.alias_ttl(getattr(args, "alias_ttl", None), stack, project_root(None) / TEMPLATE)
    print(f"  running functions pick it up within the alias TTL: {ttl.seconds:g} s ({ttl.source})")
    return ttl, stack


def _takes_effect(args: argparse.Namespace, registry: Any, record: Any) -> int:
    """Say when running functions serve the alias change (`record`, the alias as written: its stable version and
    canary); with --wait, wait until they do (exit 1 on timeout): until the API answers with that version and that
    canary (rollout.served_rollout), or, with no API known, for the alias TTL."""
    ttl, stack = _say_when(args, registry)
    if not args.wait:
        return 0
    api_url = args.api_url or os.environ.get(rollout.API_URL_ENV) or (stack or {}).get("api_url")
    api_key = args.api_key or os.environ.get(rollout.API_KEY_ENV) or (stack or {}).get("api_key")
    api = rollout.Api(api_url, api_key) if api_url else None
    timeout = args.timeout if args.timeout is not None else ttl.seconds + rollout.WAIT_MARGIN_SECONDS
    canary = record.canary
    version = rollout.rollout_state(record.version, *((canary.version, canary.weight) if canary else ()))
    what = f"{args.alias} -> {version}"
    if api is None:
        step = f"no API URL known ({rollout.API_URL_ENV}, --api-url): waiting out the alias TTL for {what}"
    else:
        step = f"waiting until {api.url} serves {what}"
    progress = Progress(args.command)
    progress.step(step)
    served = rollout.wait_until_served(
        api, args.name, args.alias, version, ttl=ttl, timeout=timeout, ask=rollout.served_rollout
    )
    progress.done("done" if served.ok else "failed")
    if served.ok and served.checked:
        print(f"  the API serves {args.name} {what} (after {served.seconds:.1f} s)")
        if served.seconds < ttl.seconds:
            rest = ttl.seconds - served.seconds
            print(f"  containers that cached the alias before the change switch within {rest:.0f} s more")
        return 0
    if served.ok:
        print(f"  {what} is served everywhere: the alias TTL ({ttl.seconds:g} s) has passed (the API was not asked)")
        return 0
    last = f"; last answer: version {served.served}" if served.served else ""
    problem = f" ({served.problem})" if served.problem else ""
    print(
        f"error: {args.name} {what} not served after {served.seconds:.0f} s{problem}{last}",
        file=sys.stderr,
    )
    return cli_errors.FAILED


def _models_list(args: argparse.Namespace) -> int:
    from sklambda_infra.modelview import models_table

    registry, _ = _connect(args)
    models = {n: (registry.list_versions(n), registry.list_aliases(n)) for n in registry.list_models()}
    if args.json:
        print(json.dumps({n: {"versions": versions, "aliases": aliases} for n, (versions, aliases) in models.items()}))
        return 0
    print(models_table(models))
    return 0


def _models_show(args: argparse.Namespace) -> int:
    from sklambda_infra.modelview import card_text

    registry, card, check = _read_card(args)
    aliases = registry.list_aliases(card.name)
    records = [registry.get_alias(card.name, a) for a in aliases]
    rollouts = [r for r in records if r.canary is not None or r.shadow is not None]
    if args.json:
        shown = {
            r.alias: {k: v for k, v in r.to_dict().items() if k in ("version", "canary", "shadow")} for r in rollouts
        }
        print(json.dumps({**card.to_dict(), "verification": check.to_dict(), "rollouts": shown}, indent=2))
        return 0
    print(card_text(card, check, aliases, UNVERIFIED, rollouts))
    return 0


def _models_card(args: argparse.Namespace) -> int:
    from sklambda_infra.modelcard import render

    registry, card, check = _read_card(args)
    text = render(card, args.format, aliases=registry.list_aliases(card.name), verification=check)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        marked = "" if check.verified else ", marked NOT VERIFIED,"
        print(f"wrote the {args.format} model card of {card.name} version {card.version}{marked} to {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def _sample_write(args: argparse.Namespace) -> int:
    from sklambda_infra import penguins

    try:
        paths = penguins.write_sample(args.folder, overwrite=args.overwrite)
    except FileExistsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    model, train, holdout = (os.path.normpath(p) for p in paths)
    print(f"wrote the sample (Palmer penguins, real data: target {penguins.TARGET!r}, pii {', '.join(penguins.PII)}): "
          f"{model}, {train}, {holdout}")  # fmt: skip
    print("publish it with:")
    cost_fp, cost_fn = penguins.COSTS  # the decision threshold `make local`'s version 1 has, chosen the same way
    print(f"  sklambda publish --model {model} --data {train} --holdout {holdout} --target {penguins.TARGET} "
          f"--name {penguins.NAME} --pii {' '.join(penguins.PII)} --positive-class {penguins.POSITIVE_CLASS} "
          f"--cost-fp {cost_fp:g} --cost-fn {cost_fn:g} --promote staging")  # fmt: skip
    return 0


def _register_sample(sub: Any) -> None:
    sample = sub.add_parser("sample", help="the sample model's files, to try `sklambda publish` with")
    commands = sample.add_subparsers(dest="sample_command", required=True)
    p = commands.add_parser(
        "write", help="write model.joblib, train.csv and holdout.csv of the sample (Palmer penguins) into a folder"
    )
    p.add_argument("folder", nargs="?", default=".", help="where to write them, created if missing (default: .)")
    p.add_argument("--overwrite", action="store_true", help="replace the files when they are there already")
    p.set_defaults(func=_sample_write)


def _privacy_connection(args: argparse.Namespace) -> dict[str, Any]:
    """Endpoint, data bucket, capture prefix and key ciphertexts: options, else environment, else the local stack."""
    from sklambda import aws

    endpoint = args.endpoint_url or os.environ.get(config.AWS_ENDPOINT_URL)
    ciphertexts = list(getattr(args, "key_ciphertext", None) or [])
    if not ciphertexts and os.environ.get(config.PSEUDONYM_KEY_CIPHERTEXT):
        ciphertexts = [os.environ[config.PSEUDONYM_KEY_CIPHERTEXT]]
    bucket, prefix = getattr(args, "data_bucket", None), getattr(args, "prefix", None)
    need_local = (hasattr(args, "data_bucket") and not (bucket and ciphertexts)) or (
        not hasattr(args, "data_bucket") and not args.kms_key
    )
    if need_local:
        local, path = _local_details()
        if local is None:
            raise SklambdaError(
                "no capture bucket/key configured: pass --data-bucket and --key-ciphertext (or set "
                f"{config.PSEUDONYM_KEY_CIPHERTEXT}), or start the local stack with `make local`"
            )
        print(f"using the local stack from {path}", file=sys.stderr)
        capture = (local.get("captures") or [{}])[0]
        bucket = bucket or capture.get("bucket")
        # Empty when the local stack partitions by model as Firehose does; else the stream's plain local prefix.
        prefix = prefix or capture.get("prefix")
        generated = local.get("generated_parameters", {}).get("PseudonymKeyCiphertext")
        ciphertexts = ciphertexts or ([generated] if generated else [])
        args.kms_key = getattr(args, "kms_key", None) or local.get("data_key_id")
        target = Target.from_local_details(local, path)
        aws.configure(
            endpoint_url=endpoint or target.endpoint_url,
            region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or target.region,
            access_key_id=os.environ.get("AWS_ACCESS_KEY_ID") or target.access_key_id,
            secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY") or target.secret_access_key,
        )
    elif endpoint:
        aws.configure(endpoint_url=endpoint)
    return {"bucket": bucket, "prefix": prefix, "ciphertexts": ciphertexts}


def _privacy_create_key(args: argparse.Namespace) -> int:
    from sklambda.monitoring.capture import create_key_ciphertext

    _privacy_connection(args)
    if not args.kms_key:
        raise SklambdaError("pass --kms-key (the stack's DataKeyArn output)")
    print(create_key_ciphertext(args.kms_key))
    return 0


def _privacy_erase(args: argparse.Namespace) -> int:
    from sklambda.monitoring.capture import Pseudonymizer
    from sklambda.monitoring.privacy import erase_subject

    where = _privacy_connection(args)
    if not where["bucket"] or not where["ciphertexts"]:
        raise SklambdaError("no capture bucket or pseudonymization key found (see --data-bucket, --key-ciphertext)")
    keys = [Pseudonymizer.from_ciphertext(c) for c in where["ciphertexts"]]
    report = erase_subject(where["bucket"], args.model, args.subject, keys, prefix=where["prefix"])
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print(
            f"removed {report.records_removed} record(s) of the subject from {len(report.keys)} object(s) of "
            f"model {args.model} ({report.objects_rewritten} rewritten, {report.objects_deleted} deleted, "
            f"{report.versions_deleted} old version(s) purged; {report.objects_scanned} scanned); removed "
            f"{report.labels_removed} ground-truth label(s) of those predictions ({report.label_objects_rewritten} "
            f"label object(s) rewritten, {report.label_objects_deleted} deleted)"
        )
    return 0


def _feedback_send(args: argparse.Namespace) -> int:
    """Upload a label file to feedback/<model>/ of the resolved stack's data bucket; with --wait, print its summary."""
    import time

    from sklambda import aws
    from sklambda.monitoring.ground_truth.files import FeedbackInputError, parse_feedback_key

    path = Path(args.file)
    if not path.is_file():
        raise SklambdaError(f"no such file: {path}")
    key = f"{config.FEEDBACK_PREFIX}{args.model}/{path.name}"
    try:
        target_key = parse_feedback_key(key)
    except FeedbackInputError as e:
        raise SklambdaError(e.message) from None
    try:
        target = resolve(
            model_bucket=args.bucket, endpoint_url=args.endpoint_url, need_signing_key=False, arguments="--bucket"
        )
    except ConfigurationError as e:
        if not args.data_bucket:
            raise SklambdaError(e.message) from None
        target = Target(endpoint_url=args.endpoint_url)  # the bucket is given: boto3's own credentials and region
    bucket = args.data_bucket or target.data_bucket
    if not bucket:
        raise SklambdaError(f"no data bucket: pass --data-bucket (the DataBucketName output) or set {ENV_DATA_BUCKET}")
    if target.local_file is not None:
        print(f"using the local stack from {target.local_file}", file=sys.stderr)
    target.use()
    from boto3.s3.transfer import S3Transfer  # multipart for large files; sklambda.aws clients are botocore's

    s3 = aws.client("s3")
    S3Transfer(s3).upload_file(str(path), bucket, key)
    print(f"uploaded s3://{bucket}/{key}", file=sys.stderr)
    if not args.wait:
        return 0
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            # The summary of this upload: written after the upload's own LastModified.
            head = s3.head_object(Bucket=bucket, Key=key)
            got = s3.get_object(Bucket=bucket, Key=target_key.summary_key)
            if got["LastModified"] >= head["LastModified"]:
                summary = json.loads(got["Body"].read())
                print(json.dumps(summary, indent=2))
                return 0 if summary.get("status") == "succeeded" else 1
        except s3.exceptions.NoSuchKey:
            pass
        if time.monotonic() > deadline:
            raise SklambdaError(f"no summary at s3://{bucket}/{target_key.summary_key} after {args.timeout:g} s")
        time.sleep(0.5)


def _register_feedback(sub: Any) -> None:
    feedback = sub.add_parser("feedback", help="ground-truth labels of served predictions")
    commands = feedback.add_subparsers(dest="feedback_command", required=True)
    p = commands.add_parser("send", help="upload a label file (CSV or JSON Lines) to feedback/MODEL/ of the stack")
    p.add_argument("model", help="the model the labels are for")
    p.add_argument("file", help=".csv or .jsonl (optionally .gz): inference_id (or id), label, optional time")
    p.add_argument("--data-bucket", help=f"the stack's data bucket (default: ${ENV_DATA_BUCKET}, else the local stack)")
    p.add_argument("--wait", action="store_true", help="wait for the file's summary and print it (exit 1 if failed)")
    p.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS", help="with --wait (default: 60)")
    p.set_defaults(func=_feedback_send)


def _register_privacy(sub: Any) -> None:
    privacy = sub.add_parser("privacy", help="pseudonymization key and right to erasure of captured predictions")
    commands = privacy.add_subparsers(dest="privacy_command", required=True)
    p = commands.add_parser("create-key", help="print a new pseudonymization key, wrapped by KMS (base64)")
    p.add_argument("--kms-key", help="KMS key that wraps it: the stack's DataKeyArn output (default: local stack)")
    p.set_defaults(func=_privacy_create_key)
    p = commands.add_parser(
        "erase", help="remove every captured record of one data subject and the ground-truth labels of those records"
    )
    p.add_argument("--model", required=True, help="model whose captured records are searched")
    p.add_argument("--subject", required=True, help="the subject's raw identifier (the value of a pii feature)")
    p.add_argument("--data-bucket", help="bucket holding capture/ (the DataBucketName output)")
    p.add_argument(
        "--key-ciphertext",
        action="append",
        help=f"wrapped pseudonymization key; repeat for every key still in retained captures "
        f"(default: ${config.PSEUDONYM_KEY_CIPHERTEXT})",
    )
    p.add_argument("--prefix", help="where the model's captures are (default: capture/model=<model>/)")
    p.add_argument("--json", action="store_true", help="print the erasure report as JSON")
    p.set_defaults(func=_privacy_erase)


def _wait_options(p: argparse.ArgumentParser) -> None:
    """promote/rollback: when the change takes effect, and --wait for it."""
    p.add_argument(
        "--wait",
        action="store_true",
        help="wait until the API serves the change (GET /models/NAME?alias=), or, with no API URL known, for the "
        "alias TTL; exit 1 on timeout",
    )
    p.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help=f"give up waiting after this long (default: the alias TTL + {rollout.WAIT_MARGIN_SECONDS:.0f} s)",
    )
    p.add_argument(
        "--alias-ttl",
        type=float,
        metavar="SECONDS",
        help=f"the stack's {rollout.TTL_PARAMETER} (default: the running local stack's, else the template's default)",
    )
    p.add_argument(
        "--api-url",
        help=f"the API to ask with --wait (default: ${rollout.API_URL_ENV}, else the running local stack's)",
    )
    p.add_argument(
        "--api-key",
        help=f"its API key (default: ${rollout.API_KEY_ENV}, else the running local stack's)",
    )


def _gate_options(p: argparse.ArgumentParser, *, required: bool) -> None:
    """gate and promote --gate: the labeled rows, and the gate's settings (sklambda.updating.gate.GateConfig's)."""
    p.add_argument(
        "--data", required=required, help="labeled rows: a CSV file with the model's features and the target"
    )
    p.add_argument("--target", required=required, help="the label column of --data")
    p.add_argument("--metric", help="roc_auc (paired DeLong) or a bootstrap metric (default: roc_auc)")
    p.add_argument("--margin", type=float, help="how much worse may still be non-inferior (default: 0.01)")
    p.add_argument("--min-gain", type=float, help="the least gain worth a replacement (default: 0.005)")
    p.add_argument("--alpha", type=float, help="one-sided level of both tests (default: 0.05)")


def _weight(text: str) -> float:
    """--canary: a percent strictly between 0 and 100 (sklambda.registry.store.check_weight)."""
    from sklambda.registry.store import check_weight

    try:
        return check_weight(float(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(
            str(e) if "between" in str(e) else f"expected a percent, got {text!r}"
        ) from None


# The bounds' defaults are stated once, by the rollout check (sklambda.updating.rollout.RolloutBounds).
_BOUND_DEFAULT = " (default: the rollout check's, sklambda.updating.rollout.RolloutBounds)"
NO_VERIFY_HELP = (
    "do not check the card's signature with the signing key (default: checked, and a card that fails is refused); "
    "the card is then shown marked NOT VERIFIED"
)


def build_parser() -> argparse.ArgumentParser:
    import sklambda

    parser = argparse.ArgumentParser(prog="sklambda", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"sklambda {sklambda.__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="print the traceback of every error, not only of unexpected ones"
    )
    parser.add_argument("--bucket", help=f"model bucket (default: ${config.MODEL_BUCKET})")
    parser.add_argument("--signing-key", help=f"KMS signing key id or ARN (default: ${config.SIGNING_KEY_ID})")
    parser.add_argument(
        "--endpoint-url",
        type=_endpoint_url,
        help="AWS endpoint, e.g. the local stack's (default: $AWS_ENDPOINT_URL)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("publish", help="publish a joblib model with its training data as a new signed version")
    p.add_argument("--model", required=True, help="path of a joblib file holding a fitted estimator or pipeline")
    p.add_argument("--data", required=True, help="training CSV (features and the target column)")
    p.add_argument("--target", required=True, help="name of the target column")
    p.add_argument("--name", required=True, help="model name")
    p.add_argument(
        "--holdout", help="holdout CSV with the same columns, for the card's metrics (default: none, metrics on --data)"
    )
    p.add_argument(
        "--code",
        nargs="*",
        default=[],
        metavar="PATH",
        help="module files (feature_utils.py) and package folders (mypkg/) the model's pickle imports, shipped with it",
    )
    p.add_argument("--version", help="version id (default: next integer)")
    p.add_argument("--promote", metavar="ALIAS", help="point this alias at the new version (default: none moves)")
    p.add_argument("--pii", nargs="*", default=[], metavar="COLUMN", help="columns holding personal data")
    p.add_argument("--nullable", nargs="*", default=[], metavar="COLUMN", help="columns allowed to be null")
    p.add_argument("--categorical", nargs="*", default=[], metavar="COLUMN", help="treat these columns as categories")
    p.add_argument("--description", default="", help="what the model is for (default: empty)")
    p.add_argument("--owner", default="", help="team or person answerable for the model (model card; default: empty)")
    p.add_argument("--intended-use", default="", help="what the model may be used for (model card; default: empty)")
    p.add_argument("--limitation", action="append", default=[], metavar="TEXT", help="a known limitation (repeatable)")
    p.add_argument(
        "--min-metric",
        action="append",
        default=[],
        type=_metric_gate,
        metavar="NAME=VALUE",
        help="refuse to publish when this metric is below VALUE (above, for mae/rmse/log_loss); repeatable",
    )
    p.add_argument(
        "--threshold",
        type=float,
        help="decision threshold on P(positive class), binary classifiers (default: 0.5, or chosen from the costs)",
    )
    p.add_argument(
        "--cost-fp", type=float, help="cost of a false positive: with --cost-fn, chooses the threshold (default: none)"
    )
    p.add_argument("--cost-fn", type=float, help="cost of a false negative (default: none)")
    p.add_argument("--positive-class", help="the class the threshold is about (default: the model's second class)")
    p.add_argument(
        "--allow-holdout-overlap",
        action="store_true",
        help="publish even when the holdout is mostly copies of training rows (a warning, recorded in the card)",
    )
    p.add_argument(
        "--no-compile",
        action="store_true",
        help="do not try the compiled evaluator: the predict function serves this version with scikit-learn "
        "(default: compiled when the parity gate proves it agrees with the model; env SKLAMBDA_COMPILE=false too)",
    )
    p.add_argument(
        "--segment",
        action="append",
        default=[],
        metavar="COLUMN",
        help="a categorical column whose groups get their own metrics in the card (repeatable; not pii)",
    )
    p.add_argument(
        "--sensitive",
        action="append",
        default=[],
        metavar="COLUMN",
        help="a segment also checked for demographic parity and equal opportunity (repeatable; not pii)",
    )
    p.add_argument(
        "--fairness-bound",
        action="append",
        default=[],
        type=_metric_gate,
        metavar="NAME=GAP",
        help="largest acceptable gap between groups, e.g. demographic_parity_difference=0.05 (repeatable; "
        "default 0.1 for rates and AUC, none for mae and mean_bias)",
    )
    p.set_defaults(func=_publish)

    p = sub.add_parser(
        "promote",
        help="point an alias at a version, or give it a share of the callers (--canary), after the gate (--gate)",
    )
    p.add_argument("name", help="model name")
    p.add_argument("version", nargs="?", help="the version the alias will point at (not with --finish)")
    p.add_argument("--alias", default="production", help="the alias to move (default: production)")
    p.add_argument(
        "--canary",
        type=_weight,
        metavar="PERCENT",
        help="do not move the alias: VERSION answers this percent of the callers (0 < PERCENT < 100), sticky per "
        "caller; again with another percent, a ramp (default: no canary)",
    )
    p.add_argument(
        "--key",
        metavar="FEATURE",
        help="with --canary: the feature whose value identifies a caller, a feature of both versions (default: each "
        "row's inference_id)",
    )
    p.add_argument(
        "--max-error-rate-increase",
        type=float,
        metavar="X",
        help="with --canary: roll back when the canary's error rate exceeds the stable version's by more"
        + _BOUND_DEFAULT,
    )
    p.add_argument(
        "--max-latency-ratio",
        type=float,
        metavar="X",
        help="with --canary: roll back when the canary's latency exceeds the stable version's times this"
        + _BOUND_DEFAULT,
    )
    p.add_argument(
        "--max-quality-drop",
        type=float,
        metavar="X",
        help="with --canary: roll back when the canary's quality (labeled rows) is lower by more than this"
        + _BOUND_DEFAULT,
    )
    p.add_argument(
        "--min-requests",
        type=int,
        metavar="N",
        help="with --canary: requests per version before the bounds are judged" + _BOUND_DEFAULT,
    )
    p.add_argument("--finish", action="store_true", help="move the whole alias to its canary version")
    p.add_argument(
        "--allow-schema-change",
        action="store_true",
        help="promote even when VERSION's input schema refuses requests shaped for the alias's version (a required "
        "feature added or dropped, a type changed): a warning instead of a refusal",
    )
    p.add_argument(
        "--gate",
        action="store_true",
        help="first gate VERSION (the challenger) against the alias's version (the champion) on --data, as "
        "`sklambda gate`; promote only when the decision is replace, else exit 1",
    )
    _gate_options(p, required=False)
    _wait_options(p)
    p.set_defaults(func=_promote)

    p = sub.add_parser(
        "gate",
        help="may a challenger version replace the champion? (a paired test on labeled rows; exit 0 replace, "
        "1 keep the champion, 4 reject)",
    )
    p.add_argument("name", help="model name")
    p.add_argument("challenger", help="the challenger's version")
    p.add_argument("--champion", help="the champion's version (default: the version production points at)")
    _gate_options(p, required=True)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_gate)

    p = sub.add_parser("rollback", help="drop an alias's canary at once, else point it back at its previous version")
    p.add_argument("name", help="model name")
    p.add_argument("--alias", default="production", help="the alias to move back (default: production)")
    _wait_options(p)
    p.set_defaults(func=_rollback)

    p = sub.add_parser(
        "shadow", help="score a version on each monitoring window's captured requests, never answering callers"
    )
    p.add_argument("name", help="model name")
    p.add_argument("version", nargs="?", help="the version to shadow the alias with (not with --stop)")
    p.add_argument("--alias", default="production", help="the alias it shadows (default: production)")
    p.add_argument("--stop", action="store_true", help="stop shadowing the alias")
    p.set_defaults(func=_shadow)

    models = sub.add_parser("models", help="list and inspect models").add_subparsers(
        dest="models_command", required=True
    )
    p = models.add_parser("list", help="models with their versions and aliases")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_models_list)
    p = models.add_parser("show", help="a model card")
    p.add_argument("name", help="model name")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--version", help="the version to show (default: the one --alias points at)")
    which.add_argument("--alias", default="production", help="default: production")
    p.add_argument("--json", action="store_true", help="print the whole card as JSON")
    p.add_argument("--no-verify", action="store_true", help=NO_VERIFY_HELP)
    p.set_defaults(func=_models_show)
    p = models.add_parser("card", help="render a readable model card (Markdown or self-contained HTML)")
    p.add_argument("name", help="model name")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--version", help="the version to show (default: the one --alias points at)")
    which.add_argument("--alias", default="production", help="default: production")
    p.add_argument("--format", choices=("markdown", "html"), default="markdown", help="default: markdown")
    p.add_argument("--output", metavar="PATH", help="write to this file (default: standard output)")
    p.add_argument("--no-verify", action="store_true", help=NO_VERIFY_HELP)
    p.set_defaults(func=_models_card)

    retrain_cli.register(sub)
    _register_privacy(sub)
    _register_feedback(sub)
    _register_sample(sub)
    register_local(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command `argv` (default: sys.argv[1:]) and return its exit code. Errors are reported by
    sklambda_infra.cli_errors: a message for a known one, a traceback for a bug (and for any with --debug)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        return cli_errors.quiet_broken_pipe()
    except (Exception, KeyboardInterrupt) as e:
        return cli_errors.handle(e, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
