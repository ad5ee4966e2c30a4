"""Tests for lightning_dicom.config: validation messages, YAML loading, schema export, digest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from lightning_dicom.config import (
    DataConfig,
    PatchConfig,
    PreprocessingConfig,
    SplitConfig,
    parse_config,
)
from lightning_dicom.errors import ConfigError, LightningDicomError


def _error(raw: dict) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    assert isinstance(info.value, LightningDicomError)
    assert isinstance(info.value, ValueError)
    return str(info.value)


def test_minimal_config_defaults() -> None:
    cfg = parse_config({"root": "/data/ct"})
    assert cfg.root == [Path("/data/ct")]
    assert cfg.preprocessing.orientation == "LPS"
    assert cfg.preprocessing.normalize == "minmax"
    assert cfg.split.group_by == "patient"
    assert (cfg.split.val, cfg.split.test) == (0.2, 0.0)
    assert cfg.cache.dtype == "float16"
    assert cfg.patches is None
    assert parse_config(cfg) is cfg


def test_unknown_key_names_the_key() -> None:
    msg = _error({"root": "x", "preprocessing": {"spacng": [1, 1, 1]}})
    assert "preprocessing.spacng" in msg
    assert "unknown key" in msg
    msg = _error({"root": "x", "preprocesing": {}})
    assert "preprocesing: unknown key" in msg


def test_negative_spacing_names_key_and_expectation() -> None:
    msg = _error({"root": "x", "preprocessing": {"spacing": [1.0, -1.0, 2.0]}})
    assert "preprocessing.spacing" in msg
    assert "three positive numbers" in msg
    assert "-1.0" in msg
    assert "spacing" in _error({"root": "x", "preprocessing": {"spacing": [1.0, 0.0, 2.0]}})


def test_window_low_above_high_names_key() -> None:
    msg = _error({"root": "x", "preprocessing": {"window": [400, -1000]}})
    assert "preprocessing.window" in msg
    assert "low < high" in msg
    assert "preprocessing.window" in _error({"root": "x", "preprocessing": {"window": [5, 5]}})
    cfg = parse_config({"root": "x", "preprocessing": {"window": [-1000, 400]}})
    assert cfg.preprocessing.window == (-1000.0, 400.0)


@pytest.mark.parametrize(
    ("section", "value", "key", "needle"),
    [
        ("preprocessing", {"size": [0, 32, 32]}, "preprocessing.size", ">= 1"),
        ("preprocessing", {"size": [16, 32]}, "preprocessing.size", "too few values"),
        ("preprocessing", {"size": [16, 32, 32, 4]}, "preprocessing.size", "at most 3"),
        ("preprocessing", {"size": [2.5, 32, 32]}, "preprocessing.size.0", "integer"),
        ("patches", {"size": [0, 8, 8]}, "patches.size", ">= 1"),
        ("patches", {"size": [8, 8]}, "patches.size", "too few values"),
        ("patches", {"size": [8, 8, 8], "per_volume": 0}, "patches.per_volume", "greater than or equal to 1"),
    ],
)
def test_size_and_patch_validation(section: str, value: dict, key: str, needle: str) -> None:
    msg = _error({"root": "x", section: value})
    assert f"{key}:" in msg
    assert needle in msg


def test_valid_sizes_are_tuples() -> None:
    cfg = parse_config(
        {
            "root": "x",
            "preprocessing": {"size": [16, 32, 48]},
            "patches": {"size": [8, 16, 16], "per_volume": 3},
        }
    )
    assert cfg.preprocessing.size == (16, 32, 48)
    assert cfg.patches == PatchConfig(size=(8, 16, 16), per_volume=3)
    with pytest.raises(ConfigError, match="patches.size: Field required"):
        parse_config({"root": "x", "patches": {}})


@pytest.mark.parametrize(("val", "test"), [(0.5, 0.5), (0.7, 0.4), (0.0, 0.999), (0.6, 0.4)])
def test_split_fractions_must_leave_training(val: float, test: float) -> None:
    if val + test < 1:
        assert SplitConfig(val=val, test=test).test == test
        return
    msg = _error({"root": "x", "split": {"val": val, "test": test}})
    assert "split: val + test must be < 1" in msg


def test_split_fraction_bounds() -> None:
    assert "split.val" in _error({"root": "x", "split": {"val": 1.0}})
    assert "split.test" in _error({"root": "x", "split": {"test": -0.1}})
    assert "split.group_by" in _error({"root": "x", "split": {"group_by": "site"}})


def test_root_required_and_nonempty() -> None:
    assert "root: Field required" in _error({})
    assert "root needs at least one folder" in _error({"root": []})
    assert parse_config({"root": ["a", "b"]}).root == [Path("a"), Path("b")]


def test_several_errors_reported_together() -> None:
    msg = _error({"root": "x", "preprocessing": {"window": [1, 0], "spacing": [-1, 1, 1]}, "bogus": 1})
    assert "preprocessing.window" in msg
    assert "preprocessing.spacing" in msg
    assert "bogus" in msg


def test_models_are_frozen() -> None:
    cfg = PreprocessingConfig()
    with pytest.raises(ValueError, match="frozen"):
        cfg.spacing = (1.0, 1.0, 1.0)  # type: ignore[misc]


_BODY = {
    "root": ["/data/a", "/data/b"],
    "preprocessing": {"spacing": [1.5, 1.5, 2.0], "window": [-1000, 400], "size": [32, 64, 64]},
    "split": {"val": 0.25, "seed": 7},
    "patches": {"size": [16, 32, 32]},
}


@pytest.mark.parametrize("layout", ["whole", "data", "data_init_args"])
def test_from_yaml_layouts(tmp_path: Path, layout: str) -> None:
    doc = {
        "whole": _BODY,
        "data": {"trainer": {"max_epochs": 1}, "data": _BODY},
        "data_init_args": {
            "model": {"class_path": "M"},
            "data": {"class_path": "lightning_dicom.DicomDataModule", "init_args": _BODY},
        },
    }[layout]
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(doc))
    cfg = DataConfig.from_yaml(path)
    assert cfg.root == [Path("/data/a"), Path("/data/b")]
    assert cfg.preprocessing.spacing == (1.5, 1.5, 2.0)
    assert cfg.preprocessing.window == (-1000.0, 400.0)
    assert cfg.preprocessing.size == (32, 64, 64)
    assert cfg.split.val == 0.25
    assert cfg.split.seed == 7
    assert cfg.patches is not None
    assert cfg.patches.size == (16, 32, 32)


def test_from_yaml_errors_name_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("data:\n  init_args:\n    root: /x\n    preprocessing:\n      window: [400, -1000]\n")
    with pytest.raises(ConfigError) as info:
        DataConfig.from_yaml(path)
    assert "preprocessing.window" in str(info.value)
    assert str(path) in str(info.value)
    assert info.value.path == str(path)
    broken = tmp_path / "broken.yaml"
    broken.write_text("root: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        DataConfig.from_yaml(broken)
    assert info.value.path == str(broken)


def test_shipped_yaml_configs_load() -> None:
    configs = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
    loaded = [DataConfig.from_yaml(p) for p in configs if "data" in (yaml.safe_load(p.read_text()) or {})]
    assert loaded, "no LightningCLI config with a data: section in configs/"
    assert all(len(c.root) >= 1 for c in loaded)


def test_json_schema_has_descriptions() -> None:
    schema = DataConfig.model_json_schema()
    json.dumps(schema)  # serialisable
    assert schema["additionalProperties"] is False
    assert "root" in schema["required"]
    assert "Folder(s) scanned recursively" in schema["properties"]["root"]["description"]
    prep = schema["$defs"]["PreprocessingConfig"]
    assert prep["additionalProperties"] is False
    assert "Target voxel spacing in mm, x-y-z" in prep["properties"]["spacing"]["description"]
    assert "[low, high]" in prep["properties"]["window"]["description"]
    assert "z-y-x" in prep["properties"]["size"]["description"]
    assert set(prep["properties"]["normalize"]["enum"]) == {"minmax", "zscore", "ct_zscore", "none"}
    split = schema["$defs"]["SplitConfig"]["properties"]
    assert "Fraction of groups in validation" in split["val"]["description"]
    for name, model in schema["$defs"].items():
        for field, spec in model["properties"].items():
            assert spec.get("description"), f"{name}.{field} has no description"


def test_digest_tracks_preprocessing_fields() -> None:
    base = PreprocessingConfig()
    assert base.digest() == PreprocessingConfig().digest()
    assert len(base.digest()) == 64
    changed = [
        PreprocessingConfig(orientation="RAS"),
        PreprocessingConfig(spacing=(1.0, 1.0, 1.0)),
        PreprocessingConfig(spacing=(1.0, 1.0, 1.0), interpolation="nearest"),
        PreprocessingConfig(window=(-1000, 400)),
        PreprocessingConfig(normalize="zscore"),
        PreprocessingConfig(size=(8, 8, 8)),
    ]
    digests = {c.digest() for c in changed}
    assert len(digests) == len(changed)
    assert base.digest() not in digests
    # equal values written differently give the same digest
    assert (
        PreprocessingConfig(window=(-1000, 400)).digest()
        == PreprocessingConfig(window=(-1000.0, 400.0)).digest()
    )


def test_work_and_cache_dirs(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    a = parse_config({"root": "/data/a"})
    b = parse_config({"root": "/data/b"})
    assert a.resolved_work_dir() != b.resolved_work_dir()
    assert a.resolved_work_dir().parent == tmp_path / "xdg" / "lightning_dicom"  # not relative to the CWD
    monkeypatch.chdir(tmp_path)
    assert parse_config({"root": "/data/a/../a"}).resolved_work_dir() == a.resolved_work_dir()
    assert a.resolved_cache_dir() == a.resolved_work_dir() / "cache"
    c = parse_config({"root": "/data/a", "work_dir": "/w", "cache": {"dir": "/c"}})
    assert c.resolved_work_dir() == Path("/w")
    assert c.resolved_cache_dir() == Path("/c")
