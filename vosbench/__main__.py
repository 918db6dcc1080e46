"""``python -m vosbench COMMAND ...``: the same as the ``vosbench`` console command."""
import sys

from vosbench.cli import main

if __name__ == "__main__":
    sys.exit(main())
