"""Boavizta's impacts of cloud instances, run in the virtualenv that holds boaviztapi (its pins are not SpawnIt's).

Reads {"load_percent": 50, "hours": 730, "machines": [{"instance_type": "t3.small", "region": "eu-west-3"}, ...]}
on stdin; writes {"boaviztapi": version, "results": [{"embedded_kg": ..., "use_kg": ..., "location": "FRA"}
or {"error": "..."}, ...]} on stdout: the global warming potential (kgCO2e) of one machine over ``hours``, its
manufacture share (embedded) and its use (electricity at the region's grid intensity). Exact instance
types only: Boavizta's fuzzy matching would silently price another machine.
"""

import csv
import json
import os
import sys
import warnings


def main() -> None:
    warnings.simplefilter("ignore")  # scipy's curve-fit notices are not results
    from importlib.metadata import version

    from boaviztapi import data_dir
    from boaviztapi.compute.impacts_computation import compute_impacts
    from boaviztapi.data.archetype import fuzzy_get_cloud_instance_archetype
    from boaviztapi.dto.device import Cloud
    from boaviztapi.dto.device.device import mapper_cloud_instance

    request = json.load(sys.stdin)
    with open(os.path.join(data_dir, "archetypes", "cloud", "regions.csv"), newline="") as handle:
        locations = {row["region"]: row["usage_location"] for row in csv.DictReader(handle) if row["provider"] == "aws"}
    cache = {}
    results = []
    for machine in request["machines"]:
        instance_type, region = machine["instance_type"], machine["region"]
        key = (instance_type, region)
        if key not in cache:
            archetype, matched = fuzzy_get_cloud_instance_archetype(instance_type, "aws")
            location = locations.get(region)
            if not archetype or matched != instance_type:
                cache[key] = {"error": f"instance type {instance_type!r} is not in Boavizta's AWS archetypes"}
            elif location is None:
                cache[key] = {"error": f"region {region!r} has no usage location in Boavizta's data"}
            else:
                cloud = Cloud(provider="aws", instance_type=instance_type, usage={"usage_location": location, "time_workload": request["load_percent"]})
                impacts = compute_impacts(model=mapper_cloud_instance(cloud, archetype=archetype), selected_criteria=["gwp"], duration=request["hours"])
                gwp = impacts["gwp"]
                cache[key] = {"embedded_kg": gwp["embedded"]["value"], "use_kg": gwp["use"]["value"], "location": location}
        results.append(cache[key])
    json.dump({"boaviztapi": version("boaviztapi"), "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
