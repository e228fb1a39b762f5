"""The [cluster] section and the connection options: read, validated, secrets kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from garrison import ConfigError, InvalidConfig, Secret, Settings
from garrison.cli._run import cluster_settings
from garrison.cluster import ClusterConnection, ClusterSettings


def test_a_cluster_section_is_read_with_its_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "node.toml"
    config.write_text('[cluster]\nname = "prod"\nlease_ttl = 2.0\n')
    monkeypatch.setenv("GARRISON_CLUSTER_URL", "redis://10.0.0.5:6379/0")
    monkeypatch.setenv("GARRISON_CLUSTER_PASSWORD", "s3cret")
    settings = Settings.load(config)
    found = cluster_settings(settings)
    assert found == ClusterSettings(
        url=Secret("redis://10.0.0.5:6379/0"), name="prod", lease_ttl=2.0, password=Secret("s3cret")
    )
    connection = found.connection()
    assert connection.password == Secret("s3cret")
    assert "s3cret" not in repr(connection)
    assert "s3cret" in settings.secret_texts()
    settings.check_sections_read()  # garrison run read it: no "unknown section"


def test_without_a_section_or_variables_no_cluster_is_joined(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in __import__("os").environ if name.startswith("GARRISON_CLUSTER_")]:
        monkeypatch.delenv(name)
    assert cluster_settings(Settings.load()) is None


def test_a_bad_cluster_value_is_a_config_error_naming_its_key(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text('[cluster]\nurl = "redis://x"\nlease_ttl = -1\nnmae = "typo"\n')
    with pytest.raises(ConfigError) as refused:
        cluster_settings(Settings.load(config, environ={}))
    assert set(refused.value.keys) >= {"cluster.lease_ttl", "cluster.nmae"}


def test_a_connection_refuses_what_is_not_a_redis_url() -> None:
    with pytest.raises(InvalidConfig) as refused:
        ClusterConnection("http://user:pw@host/")
    assert refused.value.field == "url"
    assert "pw" not in str(refused.value)


def test_a_cluster_section_read_once_is_still_found_by_the_next_reader(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text('[cluster]\nurl = "redis://10.0.0.5:6379/0"\nname = "prod"\n')
    settings = Settings.load(config)
    first = cluster_settings(settings)  # garrison run reads it before logging starts ...
    assert first is not None
    assert cluster_settings(settings) == first  # ... and again to build the node and join


def test_the_cluster_section_gives_the_nodes_singletons_on_the_same_redis() -> None:
    from garrison.cluster import RedisSingletons
    from garrison.cluster._keys import singletons_namespace

    section = ClusterSettings(
        url=Secret("redis://10.0.0.5:7000/0"),
        name="prod",
        lease_ttl=4.0,
        refresh_interval=0.5,
        password=Secret("s3cret"),
        redis_cluster=True,
    )
    singletons = section.singletons("node-a")
    assert isinstance(singletons, RedisSingletons)
    assert (singletons.node_id, singletons.ttl, singletons.refresh) == ("node-a", 4.0, 0.5)
    assert singletons.namespace == singletons_namespace("prod")
    assert singletons.connection.cluster is True
    assert singletons.connection.password == Secret("s3cret")
    assert "s3cret" not in repr(singletons)
    assert section.connection().cluster is True
    named = ClusterSettings(url=Secret("redis://10.0.0.5:7000/0"), node_id="b-1")
    assert named.singletons("node-a").node_id == "b-1"


def test_cluster_timings_the_singleton_refuses_name_the_cluster_setting() -> None:
    section = ClusterSettings(url=Secret("redis://10.0.0.5:6379/0"), lease_ttl=1.0, refresh_interval=0.9)
    with pytest.raises(InvalidConfig) as refused:
        section.singletons("a")
    assert refused.value.field == "refresh_interval"
    assert refused.value.value == 0.9


def test_a_cluster_connection_to_a_redis_cluster_needs_tcp() -> None:
    with pytest.raises(InvalidConfig) as refused:
        ClusterConnection("unix:///tmp/redis.sock", cluster=True)
    assert refused.value.field == "cluster"
