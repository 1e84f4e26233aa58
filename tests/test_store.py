"""The orchestrator's store: the same records and key layout in S3 (a real HTTP emulator) and in a folder."""

from __future__ import annotations

import uuid

import boto3
import pytest

from spawnit.api.store import LocalObjectStore, S3ObjectStore, Store, StoreError, store_from_environment


@pytest.fixture(params=["s3", "local"])
def store(request, tmp_path) -> Store:
    if request.param == "local":
        return Store(LocalObjectStore(tmp_path / "data"))
    endpoint = request.getfixturevalue("aws_account")
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="spawnit")
    return Store(S3ObjectStore("spawnit", endpoint_url=endpoint))


SPEC = {"service": "postgresql", "target": "docker", "parameters": {"port": 5433}, "created_at": "2026-11-22T10:00:00Z"}


def test_spec_round_trips_under_the_documented_key(store):
    store.put_spec("acme", "orders-db", SPEC)
    assert store.get_spec("acme", "orders-db") == SPEC
    assert "clients/acme/orders-db/spec.json" in store.objects.list("clients/")


def test_missing_spec_is_none(store):
    assert store.get_spec("acme", "nothing-here") is None


def test_instances_are_listed_per_client_and_in_all(store):
    store.put_spec("acme", "db", SPEC)
    store.put_spec("acme", "cache", SPEC)
    store.put_spec("globex", "site", SPEC)
    assert store.list_instances("acme") == [("acme", "cache"), ("acme", "db")]
    assert store.list_instances() == [("acme", "cache"), ("acme", "db"), ("globex", "site")]


def test_deleting_an_instance_removes_its_spec_and_state_only(store):
    store.put_spec("acme", "db", SPEC)
    store.objects.put(Store.state_key("acme", "db"), b"{}")
    store.put_spec("acme", "dbx", SPEC)
    store.delete_instance("acme", "db")
    assert store.get_spec("acme", "db") is None and store.objects.get("clients/acme/db/terraform.tfstate") is None
    assert store.get_spec("acme", "dbx") == SPEC


def test_state_key_is_per_instance():
    assert Store.state_key("acme", "orders-db") == "clients/acme/orders-db/terraform.tfstate"


def test_jobs_and_logs_survive_in_the_store(store):
    job_id = str(uuid.uuid4())
    record = {"id": job_id, "client": "acme", "instance": "db", "action": "apply", "status": "running"}
    store.put_job(record)
    store.put_log(job_id, [{"id": 1, "type": "line", "data": "Initializing..."}, {"id": 2, "type": "status", "data": "running"}])
    assert store.get_job(job_id) == record
    assert [event["id"] for event in store.get_log(job_id)] == [1, 2]
    assert list(store.active_jobs()) == [record]
    store.put_job({**record, "status": "succeeded"})
    assert list(store.active_jobs()) == [] and store.get_job(job_id)["status"] == "succeeded"


@pytest.mark.parametrize("client, instance", [("Acme", "db"), ("acme", "../etc"), ("a", "db"), ("acme", "x" * 70), ("abc\n", "db"), ("acme", "db\n")])
def test_names_are_checked_before_any_key_is_built(client, instance):
    with pytest.raises(ValueError, match="is not allowed; allowed: 2-64 lowercase letters"):
        Store.instance_prefix(client, instance)


def test_job_ids_must_be_uuids(store):
    with pytest.raises(ValueError, match="job id: '../secret' is not allowed; allowed: a UUID"):
        store.get_job("../secret")


def test_local_store_refuses_keys_outside_its_folder(tmp_path):
    with pytest.raises(StoreError, match="is not allowed; allowed: a path inside the store"):
        LocalObjectStore(tmp_path).put("../outside", b"x")


def test_s3_errors_are_reported_with_the_object(aws_account):
    with pytest.raises(StoreError, match="s3://no-such-bucket/"):
        S3ObjectStore("no-such-bucket", endpoint_url=aws_account).put("clients/x", b"x")


def test_s3_is_chosen_when_an_endpoint_is_configured(aws_account, tmp_path):
    assert isinstance(store_from_environment({"SPAWNIT_S3_ENDPOINT": aws_account}).objects, S3ObjectStore)
    local = store_from_environment({"SPAWNIT_DATA_DIR": str(tmp_path / "d")})
    assert isinstance(local.objects, LocalObjectStore) and (tmp_path / "d").is_dir()


def test_listing_a_clients_instances_walks_only_that_clients_folder(tmp_path, monkeypatch):
    from pathlib import Path

    store = Store(LocalObjectStore(tmp_path))
    store.put_spec("acme", "db", {"client": "acme", "instance": "db"})
    store.put_spec("bob", "site", {"client": "bob", "instance": "site"})
    walked = []
    original = Path.rglob
    monkeypatch.setattr(Path, "rglob", lambda self, pattern: walked.append(self) or original(self, pattern))
    assert store.list_instances("acme") == [("acme", "db")]
    assert walked == [tmp_path.resolve() / "clients" / "acme"]
    assert store.list_instances() == [("acme", "db"), ("bob", "site")]


def test_creating_a_spec_is_atomic_on_s3_too(aws_account):
    import boto3

    from spawnit.api.store import S3ObjectStore

    boto3.client("s3", endpoint_url=aws_account, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing").create_bucket(Bucket="spawnit-create")
    client = boto3.client("s3", endpoint_url=aws_account, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    store = Store(S3ObjectStore("spawnit-create", client=client))
    assert store.create_spec("acme", "db", {"v": 1}) is True
    assert store.create_spec("acme", "db", {"v": 2}) is False  # If-None-Match: * refused it
    assert store.get_spec("acme", "db") == {"v": 1}


def test_creating_a_spec_is_atomic_in_a_folder(tmp_path):
    store = Store(LocalObjectStore(tmp_path))
    assert store.create_spec("acme", "db", {"v": 1}) is True and store.create_spec("acme", "db", {"v": 2}) is False
    assert store.get_spec("acme", "db") == {"v": 1} and [p.name for p in (tmp_path / "clients" / "acme" / "db").iterdir()] == ["spec.json"]


def test_concurrent_creations_of_one_key_have_exactly_one_winner_on_the_tests_s3():
    """The store relies on S3's atomic `If-None-Match: *`; moto's server checks then writes without a lock
    (2 rounds in 300 gave two winners), so the tests' emulator serialises conditional PUTs (tests/emulator.py)."""
    from concurrent.futures import ThreadPoolExecutor

    from conftest import free_port
    from emulator import Emulator

    emulator = Emulator(free_port())
    try:
        emulator.client("s3", "us-east-1").create_bucket(Bucket="spawnit")
        objects = S3ObjectStore("spawnit", client=emulator.client("s3", "us-east-1"))
        with ThreadPoolExecutor(20) as pool:
            for round_ in range(100):
                winners = list(pool.map(lambda index: objects.put_new(f"race/{round_}", str(index).encode()), range(20)))
                assert winners.count(True) == 1, f"round {round_}: {winners.count(True)} winners"
    finally:
        emulator.stop()
