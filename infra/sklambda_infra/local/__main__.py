"""`python -m sklambda_infra.local up|down|status`: the same commands as `sklambda local ...`."""

import argparse
import sys

from sklambda_infra.local.cli import register


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sklambda_infra.local")
    sub = parser.add_subparsers(dest="command")
    local = register(sub)
    # `python -m sklambda_infra.local up` == `sklambda local up`.
    args = parser.parse_args(["local", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args) if hasattr(args, "func") else local.print_help() or 2


if __name__ == "__main__":
    sys.exit(main())
