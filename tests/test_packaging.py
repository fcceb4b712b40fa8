"""pyproject.toml: lower bounds only, unless a comment names a known incompatibility."""

import os
import re
import tomllib

from packaging.requirements import Requirement

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYPROJECT = os.path.join(REPO, "pyproject.toml")
UPPER_BOUND_OPERATORS = ("<", "<=", "~=", "==", "===")


def requirements(pyproject_text):
  """Every requirement string of the build system, the dependencies and the extras."""
  data = tomllib.loads(pyproject_text)
  found = list(data.get("build-system", {}).get("requires", []))
  found += data.get("project", {}).get("dependencies", [])
  for extra in data.get("project", {}).get("optional-dependencies", {}).values():
    found += extra
  return found


def unexplained_upper_bounds(pyproject_text):
  """Requirements with an upper bound and no comment on their line or the line before."""
  lines = pyproject_text.splitlines()
  bad = []
  for req in requirements(pyproject_text):
    if not any(s.operator in UPPER_BOUND_OPERATORS for s in Requirement(req).specifier):
      continue
    index = next(i for i, line in enumerate(lines) if f'"{req}"' in line or f"'{req}'" in line)
    same_line = "#" in lines[index].split(req, 1)[1]
    previous = index > 0 and lines[index - 1].strip().startswith("#")
    if not (same_line or previous):
      bad.append(req)
  return bad


def test_no_upper_bound_without_a_comment():
  assert unexplained_upper_bounds(open(PYPROJECT).read()) == []


def test_the_check_catches_upper_bounds():
  text = """
[project]
dependencies = [
  "a>=1,<2",
  "b~=1.4",
  "c==3",
  # d 5 removed the API we call.
  "d>=1,<5",
  "e<=2",
  "f>=1",   # comment beside a lower bound
  "g>=1; python_version < '3.12'",
  "h!=1.5",
]
[project.optional-dependencies]
test = ["i<9"]
"""
  assert unexplained_upper_bounds(text) == [
      "a>=1,<2", "b~=1.4", "c==3", "e<=2", "i<9"]


def test_tensorflow_is_the_distribution_colab_has():
  # tensorflow-cpu installs the same package as Colab's tensorflow and would overwrite it.
  names = [Requirement(r).name for r in requirements(open(PYPROJECT).read())]
  assert "tensorflow" in names and "tensorflow-cpu" not in names


def test_readme_tested_versions_satisfy_the_lower_bounds():
  readme = open(os.path.join(REPO, "README.md")).read()
  match = re.search(r"suite ran on (.*?)\.\n\n", readme, re.S)
  assert match, "README lacks the 'suite ran on ...' statement"
  tested = dict(re.findall(r"([A-Za-z][\w.-]*) (\d+(?:\.\d+)+)", match.group(1)))
  specs = {Requirement(r).name.lower(): Requirement(r).specifier
           for r in requirements(open(PYPROJECT).read())}
  checked = [name for name in tested if name.lower() in specs]
  assert {"jax", "flax", "tensorflow"} <= set(checked)
  for name in checked:
    assert specs[name.lower()].contains(tested[name]), (name, tested[name])
