"""Offline stand-in for the get-pip.py bootstrap that ansible-test downloads.

ansible-test creates its venvs without pip and fetches get-pip.py from a host these machines
cannot reach; it reads a cached copy first, so .ci/setup.sh puts this file in that cache. It does
what the real script does for ansible-test: bootstrap pip from the interpreter's bundled wheel,
then install the requested pip version (and any extra requirements) from the package index.
"""

import subprocess
import sys


def main(argv):
    args = [a for a in argv if a not in ("--no-setuptools", "--no-wheel")]
    subprocess.run([sys.executable, "-m", "ensurepip", "--default-pip"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, "-m", "pip", "install", "--upgrade"] + args, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
