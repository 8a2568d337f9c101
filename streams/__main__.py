"""`python -m streams` runs the journeystream CLI."""

from streams.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
