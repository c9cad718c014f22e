"""Entry point of ``python -m jdeconv.demo``."""

from jdeconv.demo._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
