"""`python -m quicktune.cli ...` runs the command line (same as the `quicktune` script)."""

from quicktune.cli import main

if __name__ == "__main__":
    main()
