# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The credential, region and endpoint options every cloud module takes
    # (plugins/module_utils/alicloud.py, alicloud_argument_spec).
    DOCUMENTATION = r"""
options:
  access_key:
    description:
      - Alibaba Cloud AccessKey ID.
      - When neither O(access_key) nor O(profile) is set, the environment variables
        E(ALIBABA_CLOUD_ACCESS_KEY_ID), E(ALIBABA_CLOUD_ACCESS_KEY_SECRET) and
        E(ALIBABA_CLOUD_SECURITY_TOKEN) are used; then the current profile of the aliyun CLI
        (C(~/.aliyun/config.json), or the profile named by E(ALIBABA_CLOUD_PROFILE)); then, only on an
        ECS instance and unless E(ALIBABA_CLOUD_ECS_METADATA_DISABLED=true), the instance's RAM role.
    type: str
    aliases: [access_key_id]
  secret_key:
    description:
      - Alibaba Cloud AccessKey secret. Required with O(access_key).
    type: str
    aliases: [access_key_secret]
  security_token:
    description:
      - STS security token, for temporary credentials.
    type: str
    aliases: [sts_token]
  profile:
    description:
      - Name of a profile in the aliyun CLI configuration (C(~/.aliyun/config.json), or the file in
        E(ALIBABA_CLOUD_CONFIG_FILE)). Profile modes C(AK), C(StsToken) and C(EcsRamRole) are read.
      - Ignored when O(access_key) is set.
    type: str
  region:
    description:
      - Region id, for example V(cn-beijing).
      - Defaults to E(ALIBABA_CLOUD_REGION_ID), then to the C(region_id) of the profile in use.
    type: str
    aliases: [region_id]
  endpoints:
    description:
      - Per-service endpoint overrides, for private endpoints, VPC endpoints or a local emulator.
      - Without them the public endpoints of O(region) are used.
    type: dict
    suboptions:
      ecs:
        description: ECS API endpoint, C(host[:port]) or C(scheme://host[:port]).
        type: str
      cs:
        description: ACK (Container Service) API endpoint, C(host[:port]) or C(scheme://host[:port]).
        type: str
      oss:
        description: OSS endpoint, for example C(https://oss-cn-beijing-internal.aliyuncs.com).
        type: str
  protocol:
    description:
      - Protocol for endpoints given without a scheme.
    type: str
    choices: [https, http]
    default: https
  api_timeout:
    description:
      - Read timeout of one API request, in seconds.
    type: int
    default: 30
  max_attempts:
    description:
      - Attempts per API call, the first included. Throttling, server errors (5xx) and connection
        failures are retried with jittered exponential backoff; other errors are not.
    type: int
    default: 8
notes:
  - The Alibaba Cloud SDKs ignore E(NO_PROXY); when an endpoint override points at a loopback
    address, the proxy environment variables are dropped for that module run.
requirements:
  - alibabacloud-ecs20140526
  - alibabacloud-cs20151215
  - alibabacloud-tea-openapi
  - alibabacloud-credentials
  - oss2
"""
