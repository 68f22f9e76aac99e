"""The config against its JSON schema (``workflow/schemas/config.schema.yaml``): text values read
back as the numbers and booleans the schema asks for (``coerce_command_line``), and every violation
as one line naming its key path (``schema_errors``). PyYAML and jsonschema only.
"""

import re


def _load_schema(schema_path) -> dict:
    import yaml

    with open(schema_path) as f:
        return yaml.safe_load(f)


def _text_errors(err):
    """``err`` and the errors under it (a ``oneOf``'s alternatives): the type and enum mismatches of
    a text value, which ``_typed`` may read as what the schema asks for."""
    if err.validator in ("type", "enum") and isinstance(err.instance, str):
        yield err
    for sub in err.context or []:
        yield from _text_errors(sub)


#: a decimal number as people write it (YAML 1.1 reads ``1e-2``, without a dot, as text)
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _readings(text: str) -> list:
    """What ``text`` may mean: its YAML value, then, for a number, the integer and the float it writes."""
    import yaml

    out = []
    try:
        out.append(yaml.safe_load(text))
    except yaml.YAMLError:
        pass
    if _NUMBER.fullmatch(text.strip()):
        x = float(text)
        out += [int(x)] if x.is_integer() else []
        out.append(x)
    return out


def _same(a, b) -> bool:
    """``a == b`` and of one type: ``True`` is not 1, ``1`` not 1.0 (as JSON schema sees them)."""
    return a == b and isinstance(a, bool) == isinstance(b, bool) and isinstance(a, int) == isinstance(b, int)


def _typed(err):
    """The value of the text ``err.instance`` that the failed check (``type`` or ``enum``) accepts, or
    ``None``: ``'1e-2'`` where a number is wanted is 0.01, ``'true'`` where a boolean is wanted True."""
    for value in _readings(err.instance):
        if err.validator == "type" and _fits(value, err.validator_value):
            return value
        if err.validator == "enum" and not isinstance(value, str) and any(_same(value, v) for v in err.validator_value):
            return value
    return None


def _fits(value, types) -> bool:
    kinds = {"integer": int, "number": (int, float), "boolean": bool}
    types = [types] if isinstance(types, str) else types
    return any(isinstance(value, kinds[t]) and (t == "boolean") == isinstance(value, bool) for t in types if t in kinds)


def coerce_command_line(config: dict, schema_path) -> None:
    """Read text values as the number or boolean the schema asks for, in place. Snakemake's
    ``--config`` gives every item of a list or mapping as text (``--config only_seeds=[0,1]`` arrives
    as ``['0', '1']``, ``'engine={amp: true}'`` as ``{'amp': 'true'}``), and YAML 1.1 reads a
    config file's ``lr: 1e-2`` as text (it wants ``1.0e-2``): each is read back as what the user wrote.
    A text the schema asks for stays text (a ``label: "5"``)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(_load_schema(schema_path))
    for _ in range(8):  # each pass fixes what the schema can see; a value inside a fixed one needs another
        fixed = 0
        for err in validator.iter_errors(config):
            for e in _text_errors(err):
                value = _typed(e)
                if value is not None and e.absolute_path:
                    *parents, last = e.absolute_path
                    node = config
                    for key in parents:
                        node = node[key]
                    node[last], fixed = value, fixed + 1
        if not fixed:
            return


def schema_errors(config: dict, schema_path) -> list[str]:
    """Every schema violation of ``config``, each naming the key path, e.g.
    ``runs.demo-l2: unknown key 'epoch'`` or ``recipes.sgd60.epochs: 'sixty' is not of type 'integer'``."""
    import jsonschema

    out = []
    schema = _load_schema(schema_path)
    for err in sorted(jsonschema.Draft202012Validator(schema).iter_errors(config), key=lambda e: list(e.path)):
        where = ".".join(str(p) for p in err.path) or "(top level)"
        if err.validator == "additionalProperties":
            known = err.schema.get("properties", {})
            extra = sorted(set(err.instance) - set(known))
            # a table or figure kind's schema has a title ("table of kind l2_vs_nol2"): say whose keys these are
            takes = f"a {err.schema['title']} takes" if "title" in err.schema else "known keys"
            out.append(f"{where}: unknown key(s) {extra}; {takes}: {', '.join(sorted(known)) or 'none'}")
        elif err.validator == "oneOf" and err.schema.get("description"):
            out.append(f"{where}: {err.instance!r} is not {err.schema['description']}")
        elif err.validator == "type" and err.schema.get("description", "").startswith("a "):
            # a key of one type that says what it takes ("a {column key: data set} mapping, e.g. ...")
            out.append(f"{where}: {err.instance!r} is not {err.schema['description']}")
        else:
            out.append(f"{where}: {err.message}")
    return out
