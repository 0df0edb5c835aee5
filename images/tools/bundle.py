"""Write the offline update bundle (`appliance update BUNDLE`) from the image's wheels and web UI.

    python3 images/tools/bundle.py --version 0.1.0 --wheels DIR --web DIR \
        --requirement edge-appliance==0.1.0 --out appliance-0.1.0-qemu-virt.bundle.tar

The format is defined once, in appliance/update.py; this wrapper only runs it on the build host.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from appliance.update import write_bundle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--version", required=True)
    parser.add_argument("--wheels", required=True, type=Path)
    parser.add_argument("--web", type=Path)
    parser.add_argument("--requirement", action="append", required=True)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    index = write_bundle(args.out, args.version, args.wheels, tuple(args.requirement), args.web)
    sys.stdout.write(f"{args.out}: {len(index.files)} files\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
