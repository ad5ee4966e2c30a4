"""The package's structural promises, checked on its source (issue 8).

* ``lightning_dicom/io.py`` is the only SimpleITK read/write/array-conversion boundary;
* imports run one way: no module imports the package root, and each family imports only the layers
  below it;
* no module grows much past ~600 lines;
* the UID vocabulary is one module: a Label Map SEG is linked to its series and read.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import lightning_dicom

PACKAGE = Path(lightning_dicom.__file__).parent
BOUNDARY_CALLS = {
    "ReadImage",
    "WriteImage",
    "ImageSeriesReader",
    "ImageFileReader",
    "ImageFileWriter",
    "GetArrayFromImage",
    "GetArrayViewFromImage",
    "GetImageFromArray",
}

#: Lower number = lower layer. A module may import modules of its own layer or below, never above.
LAYERS = [
    ("lightning_dicom._version", 0),
    ("lightning_dicom.errors", 0),
    ("lightning_dicom.typing", 0),
    ("lightning_dicom.files", 0),
    ("lightning_dicom._validators", 0),
    ("lightning_dicom.io", 1),
    ("lightning_dicom.config", 1),
    ("lightning_dicom.subjects.config", 1),
    ("lightning_dicom.dicom", 2),
    ("lightning_dicom.masks", 3),
    ("lightning_dicom.data.preprocess", 3),
    ("lightning_dicom.data.workers", 3),
    ("lightning_dicom.inference", 3),
    ("lightning_dicom.prediction_csv", 3),
    ("lightning_dicom.data", 4),
    ("lightning_dicom.subjects", 4),
    ("lightning_dicom.geometry", 4),
    ("lightning_dicom.writer", 5),
    ("lightning_dicom.render", 5),
    ("lightning_dicom.planning", 5),
    ("lightning_dicom.datamodule", 6),
    ("lightning_dicom.unified", 6),
    ("lightning_dicom.demo", 7),
    ("lightning_dicom.cli", 8),
    ("lightning_dicom.commands", 8),
]


def _layer(module: str) -> int:
    best = max((p for p, _ in LAYERS if module == p or module.startswith(p + ".")), key=len, default=None)
    if best is None:
        raise AssertionError(f"{module} is in no layer of tests/test_layout.py: add it")
    return dict(LAYERS)[best]


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts)
        out.append((name.removesuffix(".__init__"), path))
    return out


def _imports(path: Path, module: str) -> list[tuple[int, str, list[str]]]:
    """(line, imported module, names) of every import in the file, at any depth, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.append((node.lineno, base, [a.name for a in node.names]))
    return found


def test_simpleitk_reads_writes_and_array_conversions_happen_only_in_io() -> None:
    offenders = []
    for module, path in _modules():
        if module == "lightning_dicom.io":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in BOUNDARY_CALLS:
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.attr}")
            if isinstance(node, ast.ImportFrom) and node.module == "SimpleITK":
                offenders += [
                    f"{path.relative_to(PACKAGE.parent)}:{node.lineno} from SimpleITK import {a.name}"
                    for a in node.names
                    if a.name in BOUNDARY_CALLS
                ]
    assert not offenders, "SimpleITK I/O outside lightning_dicom/io.py:\n" + "\n".join(offenders)


def test_the_boundary_test_sees_a_violation(tmp_path: Path) -> None:
    """The scan above is not vacuous: the same check finds a read in a file that has one."""
    bad = tmp_path / "bad.py"
    bad.write_text("import SimpleITK as sitk\nimg = sitk.ReadImage('x.nii')\n")
    hits = [n.attr for n in ast.walk(ast.parse(bad.read_text())) if isinstance(n, ast.Attribute)]
    assert "ReadImage" in set(hits) & BOUNDARY_CALLS


def test_imports_run_one_way() -> None:
    problems = []
    for module, path in _modules():
        if module == "lightning_dicom":
            continue
        own = _layer(module)
        for line, target, names in _imports(path, module):
            if target == "lightning_dicom":
                # the package root re-exports the public API; importing it from inside is an upward import
                subpackages = [n for n in names if (PACKAGE / n).is_dir() or (PACKAGE / f"{n}.py").exists()]
                if len(subpackages) != len(names):
                    problems.append(f"{module}:{line} imports names from the package root: {names}")
                targets = [f"lightning_dicom.{n}" for n in subpackages]
            elif target.startswith("lightning_dicom."):
                targets = [target]
            else:
                continue
            for t in targets:
                if _layer(t) > own:
                    problems.append(f"{module}:{line} (layer {own}) imports {t} (layer {_layer(t)})")
    assert not problems, "\n".join(problems)


def test_no_module_is_much_over_600_lines() -> None:
    long = {m: n for m, p in _modules() if (n := len(p.read_text(encoding="utf-8").splitlines())) > 650}
    assert not long, long


@pytest.fixture(scope="module")
def label_map_seg(tmp_path_factory: pytest.TempPathFactory):
    from lightning_dicom.demo.synthetic import write_series
    from lightning_dicom.demo.synthetic_masks import write_seg

    root = tmp_path_factory.mktemp("labelmap")
    hu = np.full((6, 16, 16), -50.0)
    series = write_series(root / "ct", hu, patient_id="LM1", spacing=(1.0, 1.0, 2.0), seed=3)
    lesion = np.zeros((6, 16, 16), dtype=np.uint8)
    lesion[2:5, 4:10, 5:12] = 1
    seg = write_seg(root / "seg" / "lesion.dcm", series, {"lesion": lesion}, label_map=True)
    return root, series, seg, lesion


def test_label_map_seg_is_linked_to_its_series_and_read(label_map_seg, tmp_path: Path) -> None:
    import pydicom

    from lightning_dicom import DicomIndex, read_mask
    from lightning_dicom.dicom import uids
    from lightning_dicom.masks.association import find_mask_objects, link_masks

    root, series, seg, lesion = label_map_seg
    assert (
        str(pydicom.dcmread(seg, stop_before_pixels=True).SOPClassUID) == uids.LABEL_MAP_SEGMENTATION_STORAGE
    )
    with DicomIndex([root], db_path=tmp_path / "index.sqlite") as idx:
        idx.scan(workers=1)
        records = idx.series()
        objects = find_mask_objects(idx)
    assert [o.kind for o in objects] == ["seg"]
    linked, orphans = link_masks(records, objects)
    assert not orphans
    assert [str(p) for p in linked[records[0].series_uid]] == [str(seg)]
    masks = read_mask(seg, records[0])
    ((name, image),) = masks.items()
    from lightning_dicom.io import to_array

    assert name == "lesion"
    np.testing.assert_array_equal(to_array(image), lesion)


def test_the_readme_names_every_module() -> None:
    """The README's "How it works" table has a line for every module (issue 8: one line per module)."""
    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## How it works") : readme.index("### What each step does")]
    missing = []
    for module, path in _modules():
        if path.name == "__init__.py" and module != "lightning_dicom":
            continue  # a family's __init__ only re-exports
        name = "__init__.py" if module == "lightning_dicom" else path.name
        family = path.parent.name
        tag = "| top |" if family == "lightning_dicom" else f"| `{family}/` |"
        if not any(line.startswith(tag) and f"`{name}`" in line for line in section.splitlines()):
            missing.append(str(path.relative_to(PACKAGE.parent)))
    assert not missing, f"modules without a line in the README's How it works table: {missing}"
