"""Tenants are walls: a file, cache or batch made through gemgate by one tenant is invisible to
and unusable by every other, durably (across a restart), and a tenant's own list is whole and
stable however many projects its resources sit in."""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from google.genai import errors, types

from gemgate.simulator import RunningSimulator
from tests.conftest import ADMIN, TOKEN, RunningGateway, run_gateway, sdk


@pytest.fixture(scope="module")
def db_path() -> str:
    return str(Path(tempfile.mkdtemp(prefix="gemgate-walls-")) / "gemgate.db")


@pytest.fixture(scope="module")
def walls(sim: RunningSimulator, db_path: str) -> Iterator[RunningGateway]:
    with run_gateway(sim.url, ledger={"path": db_path}) as running:
        yield running


def _upload(client: object, text: str) -> types.File:
    return client.files.upload(file=io.BytesIO(text.encode()),  # type: ignore[attr-defined]
                               config=types.UploadFileConfig(mime_type="text/plain",
                                                             display_name=text))


def _status(call: object) -> int:
    try:
        call()  # type: ignore[operator]
    except errors.APIError as exc:
        return exc.code
    return 200


def test_a_tenant_cannot_list_read_use_or_delete_another_tenants_file(
        walls: RunningGateway) -> None:
    secret_a, _ = walls.new_key(name="tenant-a")
    secret_b, _ = walls.new_key(name="tenant-b")
    a, b = sdk(walls.url, secret_a), sdk(walls.url, secret_b)
    files_b = [_upload(b, f"b's file {n}") for n in range(3)]
    names_b = {f.name for f in files_b}

    assert [f.name for f in a.files.list()] == []
    team = sdk(walls.url, TOKEN)  # a configured tenant is walled off alike
    assert [f.name for f in team.files.list()] == []
    target = files_b[0]
    assert target.name is not None and target.uri is not None
    assert _status(lambda: a.files.get(name=target.name)) == 404
    used = lambda: a.models.generate_content(  # noqa: E731
        model="gemini-2.5-flash",
        contents=[types.Part.from_uri(file_uri=target.uri, mime_type="text/plain"), "read"])
    assert _status(used) == 404
    assert _status(lambda: a.files.delete(name=target.name)) == 404
    raw = requests.post(walls.url + "/v1beta/models/gemini-2.5-flash:generateContent",
                        headers={"x-goog-api-key": secret_a},
                        json={"contents": "hi", "cachedContent": "cachedContents/b-cache"})
    assert raw.status_code == 404 and raw.json()["error"]["status"] == "NOT_FOUND"

    # The owner's list is whole and stable, whichever project each file landed in.
    projects = {p["project"] for p in walls.admin("GET", "/admin/resources").json()["resources"]}
    assert len(projects) >= 1
    for _ in range(6):
        assert {f.name for f in b.files.list()} == names_b
    assert b.files.get(name=target.name).name == target.name
    answer = b.models.generate_content(
        model="gemini-2.5-flash",
        contents=[types.Part.from_uri(file_uri=target.uri, mime_type="text/plain"), "read"])
    assert answer.text
    # An ordinary prompt that mentions "files/…" is not a reference.
    assert a.models.generate_content(model="gemini-2.5-flash",
                                     contents="see files/abc and cachedContents/x").text


def test_ownership_survives_a_restart_and_the_admin_sees_every_tenant(
        sim: RunningSimulator, walls: RunningGateway, db_path: str) -> None:
    secret_c, _ = walls.new_key(name="tenant-c")
    secret_d, _ = walls.new_key(name="tenant-d")
    made = _upload(sdk(walls.url, secret_c), "c's file")
    assert made.name is not None
    everything = walls.admin("GET", "/admin/resources").json()["resources"]
    assert made.name in {r["name"] for r in everything}
    assert walls.admin("GET", "/admin/resources", token="not-admin").status_code == 403
    walls.stop()
    with run_gateway(sim.url, ledger={"path": db_path}) as again:
        c, d = sdk(again.url, secret_c), sdk(again.url, secret_d)
        assert made.name in {f.name for f in c.files.list()}
        assert _status(lambda: d.files.get(name=made.name)) == 404
        assert _status(lambda: d.files.delete(name=made.name)) == 404
        c.files.delete(name=made.name)
        assert made.name not in {r["name"] for r in
                                 again.admin("GET", "/admin/resources").json()["resources"]}


def test_admin_key_is_not_a_client_token(gateway: RunningGateway) -> None:
    answer = requests.get(gateway.url + "/v1beta/files", headers={"x-goog-api-key": ADMIN})
    assert answer.status_code == 401


def test_a_cache_is_its_creators_alone(walls_open: RunningGateway) -> None:
    secret_a, _ = walls_open.new_key(name="cache-a")
    secret_b, _ = walls_open.new_key(name="cache-b")
    a, b = sdk(walls_open.url, secret_a), sdk(walls_open.url, secret_b)
    long_text = "The gateway keeps every tenant apart. " * 200  # over Google's 1,024 tokens
    cache = b.caches.create(model="gemini-2.5-flash", config=types.CreateCachedContentConfig(
        contents=[long_text], ttl="600s", display_name="b's cache"))
    assert cache.name is not None
    assert [c.name for c in b.caches.list()] == [cache.name]
    answer = b.models.generate_content(model="gemini-2.5-flash", contents="summarise",
                                       config=types.GenerateContentConfig(
                                           cached_content=cache.name))
    assert answer.text
    assert [c.name for c in a.caches.list()] == []
    assert _status(lambda: a.caches.get(name=cache.name)) == 404
    assert _status(lambda: a.caches.update(
        name=cache.name, config=types.UpdateCachedContentConfig(ttl="60s"))) == 404
    assert _status(lambda: a.models.generate_content(
        model="gemini-2.5-flash", contents="x",
        config=types.GenerateContentConfig(cached_content=cache.name))) == 404
    assert _status(lambda: a.caches.delete(name=cache.name)) == 404
    b.caches.update(name=cache.name, config=types.UpdateCachedContentConfig(ttl="60s"))
    b.caches.delete(name=cache.name)
    assert [c.name for c in b.caches.list()] == []


@pytest.fixture(scope="module")
def walls_open(sim: RunningSimulator) -> Iterator[RunningGateway]:
    with run_gateway(sim.url) as running:
        yield running
