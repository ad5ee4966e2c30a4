"""Execute notebooks/quickstart.ipynb end to end in a Jupyter kernel running this interpreter."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "quickstart.ipynb"
#: jupyter_client replaces these argv[0] values with ``sys.executable`` when it launches a kernel.
_NATIVE_PYTHON = {
    "python",
    f"python{sys.version_info[0]}",
    f"python{sys.version_info[0]}.{sys.version_info[1]}",
}


def _uses_this_python(argv0: str) -> bool:
    if argv0 in _NATIVE_PYTHON:
        return True
    return Path(argv0).absolute() == Path(sys.executable).absolute()


def _kernel_manager(tmp_path: Path):
    """None (nbclient resolves kernel 'python3' itself) when that spec runs ``sys.executable``.

    Otherwise an AsyncKernelManager for an equivalent spec pointing at ``sys.executable``,
    written under ``tmp_path`` (nothing is installed anywhere).
    """
    from jupyter_client.manager import AsyncKernelManager

    try:
        argv = KernelSpecManager().get_kernel_spec("python3").argv
    except NoSuchKernel:
        argv = []
    if argv and _uses_this_python(argv[0]):
        return None
    spec_dir = tmp_path / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (test)",
                "language": "python",
            }
        )
    )
    return AsyncKernelManager(
        kernel_name="python3", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
    )


def _text(output) -> str:
    if output.get("output_type") == "stream":
        return output.get("text", "")
    return output.get("data", {}).get("text/plain", "")


def test_notebook_is_stored_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], "clear the notebook's outputs"
            assert cell.execution_count is None, "clear the notebook's outputs"


def test_quickstart_notebook_runs(tmp_path: Path) -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    n_cells = len(nb.cells)
    # one extra cell (in this copy only) reports which interpreter the kernel runs
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print('KERNEL_PREFIX=' + sys.prefix)"))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    client = nbclient.NotebookClient(
        nb,
        km=_kernel_manager(tmp_path),
        kernel_name="python3",
        timeout=300,
        resources={"metadata": {"path": str(run_dir)}},
    )
    t0 = time.perf_counter()
    try:
        client.execute(env=env)
    except nbclient.exceptions.CellExecutionError as err:  # pragma: no cover - shown on failure
        pytest.fail(f"notebook cell failed:\n{err}")
    seconds = time.perf_counter() - t0

    code = [c for c in nb.cells if c.cell_type == "code"]
    for cell in code:
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, f"cell errored: {errors[0].ename}: {errors[0].evalue}\n{cell.source[:300]}"
    assert "".join(_text(o) for o in code[-1].outputs).strip() == f"KERNEL_PREFIX={sys.prefix}"

    final = "".join(_text(o) for o in nb.cells[n_cells - 1].outputs)
    match = re.search(r"val_acc\W+(\d+(?:\.\d+)?)", final)
    assert match, f"final cell printed no val accuracy: {final!r}"
    assert 0.0 <= float(match.group(1)) <= 1.0

    images = sum(1 for c in code for o in c.outputs if "image/png" in o.get("data", {}))
    assert images == 4  # raw and preprocessed volume, batch, split
    assert not list(run_dir.iterdir()), "the notebook should write only to its own temporary folder"
    assert seconds < 120, f"quickstart took {seconds:.0f} s (budget: under 60 s on an idle machine)"
