"""The Colab notebook: paired with its jupytext .py, outputs cleared, runs end to end."""

import os
import re

import jupytext
import nbclient
import nbformat
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = os.path.join(REPO, "notebooks")
IPYNB = os.path.join(NOTEBOOKS, "jaxgen_colab.ipynb")
PY = os.path.join(NOTEBOOKS, "jaxgen_colab.py")


def _cells(notebook):
  return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells]


def test_ipynb_and_py_are_in_sync():
  # Either file may be edited; `jupytext --sync notebooks/jaxgen_colab.py` pairs them.
  paired = jupytext.read(PY)
  stored = nbformat.read(IPYNB, as_version=4)
  assert _cells(paired) == _cells(stored), (
      "notebooks/jaxgen_colab.ipynb and .py differ: run `jupytext --sync "
      "notebooks/jaxgen_colab.py`")
  assert stored.metadata.kernelspec.name == "python3"


def test_stored_notebook_has_no_outputs():
  for cell in nbformat.read(IPYNB, as_version=4).cells:
    if cell.cell_type == "code":
      assert not cell.outputs and cell.execution_count is None, cell.source[:80]


def test_readme_badge_and_notebook_name_one_repository():
  readme = open(os.path.join(REPO, "README.md")).read()
  links = re.findall(r"https://colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/blob/main/"
                     r"(notebooks/[\w.-]+\.ipynb)", readme)
  assert links, "README has no Open in Colab link"
  (repo, path), = set(links)
  assert os.path.exists(os.path.join(REPO, path))
  repo_url = re.search(r'^REPO_URL = "(.*)"$', open(PY).read(), re.M).group(1)
  assert repo_url == f"https://github.com/{repo}"


@pytest.mark.slow
def test_notebook_runs_end_to_end_in_smoke_mode(tmp_path, data_dir, monkeypatch):
  monkeypatch.setenv("JAXGEN_NOTEBOOK_SMOKE", "1")
  monkeypatch.setenv("JAXGEN_NOTEBOOK_WORKDIR_ROOT", str(tmp_path / "runs"))
  monkeypatch.setenv("JAXGEN_NOTEBOOK_DATA_DIR", data_dir)
  notebook = nbformat.read(IPYNB, as_version=4)
  # Runs from notebooks/ like Jupyter does; a failing cell raises CellExecutionError.
  nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                          resources={"metadata": {"path": NOTEBOOKS}}).execute()

  def cell(marker):
    """The code cell whose source contains `marker`."""
    return next(c for c in notebook.cells if c.cell_type == "code" and marker in c.source)

  def text(cell):
    return "".join(o.get("text", "") for o in cell.outputs)

  assert "CpuDevice" in text(cell("jax.devices()"))
  # The second call continued from the first call's checkpoint.
  assert "Steps 4 -> 6 of 6" in text(cell("before = last_step("))
  evaluated = text(cell("evaluate.evaluate_workdir("))
  assert "-iwae_4:" in evaluated and "FID" in evaluated
  for marker in ("vae_config.train.num_steps * 2 // 3", "evaluate.evaluate_workdir(",
                 "config_lib.load(DCGAN_CONFIG)"):
    # Figures are shown inline.
    assert any("image/png" in o.get("data", {}) for o in cell(marker).outputs), marker
  assert os.path.exists(tmp_path / "runs" / "mnist_vae" / "eval.json")
  assert os.path.exists(tmp_path / "runs" / "mnist_dcgan" / "figures" / "samples.png")
