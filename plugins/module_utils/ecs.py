# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ECS calls shared by the ECS modules (zones, stock); each returns plain snake_case dicts."""

from __future__ import annotations

try:
    from alibabacloud_ecs20140526 import models as ecs_models
except ImportError:  # the modules report the missing library through AlicloudModule.client()
    ecs_models = None

# DescribeAvailableResource: stock is there when Status is Available; ClosedWithStock is low stock
# (the service suggests another type), WithoutStock / ClosedWithoutStock are sold out.
IN_STOCK_CATEGORIES = ("WithStock", "ClosedWithStock")


def describe_zones(module, client):
    """Zones of the module's region: ``[{zone_id, local_name, instance_types}]``."""
    request = ecs_models.DescribeZonesRequest(region_id=module.region, verbose=True)
    body = module.call(client.describe_zones, request, operation="describe zones").body
    zones = []
    for zone in (body.zones.zone if body and body.zones else []):
        types = zone.available_instance_types.instance_types if zone.available_instance_types else None
        zones.append({
            "zone_id": zone.zone_id,
            "local_name": zone.local_name,
            "instance_types": sorted(types or []),
        })
    return zones


def describe_stock(module, client, instance_type, zone_id=None, charge_type="PostPaid"):
    """Stock of ``instance_type`` per zone: ``{zone_id: {status, status_category, in_stock}}``.

    A zone that does not offer the type at all is absent from the answer (the service returns an
    empty list, not an error).
    """
    request = ecs_models.DescribeAvailableResourceRequest(
        region_id=module.region,
        destination_resource="InstanceType",
        resource_type="instance",
        instance_charge_type=charge_type,
        instance_type=instance_type,
        zone_id=zone_id,
    )
    body = module.call(client.describe_available_resource, request,
                       operation="describe the stock of %s" % instance_type).body
    stock = {}
    zones = body.available_zones.available_zone if body and body.available_zones else []
    for zone in zones:
        resources = zone.available_resources.available_resource if zone.available_resources else []
        for resource in resources:
            if resource.type != "InstanceType" or not resource.supported_resources:
                continue
            for supported in resource.supported_resources.supported_resource:
                if supported.value != instance_type:
                    continue
                stock[zone.zone_id] = {
                    "status": supported.status,
                    "status_category": supported.status_category,
                    "in_stock": supported.status == "Available" and supported.status_category in IN_STOCK_CATEGORIES,
                }
    return stock


def zones_with_stock(stock):
    """The zone ids of a ``describe_stock`` answer that have stock, sorted."""
    return sorted(zone for zone, info in stock.items() if info["in_stock"])
