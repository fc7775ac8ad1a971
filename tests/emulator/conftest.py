"""Fixtures for the emulator tests: the shared emulator process and SDK clients bound to it."""

import os
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

# pylint: disable=wrong-import-position

from sandbox.alicloud.pytest_fixtures import alicloud, alicloud_emulator  # noqa: F401  pylint: disable=unused-import
from sandbox.alicloud.testing import cs_client, ecs_client


@pytest.fixture
def ecs(alicloud):  # pylint: disable=redefined-outer-name
    return ecs_client(alicloud)


@pytest.fixture
def cs(alicloud):  # pylint: disable=redefined-outer-name
    return cs_client(alicloud)
