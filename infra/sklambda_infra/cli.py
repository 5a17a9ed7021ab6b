"""The `sklambda` command: publish, promote, rollback, inspect models; run the local stack.

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

from botocore.exceptions import BotoCoreError, ClientError

from sklambda import config
from sklambda.errors import SklambdaError
from sklambda_infra.layer import LayerBuildError
from sklambda_infra.local.cli import project_root
from sklambda_infra.local.cli import register as register_local
from sklambda_infra.local.stack import details_path


def _local_details() -> tuple[dict[str, Any] | None, Path]:
    """The running local stack's details: $SKLAMBDA_LOCAL_FILE, else the one beside the nearest template.yaml."""
    given = os.environ.get("SKLAMBDA_LOCAL_FILE")
    path = Path(given) if given else details_path(project_root(None))
    try:
        return json.loads(path.read_text()), path
    except (OSError, ValueError):
        return None, path


def _connect(args: argparse.Namespace, *, need_signer: bool = False, need_key: bool = False):
    """Resolve where the registry is and return (Registry, CardSigner | None); the signing key resolved when
    `need_signer` or `need_key` is left in `args.signing_key`."""
    from sklambda import aws
    from sklambda.registry.signing import CardSigner
    from sklambda.registry.store import Registry

    bucket = args.bucket or os.environ.get(config.MODEL_BUCKET)
    key = args.signing_key or os.environ.get(config.SIGNING_KEY_ID)
    endpoint = args.endpoint_url or os.environ.get(config.AWS_ENDPOINT_URL)
    if not bucket or ((need_signer or need_key) and not key):
        local, path = _local_details()
        if local is None:
            missing = "model bucket" if not bucket else "signing key"
            unverified = " (or pass --no-verify to read the card without checking its signature)" if need_key else ""
            raise SklambdaError(
                f"no {missing} configured: pass --bucket/--signing-key, set {config.MODEL_BUCKET}/"
                f"{config.SIGNING_KEY_ID}, or start the local stack with `make local`{unverified}"
            )
        print(f"using the local stack from {path}", file=sys.stderr)
        bucket = bucket or local["model_bucket"]
        key = key or local["signing_key_id"]
        endpoint = endpoint or local["aws_endpoint_url"]
        os.environ.setdefault("AWS_ACCESS_KEY_ID", local.get("access_key_id", "testing"))
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", local.get("secret_access_key", "testing"))
        os.environ.setdefault("AWS_DEFAULT_REGION", local.get("region", "us-east-1"))
    if endpoint:
        os.environ[config.AWS_ENDPOINT_URL] = endpoint
        aws.reset_clients()
    args.signing_key = key
    return Registry(bucket), (CardSigner(key) if need_signer else None)


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
    from sklambda_infra.runtime import ensure_runtime_path

    registry, signer = _connect(args, need_signer=True)
    # Every input file is read and checked before the target runtime is built (~15 s the first time on a machine):
    # a typo in a path, or a file that is not a CSV, is refused at once, all problems together.
    problems = [] if Path(args.model).is_file() else [f"[model] no file {args.model}"]
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
    ensure_runtime_path(lambda line: print(line, file=sys.stderr))
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
            allow_holdout_overlap=args.allow_holdout_overlap,
            **options,
        )
    except PublishRejected as e:
        # The message is already the report, one line per problem: no need to repeat e.errors.
        print(f"error: {e.message}", file=sys.stderr)
        return 2
    print(f"published {card.name} version {card.version} (sha256 {card.artifact.sha256[:12]}, signed)")
    _print_metrics(card.metrics)
    if card.decision:
        d = card.decision
        print(f"  decision: {d['positive_class']} when P >= {d['threshold']:.4f} ({d['source']})")
    for w in (card.quality or {}).get("warnings", []):
        where = f" {w['feature']!r}" if w.get("feature") else ""
        print(f"  warning [{w['check']}]{where}: {w['message']}")
    if args.promote:
        print(f"{args.promote} -> {card.version}")
    return 0


def _metric_gate(text: str) -> tuple[str, float]:
    """NAME=VALUE for --min-metric."""
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
    registry, _ = _connect(args)
    record = registry.set_alias(args.name, args.alias, args.version)
    print(f"{args.name}: {record.alias} -> {record.version}")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    registry, _ = _connect(args)
    record = registry.rollback(args.name, args.alias)
    print(f"{args.name}: {record.alias} rolled back to {record.version}")
    return 0


