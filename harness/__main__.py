"""`python -m harness` runs the journeystream CLI."""

from harness.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
