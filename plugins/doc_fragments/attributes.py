# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Use as confidential_ai.ack.attributes plus one of the variants below.
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
"""

    # A module that changes something.
    ACTIONS = r"""
options: {}
attributes:
  check_mode:
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
    support: full
"""

    # A module that only reads.
    INFO_MODULE = r"""
options: {}
attributes:
  check_mode:
    support: full
    details: This module only reads, so it runs the same in check mode.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
    support: N/A
    details: This module does not change anything.
"""

    # A cloud module: belongs to the action group.
    ACTION_GROUP = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/confidential_ai.ack.alicloud) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - confidential_ai.ack.alicloud
"""
