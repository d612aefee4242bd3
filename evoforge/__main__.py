"""`python -m evoforge`: the same command line as the `evoforge` script."""

from evoforge.engine.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
