"""Plans in the engine's JSON format (`show -json`) that the stand-in engine prints, shared by the plan and UI tests."""

# What a docker instance's plan looks like: no Checkov policy concerns these resources, so its gate passes.
FLOW_PLAN = {
    "format_version": "1.2",
    "resource_changes": [
        {"address": "docker_container.redis", "type": "docker_container", "change": {
            "actions": ["update"], "before": {"memory": 256, "env": ["REDIS_PASSWORD=hunter2-hunter2"]},
            "after": {"memory": 512, "env": ["REDIS_PASSWORD=rotated-rotated"]},
            "after_unknown": {}, "before_sensitive": {"env": True}, "after_sensitive": {"env": True}}},
        {"address": "docker_volume.old", "type": "docker_volume", "change": {"actions": ["delete"], "before": {"name": "old"}, "after": None}},
        {"address": "docker_image.redis", "type": "docker_image", "change": {
            "actions": ["create"], "before": None, "after": {"name": "redis:7.4"}, "after_unknown": {"image_id": True}}},
    ],
}


DRIFT_PLAN = {
    "format_version": "1.2",
    "resource_drift": [{"address": "docker_container.redis", "type": "docker_container", "change": {
        "actions": ["update"], "before": {"memory": 256}, "after": {"memory": 1024}, "after_unknown": {}}}],
    "resource_changes": [{"address": "docker_container.redis", "type": "docker_container", "change": {
        "actions": ["update"], "before": {"memory": 1024}, "after": {"memory": 256}, "after_unknown": {}}}],
}
