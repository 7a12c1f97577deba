"""``python -m byog_env list``: print the environment short names, one per line."""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv != ["list"]:
        print("usage: python -m byog_env list   (prints the environment names make() accepts)",
              file=sys.stderr)
        return 2
    from byog_env import list_envs

    print("\n".join(list_envs()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
