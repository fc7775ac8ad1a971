"""pytest fixtures for the Alibaba Cloud emulator.

Use from a ``conftest.py`` with ``pytest_plugins = ["sandbox.alicloud.pytest_fixtures"]`` (top-level
conftest) or ``from sandbox.alicloud.pytest_fixtures import alicloud_emulator``.

* ``alicloud_emulator`` (session): one emulator process per test session, clock scale 0 (every
  lifecycle completes at once), in a temporary state directory.
* ``alicloud``: the same emulator, reset (no resources, no faults, clock scale 0) before the test.
"""

import os

import pytest

from .testing import EmulatorProcess

os.environ.setdefault("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")


@pytest.fixture(scope="session")
def alicloud_emulator(tmp_path_factory):
    emu = EmulatorProcess(state_dir=str(tmp_path_factory.mktemp("alicloud-emulator")), clock_scale=0.0)
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def alicloud(alicloud_emulator):  # pylint: disable=redefined-outer-name
    emu = alicloud_emulator
    emu.reset()
    emu.clear_faults()
    emu.set_clock(0.0)
    yield emu
    emu.clear_faults()
