"""Keyed pseudonyms of PatientID (0010,0020), and the work dir's owner-only files.

A plain hash of a PatientID can be reversed by anyone holding a list of candidate IDs (hospital IDs
are short), so the pseudonym is HMAC-SHA256 (RFC 2104, Python's ``hmac``) keyed with 32 random bytes
kept in ``<work_dir>/pseudonym.key``: stable within a project (one work dir), not linkable across
projects, and not reversible without the key. The index stores only the pseudonym, so a work dir on
shared scratch space carries no patient identifier.

The key file is created once, safely when several processes (DDP ranks, nodes) race: each writes a
complete candidate to its own temp file and ``os.link`` s it into place, which fails if the name
exists (an atomic O_EXCL create); the losers delete their candidate and everyone reads the winner.
Files are created ``0600`` and folders ``0700`` (readable by their owner only).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from lightning_dicom.errors import ConfigError

__all__ = ["KEY_FILE", "private_dir", "private_file", "project_key", "pseudonym"]

KEY_FILE = "pseudonym.key"
_KEY_BYTES = 32


def private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and missing parents) as ``0700``; an existing folder is left as it is."""
    path = Path(path)
    missing = []
    p = path
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(d, 0o700)  # mkdir's mode is masked by the umask
    return path


def private_file(path: str | os.PathLike[str]) -> None:
    """Make an existing file readable and writable by its owner only (``0600``)."""
    os.chmod(path, 0o600)


def project_key(work_dir: str | os.PathLike[str]) -> bytes:
    """The project's pseudonym key (``<work_dir>/pseudonym.key``), created on first use.

    Raises:
        ConfigError: the key file exists but is not a key (truncated, replaced).
    """
    path = private_dir(work_dir) / KEY_FILE
    if not path.exists():
        tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            os.write(fd, secrets.token_bytes(_KEY_BYTES).hex().encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # atomic: fails when another process won the race
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    text = path.read_text(encoding="ascii", errors="replace").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != _KEY_BYTES:
        raise ConfigError(
            f"not a pseudonym key ({_KEY_BYTES} bytes as hex expected); delete it together with index.sqlite "
            "to start a new project (pseudonyms change)",
            path=path,
        )
    return key


def pseudonym(patient_id: str | None, key: bytes) -> str:
    """HMAC-SHA256 of the PatientID under ``key``, 16 hex characters; '' when there is no ID."""
    pid = (patient_id or "").strip()
    if not pid:
        return ""
    return hmac.new(key, pid.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()[:16]
