"""The anomaly study's report pieces: the per-digit AUROC table and bar chart."""

from typing import Any, Mapping

import numpy as np

from jaxgen import figures
from jaxgen import reporting


def auroc_markdown(tables: Mapping[str, Mapping[str, Any]]) -> str:
  """A per-class AUROC table with 95% intervals, one column per (model, method).

  Args:
    tables: {model name: `one_class_table(...)`}.
  """
  columns = [(model, method) for model, table in tables.items()
             for method in table["mean_auroc"]]
  classes = sorted({c for table in tables.values() for c in table["per_class"]})
  rows = []
  for c in classes:
    row = [str(c)]
    for model, method in columns:
      r = tables[model]["per_class"].get(c, {}).get(method)
      row.append("-" if r is None else
                 f"{r['auroc']:.3f} [{r['auroc_ci'][0]:.3f}, {r['auroc_ci'][1]:.3f}]"
                 if "auroc_ci" in r else f"{r['auroc']:.3f}")
    rows.append(row)
  rows.append(["**mean**"] + [f"**{tables[m]['mean_auroc'][k]:.3f}**" for m, k in columns])
  return reporting.markdown_table(rows, ["normal class"] + [f"{m}: {k}" for m, k in columns])


def save_auroc_plot(path: str, tables: Mapping[str, Mapping[str, Any]], title: str) -> str:
  """Grouped bars of AUROC per class with 95% bootstrap intervals; returns the path."""
  plt = figures.plt
  columns = [(model, method) for model, table in tables.items()
             for method in table["mean_auroc"]]
  classes = sorted({c for table in tables.values() for c in table["per_class"]})
  width = 0.8 / max(len(columns), 1)
  fig, ax = plt.subplots(figsize=(max(6.0, len(classes) + 2.0), 4.2))
  for j, (model, method) in enumerate(columns):
    values, lows, highs = [], [], []
    for c in classes:
      r = tables[model]["per_class"].get(c, {}).get(method, {"auroc": np.nan})
      values.append(r["auroc"])
      low, high = r.get("auroc_ci", [r["auroc"], r["auroc"]])
      lows.append(r["auroc"] - low)
      highs.append(high - r["auroc"])
    x = np.arange(len(classes)) + (j - (len(columns) - 1) / 2) * width
    ax.bar(x, values, width, yerr=[lows, highs], capsize=2,
           label=f"{model}: {method} (mean {tables[model]['mean_auroc'][method]:.3f})")
  ax.axhline(0.5, color="grey", lw=0.8, ls="--")
  ax.set_xticks(np.arange(len(classes)), [str(c) for c in classes])
  ax.set_xlabel("normal class")
  ax.set_ylabel("ROC AUC (95% bootstrap CI)")
  ax.set_ylim(0.0, 1.0)
  ax.set_title(title, fontsize=10)
  ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
  fig.tight_layout()
  return figures.save_figure(fig, path)
