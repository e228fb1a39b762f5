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