def _models_list(args: argparse.Namespace) -> int:
    registry, _ = _connect(args)
    names = registry.list_models()
    if args.json:
        print(
            json.dumps({n: {"versions": registry.list_versions(n), "aliases": registry.list_aliases(n)} for n in names})
        )
        return 0
    if not names:
        print("no models published yet")
    for name in names:
        aliases = ", ".join(f"{a}->{v}" for a, v in sorted(registry.list_aliases(name).items())) or "no aliases"
        print(f"{name}: versions {', '.join(registry.list_versions(name))}; {aliases}")
    return 0


def _models_show(args: argparse.Namespace) -> int:
    registry, card, check = _read_card(args)
    if args.json:
        print(json.dumps({**card.to_dict(), "verification": check.to_dict()}, indent=2))
        return 0
    if not check.verified:
        print(f"NOT VERIFIED: {UNVERIFIED}")
    print(f"{card.name} version {card.version} ({card.task}), created {card.created_at}")
    print(f"  estimator: {card.estimator}")
    print(f"  scikit-learn {card.sklearn_version}; artifact {card.artifact.size} bytes, sha256 {card.artifact.sha256}")
    if check.verified:
        print(f"  signature: verified, {check.algorithm} with the trusted key {check.key_id}")
    else:
        claimed = f"the card claims {card.signature.algorithm}" if card.signature else "the card is not signed"
        print(f"  signature: NOT VERIFIED ({claimed})")
    if card.classes:
        print(f"  classes: {', '.join(map(str, card.classes))}")
    _print_metrics(dict(card.metrics))
    print("  input schema:")
    for f in card.input_schema.features:
        extra = []
        if f.minimum is not None:
            extra.append(f"range {f.minimum:g}..{f.maximum:g}")
        if f.categories:
            extra.append(f"categories {', '.join(f.categories[:8])}{' ...' if len(f.categories) > 8 else ''}")
        if f.nullable:
            extra.append("nullable")
        elif f.accepts_null:
            extra.append("null scored with a data-quality warning")
        if f.pii:
            extra.append("PII")
        if not f.required:
            extra.append("optional: the model never reads it")
        print(f"    {f.name:<20} {f.type:<9} {'; '.join(extra)}")
    if card.importance:
        ranked = ", ".join(f"{f['name']} {f['mean']:+.3f}" for f in card.importance["features"][:5])
        print(f"  importance ({card.importance['scoring']} drop, {card.importance['split']}): {ranked}")
    if card.decision:
        print(f"  decision: {card.decision['positive_class']} when P >= {card.decision['threshold']:.3f} "
              f"({card.decision['source']})")  # fmt: skip
    for w in (card.quality or {}).get("warnings", []):
        print(f"  warning [{w['check']}] {w.get('feature') or ''}: {w['message']}")
    print(f"  explanations: {'yes' if (card.explanation or {}).get('background') else 'no (republish to add)'}")
    print(f"  aliases: {registry.list_aliases(card.name)}")
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
        endpoint = endpoint or local["aws_endpoint_url"]
        args.kms_key = getattr(args, "kms_key", None) or local.get("data_key_id")
        os.environ.setdefault("AWS_ACCESS_KEY_ID", local.get("access_key_id", "testing"))
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", local.get("secret_access_key", "testing"))
        os.environ.setdefault("AWS_DEFAULT_REGION", local.get("region", "us-east-1"))
    if endpoint:
        os.environ[config.AWS_ENDPOINT_URL] = endpoint
        aws.reset_clients()
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
            f"{report.versions_deleted} old version(s) purged; {report.objects_scanned} scanned)"
        )
    return 0


def _register_privacy(sub: Any) -> None:
    privacy = sub.add_parser("privacy", help="pseudonymization key and right to erasure of captured predictions")
    commands = privacy.add_subparsers(dest="privacy_command", required=True)
    p = commands.add_parser("create-key", help="print a new pseudonymization key, wrapped by KMS (base64)")
    p.add_argument("--kms-key", help="KMS key that wraps it: the stack's DataKeyArn output (default: local stack)")
    p.set_defaults(func=_privacy_create_key)
    p = commands.add_parser("erase", help="remove every captured record of one data subject")
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


