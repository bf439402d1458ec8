"""`python -m dvd360.cli` (what torchrun -m runs): the `dvd360-eval` command line."""

from dvd360.cli import main

if __name__ == "__main__":  # spawned worker processes import this module too
    main()
