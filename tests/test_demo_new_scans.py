"""The segmentation demo's second half (issue 11): new scans, never seen in training, predicted from the
checkpoint by sliding window; the written SEGs, read back onto their source series, score Dice >= 0.85."""

from __future__ import annotations

import re

import highdicom as hd
import pydicom
import pytest

from lightning_dicom.cli import main


@pytest.mark.slow
def test_demo_new_scans_dice(tmp_path, capsys):
    # ~35 s on 2 shared cores (12 training patients, 10 epochs, 4 new scans)
    args = ["--task", "segmentation", "--out", str(tmp_path), "--patients", "12", "--epochs", "10"]
    assert main(["demo", *args, "--new-scans", "4"]) == 0
    out = capsys.readouterr().out
    m = re.search(r"new scans: (\d+) series .* Dice against the truth ([0-9.]+) \(min ([0-9.]+)\)", out)
    assert m is not None, out[-2000:]
    assert int(m.group(1)) == 4
    assert float(m.group(2)) >= 0.85, out[-2000:]
    assert float(m.group(3)) >= 0.7
    segs = sorted((tmp_path / "seg_new_predictions").glob("*.seg.dcm"))
    assert len(segs) == 4
    assert not list((tmp_path / "seg_new").rglob("seg.dcm"))  # the new folder held no masks
    seg = hd.seg.Segmentation.from_dataset(pydicom.dcmread(segs[0]))
    assert seg.SegmentSequence[0].SegmentLabel == "lesion"
