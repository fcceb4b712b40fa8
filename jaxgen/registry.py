"""Name -> object lookups that fail with the list of known names."""

from typing import Any, Mapping


def lookup(kind: str, name: str, table: Mapping[str, Any], field: str = "") -> Any:
  """Returns `table[name]`, or raises a ValueError listing the known names.

  Args:
    kind: what is looked up, for the message ("model", "dataset", ...).
    name: the requested name.
    table: the registry.
    field: the config field that holds the name, named in the message.

  Raises:
    ValueError: `name` is not in `table`.
  """
  if name in table:
    return table[name]
  where = f" (config field `{field}`)" if field else ""
  known = ", ".join(sorted(table))
  raise ValueError(f"Unknown {kind} {name!r}{where}. Known {kind}s: {known}.")


def build_with_fields(kind: str, cls: Any, fields: Mapping[str, Any],
                      field_prefix: str = "") -> Any:
  """Calls `cls(**fields)`; an unknown field raises a ValueError naming it.

  Args:
    kind: what is built, for the message.
    cls: a dataclass (Flax modules are dataclasses) or callable.
    fields: keyword arguments from the config.
    field_prefix: config prefix of the fields (e.g. "model."), for the message.
  """
  import dataclasses
  if dataclasses.is_dataclass(cls):
    known = {f.name for f in dataclasses.fields(cls) if f.init} - {"parent", "name"}
    unknown = sorted(set(fields) - known)
    if unknown:
      raise ValueError(
          f"{kind} {getattr(cls, '__name__', cls)} has no field(s) "
          f"{', '.join(field_prefix + u for u in unknown)}. "
          f"Its fields: {', '.join(sorted(known))}.")
  return cls(**fields)
