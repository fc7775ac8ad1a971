"""Static catalogue of the emulated cloud: region, zones, instance types, images, the sandbox network.

The values can be overridden per state directory with ``<state_dir>/catalog.json``, an object with
any of the keys of :data:`DEFAULT` (each replaces the default of the same key; for ``instance_types``
and ``images`` the entries are merged by id).

Sandbox network (pre-seeded, so ``RunInstances`` and ``CreateCluster`` have something to validate
against; the ids are stable across state directories):

===========================  =========================  ===================
id                           what                       zone / CIDR
===========================  =========================  ===================
vpc-sbx000000000000000001    VPC ``sandbox-vpc``        192.168.0.0/16
vsw-sbx00000000000000000h    vSwitch                    cn-beijing-h, 192.168.8.0/24
vsw-sbx00000000000000000i    vSwitch                    cn-beijing-i, 192.168.9.0/24
vsw-sbx00000000000000000k    vSwitch                    cn-beijing-k, 192.168.11.0/24
vsw-sbx00000000000000000l    vSwitch                    cn-beijing-l, 192.168.12.0/24
sg-sbx0000000000000000001    security group ``sandbox``  in the VPC above
===========================  =========================  ===================

Private addresses are allocated from the vSwitch CIDR; public addresses (when
``InternetMaxBandwidthOut > 0``) come from 203.0.113.0/24 (TEST-NET-3, documentation range), so an
emulated address can never reach a real host.
"""

import copy
import json
import os

REGION = "cn-beijing"

ZONE_LETTERS = "acdefghijkl"

# Instance types. gn8v-tee numbers are ASSUMPTIONS: the per-size table of gn8v-tee could not be read
# (reference section 8.6/12). They follow the gn8v naming rule (4xlarge = 16 vCPU, 6xlarge = 24 vCPU,
# -8x = 8 GPUs) and the documented 96 GB HBM3 per GPU; memory sizes are plausible guesses. The GPU is
# reported as "NVIDIA H20" (the 96 GB HBM3 card of this family), also an assumption.
_GN8V_TEE = [
    # id, vCPU, memory GiB, GPUs
    ("ecs.gn8v-tee.4xlarge", 16, 96.0, 1),
    ("ecs.gn8v-tee.6xlarge", 24, 128.0, 1),
    ("ecs.gn8v-tee-8x.16xlarge", 64, 768.0, 8),
    ("ecs.gn8v-tee-8x.48xlarge", 192, 1024.0, 8),
]
_GENERAL = [
    # id, family, vCPU, memory GiB (public g8i/g7/c7 sizes)
    ("ecs.g8i.xlarge", "ecs.g8i", 4, 16.0),
    ("ecs.g8i.2xlarge", "ecs.g8i", 8, 32.0),
    ("ecs.g7.xlarge", "ecs.g7", 4, 16.0),
    ("ecs.c7.large", "ecs.c7", 2, 4.0),
]