NO_VERIFY_HELP = (
    "do not check the card's signature with the signing key (default: checked, and a card that fails is refused); "
    "the card is then shown marked NOT VERIFIED"
)


def build_parser() -> argparse.ArgumentParser:
    import sklambda

    parser = argparse.ArgumentParser(prog="sklambda", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"sklambda {sklambda.__version__}")
    parser.add_argument("--bucket", help=f"model bucket (default: ${config.MODEL_BUCKET})")
    parser.add_argument("--signing-key", help=f"KMS signing key id or ARN (default: ${config.SIGNING_KEY_ID})")
    parser.add_argument("--endpoint-url", help="AWS endpoint, e.g. the local stack's (default: $AWS_ENDPOINT_URL)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("publish", help="publish a joblib model with its training data as a new signed version")
    p.add_argument("--model", required=True, help="path of a joblib file holding a fitted estimator or pipeline")
    p.add_argument("--data", required=True, help="training CSV (features and the target column)")
    p.add_argument("--target", required=True, help="name of the target column")
    p.add_argument("--name", required=True, help="model name")
    p.add_argument("--holdout", help="holdout CSV with the same columns, for the card's metrics")
    p.add_argument(
        "--code",
        nargs="*",
        default=[],
        metavar="PATH",
        help="module files (feature_utils.py) and package folders (mypkg/) the model's pickle imports, shipped with it",
    )
    p.add_argument("--version", help="version id (default: next integer)")
    p.add_argument("--promote", metavar="ALIAS", help="point this alias at the new version")
    p.add_argument("--pii", nargs="*", default=[], metavar="COLUMN", help="columns holding personal data")
    p.add_argument("--nullable", nargs="*", default=[], metavar="COLUMN", help="columns allowed to be null")
    p.add_argument("--categorical", nargs="*", default=[], metavar="COLUMN", help="treat these columns as categories")
    p.add_argument("--description", default="", help="what the model is for")
    p.add_argument("--owner", default="", help="team or person answerable for the model (model card)")
    p.add_argument("--intended-use", default="", help="what the model may be used for (model card)")
    p.add_argument("--limitation", action="append", default=[], metavar="TEXT", help="a known limitation (repeatable)")
    p.add_argument(
        "--min-metric",
        action="append",
        default=[],
        type=_metric_gate,
        metavar="NAME=VALUE",
        help="refuse to publish when this metric is below VALUE (above, for mae/rmse/log_loss); repeatable",
    )
    p.add_argument("--threshold", type=float, help="decision threshold on P(positive class), binary classifiers")
    p.add_argument("--cost-fp", type=float, help="cost of a false positive: with --cost-fn, chooses the threshold")
    p.add_argument("--cost-fn", type=float, help="cost of a false negative")
    p.add_argument("--positive-class", help="the class the threshold is about (default: the model's second class)")
    p.add_argument(
        "--allow-holdout-overlap",
        action="store_true",
        help="publish even when the holdout is mostly copies of training rows (a warning, recorded in the card)",
    )
    p.set_defaults(func=_publish)

    p = sub.add_parser("promote", help="point an alias at a version")
    p.add_argument("name", help="model name")
    p.add_argument("version", help="the version the alias will point at")
    p.add_argument("--alias", default="production", help="the alias to move (default: production)")
    p.set_defaults(func=_promote)

    p = sub.add_parser("rollback", help="point an alias back at its previous version")
    p.add_argument("name", help="model name")
    p.add_argument("--alias", default="production", help="the alias to move back (default: production)")
    p.set_defaults(func=_rollback)

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

    _register_privacy(sub)
    register_local(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LayerBuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except SklambdaError as e:
        print(f"error: {e.message}", file=sys.stderr)
        for detail in e.errors[:20]:
            print(f"  - {detail}", file=sys.stderr)
        return 2
    except (ClientError, BotoCoreError) as e:
        print(f"error: AWS call failed: {e}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as e:
        # The local stack, layer build and benchmarks run on the dev tools (moto, PyYAML, aws-sam-translator...).
        print(
            f"error: this command needs the module {e.name!r}, one of the dev tools: install sklambda with its "
            "dev extra (`pip install -e '.[dev]'` in a clone, as `make test` does)",
            file=sys.stderr,
        )
        return 2
    except FileNotFoundError as e:
        print(f"error: {e.strerror}: {e.filename}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
