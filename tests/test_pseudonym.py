"""Keyed PatientID pseudonyms (issue 15): one key per work dir, created once under a race, owner-only
files, no PatientID in the index, an index of the old schema rebuilt rather than misread."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
import stat
from pathlib import Path

import pytest

from lightning_dicom.dicom.index import SCHEMA_VERSION, DicomIndex, patient_key
from lightning_dicom.dicom.pseudonym import KEY_FILE, project_key, pseudonym
from lightning_dicom.errors import ConfigError


def _key(work: str) -> str:
    return project_key(work).hex()


def test_racing_processes_share_one_key(tmp_path: Path) -> None:
    work = tmp_path / "shared" / "work"
    with mp.get_context("spawn").Pool(6) as pool:
        keys = pool.map(_key, [str(work)] * 12)
    assert len(set(keys)) == 1 and len(bytes.fromhex(keys[0])) == 32
    assert project_key(work).hex() == keys[0]  # read back, not recreated
    assert sorted(p.name for p in work.iterdir()) == [KEY_FILE]  # no temp file left
    assert stat.S_IMODE((work / KEY_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE(work.stat().st_mode) == 0o700
    assert stat.S_IMODE(work.parent.stat().st_mode) == 0o700


def test_pseudonyms_are_keyed_stable_and_not_linkable(tmp_path: Path) -> None:
    a, b = project_key(tmp_path / "a"), project_key(tmp_path / "b")
    assert a != b
    assert pseudonym("SYN0020", a) == pseudonym(" SYN0020 ", project_key(tmp_path / "a"))
    assert pseudonym("SYN0020", a) != pseudonym("SYN0020", b)
    assert pseudonym("SYN0020", a) != "edad24c393"  # not the old unsalted sha256 prefix
    assert pseudonym("", a) == "" and pseudonym(None, a) == ""
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / KEY_FILE).write_text("short")
    with pytest.raises(ConfigError, match="not a pseudonym key"):
        project_key(tmp_path / "c")


def test_index_stores_pseudonyms_only_and_owner_only(synthetic_dataset, tmp_path: Path) -> None:
    root, written = synthetic_dataset
    work = tmp_path / "work"
    with DicomIndex([root], work / "index.sqlite") as idx:
        idx.scan(workers=1)
        series = idx.series()
        key = idx.pseudonym_key
    assert key == project_key(work)
    assert {s.patient_id for s in series} == {patient_key(w.patient_id, key) for w in written}
    for f in work.iterdir():
        mode = stat.S_IMODE(f.stat().st_mode)
        assert mode & 0o077 == 0, (f.name, oct(mode))
    raw = b"".join(p.read_bytes() for p in work.iterdir() if p.is_file())
    for w in written:
        assert w.patient_id.encode() not in raw
        assert w.patient_name.encode() not in raw


def test_index_of_an_older_schema_is_rebuilt(synthetic_dataset, tmp_path: Path) -> None:
    root, written = synthetic_dataset
    db = tmp_path / "index.sqlite"
    with sqlite3.connect(db) as con:  # an index of schema 6: PatientID in clear
        con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        con.execute("INSERT INTO meta VALUES ('schema', '6')")
        con.execute("CREATE TABLE files (path TEXT PRIMARY KEY, patient_id)")
        con.execute("INSERT INTO files VALUES ('/x.dcm', 'MRN-77')")
    with DicomIndex([root], db) as idx:
        assert idx.files() == []
        report = idx.scan(workers=1)
        assert report.n_read == report.n_files  # every header read again
        assert all(not f["patient_id"].startswith("SYN") for f in idx.files("ok"))
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT value FROM meta").fetchone()[0] == str(SCHEMA_VERSION)