def _instance_types():
    types = {}
    for type_id, cpu, mem, gpus in _GN8V_TEE:
        types[type_id] = {
            "InstanceTypeId": type_id, "InstanceTypeFamily": "ecs.gn8v-tee", "InstanceCategory": "GPU-accelerated",
            "InstanceFamilyLevel": "EnterpriseLevel", "CpuCoreCount": cpu, "CpuArchitecture": "X86",
            "MemorySize": mem, "GPUAmount": gpus, "GPUSpec": "NVIDIA H20", "GPUMemorySize": 96.0,
            "PhysicalProcessorModel": "Intel Xeon Sapphire Rapids", "EniQuantity": 8 if gpus > 1 else 4,
            "LocalStorageCategory": "", "NvmeSupport": "required", "EniPrivateIpAddressQuantity": 15,
            "EniIpv6AddressQuantity": 1, "InstanceBandwidthRx": 32000000, "InstanceBandwidthTx": 32000000,
            "SupportedBootModes": {"SupportedBootMode": ["UEFI"]},
            "CpuOptions": {"Core": cpu // 2, "ThreadsPerCore": 2, "SupportedTopologyTypes": {"SupportedTopologyType": []}},
            "NetworkCards": {"NetworkCardInfo": [{"NetworkCardIndex": 0}]},
            "zones": ["cn-beijing-l"],
        }
    for type_id, family, cpu, mem in _GENERAL:
        types[type_id] = {
            "InstanceTypeId": type_id, "InstanceTypeFamily": family, "InstanceCategory": "General-purpose",
            "InstanceFamilyLevel": "EnterpriseLevel", "CpuCoreCount": cpu, "CpuArchitecture": "X86",
            "MemorySize": mem, "GPUAmount": 0, "GPUSpec": "", "GPUMemorySize": 0.0,
            "PhysicalProcessorModel": "Intel Xeon", "EniQuantity": 3, "LocalStorageCategory": "",
            "NvmeSupport": "unsupported", "EniPrivateIpAddressQuantity": 10, "EniIpv6AddressQuantity": 1,
            "InstanceBandwidthRx": 1000000, "InstanceBandwidthTx": 1000000,
            "SupportedBootModes": {"SupportedBootMode": ["BIOS", "UEFI"]},
            "CpuOptions": {"Core": max(cpu // 2, 1), "ThreadsPerCore": 2, "SupportedTopologyTypes": {"SupportedTopologyType": []}},
            "NetworkCards": {"NetworkCardInfo": [{"NetworkCardIndex": 0}]},
            "zones": ["cn-beijing-%s" % z for z in "hikl"],
        }
    return types


def _image(image_id, family, boot_mode, version, created):
    return {
        "ImageId": image_id, "ImageName": image_id, "ImageFamily": family, "ImageVersion": version,
        "Description": "Alibaba Cloud Linux 3.2104 LTS 64 bit%s" % (" UEFI" if boot_mode == "UEFI" else ""),
        "OSName": "Alibaba Cloud Linux 3.2104 LTS 64 bit%s" % (" UEFI" if boot_mode == "UEFI" else ""),
        "OSNameEn": "Alibaba Cloud Linux 3.2104 LTS 64 bit%s" % (" UEFI" if boot_mode == "UEFI" else ""),
        "OSType": "linux", "Platform": "Aliyun", "Architecture": "x86_64", "BootMode": boot_mode,
        "Status": "Available", "Size": 20, "ImageOwnerAlias": "system", "Usage": "instance",
        "IsSupportCloudinit": True, "IsSupportIoOptimized": True, "IsSelfShared": "", "IsCopied": False,
        "IsSubscribed": False, "IsPublic": True, "CreationTime": created, "Progress": "100%",
        "Features": {"NvmeSupport": "supported"},
        "DiskDeviceMappings": {"DiskDeviceMapping": [
            {"Device": "/dev/xvda", "Size": "20", "Type": "system", "Format": "", "ImportOSSBucket": "", "ImportOSSObject": ""}]},
        "Tags": {"Tag": []},
    }


def _images():
    fam = "acs:alibaba_cloud_linux_3_2104_lts_x64"
    images = [
        _image("aliyun_3_x64_20G_alibase_20240819.vhd", fam, "BIOS", "3.2104.20240819", "2024-08-19T07:00:00Z"),
        _image("aliyun_3_x64_20G_alibase_20250117.vhd", fam, "BIOS", "3.2104.20250117", "2025-01-17T07:00:00Z"),
        _image("aliyun_3_x64_20G_uefi_alibase_20250117.vhd", fam + "_uefi", "UEFI", "3.2104.20250117", "2025-01-17T07:00:00Z"),
    ]
    return {img["ImageId"]: img for img in images}


DEFAULT = {
    "region": REGION,
    "zones": ["%s-%s" % (REGION, z) for z in ZONE_LETTERS],
    "instance_types": _instance_types(),
    "images": _images(),
    # stock per (zone, type): number of instances that may still be created; absent = plenty
    "stock": {},
    "vpcs": {
        "vpc-sbx000000000000000001": {"VpcId": "vpc-sbx000000000000000001", "VpcName": "sandbox-vpc", "CidrBlock": "192.168.0.0/16"},
    },
    "vswitches": {
        "vsw-sbx00000000000000000%s" % z: {
            "VSwitchId": "vsw-sbx00000000000000000%s" % z, "VpcId": "vpc-sbx000000000000000001",
            "ZoneId": "%s-%s" % (REGION, z), "CidrBlock": "192.168.%d.0/24" % (ord(z) - 96),
            "VSwitchName": "sandbox-%s" % z,
        } for z in "hikl"
    },
    "security_groups": {
        "sg-sbx0000000000000000001": {"SecurityGroupId": "sg-sbx0000000000000000001", "SecurityGroupName": "sandbox",
                                      "VpcId": "vpc-sbx000000000000000001", "SecurityGroupType": "normal"},
    },
    "kubernetes_versions": ["1.33.1-aliyun.1", "1.32.1-aliyun.1", "1.31.1-aliyun.1"],
    "addons": [
        {"name": "flannel", "version": "v0.15.1.22-20a397e6-aliyun", "category": "network", "install_by_default": False},
        {"name": "terway-eniip", "version": "v1.13.0", "category": "network", "install_by_default": False},
        {"name": "csi-plugin", "version": "v1.33.1-67e8986-aliyun", "category": "storage", "install_by_default": True},
        {"name": "managed-csiprovisioner", "version": "v1.33.1-67e8986-aliyun", "category": "storage", "install_by_default": True},
        {"name": "ack-cai", "version": "1.0.0", "category": "security", "install_by_default": False},
    ],
}


class Catalog:
    """The catalogue of one emulator process (defaults plus ``catalog.json`` overrides)."""

    def __init__(self, state_dir=None):
        data = copy.deepcopy(DEFAULT)
        path = os.path.join(state_dir, "catalog.json") if state_dir else None
        if path and os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                override = json.load(f)
            for key, value in override.items():
                if key in ("instance_types", "images", "vpcs", "vswitches", "security_groups") and isinstance(value, dict):
                    data[key].update(value)
                else:
                    data[key] = value
        self.__dict__.update(data)

    def zone_of_vswitch(self, vsw_id):
        vsw = self.vswitches.get(vsw_id)
        return vsw["ZoneId"] if vsw else None

    def type_in_zone(self, type_id, zone_id):
        t = self.instance_types.get(type_id)
        return bool(t) and zone_id in t.get("zones", self.zones)
