"""Extract the collections the roles and tests use from the `ansible` wheel.

Galaxy is out of reach from these machines, but the package index is not: the `ansible`
community package carries every collection we depend on. Only the listed ones are extracted.
Usage: python extract_collections.py WHEEL DEST NS.NAME [NS.NAME ...]
"""

import sys
import zipfile


def main(wheel, dest, names):
    prefixes = tuple("ansible_collections/%s/" % n.replace(".", "/") for n in names)
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.namelist() if m.startswith(prefixes)]
        found = {m.split("/")[1] + "." + m.split("/")[2] for m in members}
        missing = sorted(set(names) - found)
        if missing:
            raise SystemExit("not in %s: %s" % (wheel, ", ".join(missing)))
        archive.extractall(dest, members)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
