#!/usr/bin/env python3
"""The run-log schema (runlog.schema.json) turned into what uses it, so it is declared once:

  gen_runlog_schema.py header   SCHEMA > runlog_schema_gen.h   C enums of groups and series
  gen_runlog_schema.py source   SCHEMA > runlog_schema_gen.c   C tables (runlog_schema.h types)
  gen_runlog_schema.py markdown SCHEMA > docs/runlog.md        the page a person reads

meson runs the first two at build time; tests/test_schema.sh checks that docs/runlog.md is the
third's output. Standard library only: any machine that runs meson has python3."""
import json
import re
import sys

DTYPES = {"int64": "NS_DT_INT64", "float64": "NS_DT_FLOAT64", "float32": "NS_DT_FLOAT32",
          "string": "NS_DT_STRING"}
WIDTHS = {None: "NS_W_SCALAR", "channels": "NS_W_CHANNELS", "grid": "NS_W_GRID",
          "hessian_top": "NS_W_HESSIAN_TOP", "density": "NS_W_DENSITY"}
WHEN = {None: "NS_WHEN_ALWAYS", "local_ranks": "NS_WHEN_LOCAL_RANKS",
        "running_stats": "NS_WHEN_RUNNING_STATS", "penalty": "NS_WHEN_PENALTY"}


def fail(msg):
    sys.exit(f"gen_runlog_schema: {msg}")


def load(path):
    with open(path, encoding="utf-8") as f:
        schema = json.load(f)
    ident = re.compile(r"^[a-z][a-z0-9_]*$")
    seen_groups = set()
    for g in schema["groups"]:
        if not ident.match(g["id"]) or g["id"] in seen_groups:
            fail(f"group id '{g['id']}' is not a new lower-case identifier")
        seen_groups.add(g["id"])
        if g.get("when") not in WHEN:
            fail(f"group '{g['id']}': unknown condition '{g.get('when')}'")
        names = set()
        for s in g["series"]:
            if not ident.match(s["name"]) or s["name"] in names:
                fail(f"group '{g['id']}': series name '{s['name']}' is not new or not an identifier")
            names.add(s["name"])
            if s["dtype"] not in DTYPES or s.get("width") not in WIDTHS:
                fail(f"{g['path']}/{s['name']}: dtype or width unknown")
            if (s["dtype"] == "float32") != (s.get("width") is not None):
                fail(f"{g['path']}/{s['name']}: float32 series are vectors, the others scalars")
            if (s["name"] == "step") != (s["dtype"] == "int64"):
                fail(f"{g['path']}/{s['name']}: int64 is for step series only")
            if not s.get("units") or not s.get("doc"):
                fail(f"{g['path']}/{s['name']}: units and doc are required")
    for a in schema["root_attributes"]["attributes"]:
        if not ident.match(a["name"]) or a["dtype"] not in DTYPES or not a.get("doc"):
            fail(f"root attribute '{a.get('name')}': name, dtype and doc are required")
    return schema


def c_string(text):
    return json.dumps(text, ensure_ascii=False)  # a JSON string literal is a valid C one here


def header(schema):
    out = ["/* Generated from src/io/runlog.schema.json by src/io/gen_runlog_schema.py: edit the",
           " * schema, not this file. Index enums of the schema's groups and series. */",
           "#ifndef NS_RUNLOG_SCHEMA_GEN_H", "#define NS_RUNLOG_SCHEMA_GEN_H", "",
           f"#define NS_RUNLOG_FORMAT {c_string(schema['format'])}", ""]
    groups = [f"NS_G_{g['id'].upper()}" for g in schema["groups"]]
    out.append("enum { " + ", ".join(groups) + ", NS_G_N };")
    for g in schema["groups"]:
        prefix = f"NS_{g['id'].upper()}_"
        names = [prefix + s["name"].upper() for s in g["series"]]
        out.append("enum { " + ", ".join(names) + f", {prefix}N }};")
    out += ["", "#endif", ""]
    return "\n".join(out)


def source(schema):
    out = ["/* Generated from src/io/runlog.schema.json by src/io/gen_runlog_schema.py: edit the",
           " * schema, not this file. */", '#include "runlog_schema.h"', ""]
    for g in schema["groups"]:
        out.append(f"static const NsSchemaSeries SERIES_{g['id'].upper()}[] = {{")
        for s in g["series"]:
            out.append(f"    {{{c_string(s['name'])}, {DTYPES[s['dtype']]}, "
                       f"{WIDTHS[s.get('width')]}, {int(bool(s.get('optional')))}, "
                       f"{c_string(s['units'])}, {c_string(s['doc'])}}},")
        out.append("};")
    out.append("const NsSchemaGroup NS_SCHEMA_GROUPS[] = {")
    for g in schema["groups"]:
        out.append(f"    {{{c_string(g['id'])}, {c_string(g['path'])}, {c_string(g['probe'])}, "
                   f"{WHEN[g.get('when')]}, SERIES_{g['id'].upper()}, {len(g['series'])}}},")
    out.append("};")
    out.append(f"const int NS_SCHEMA_N_GROUPS = {len(schema['groups'])};")
    out.append("const NsSchemaAttr NS_SCHEMA_ROOT_ATTRS[] = {")
    for a in schema["root_attributes"]["attributes"]:
        out.append(f"    {{{c_string(a['name'])}, {DTYPES[a['dtype']]}, "
                   f"{int(bool(a.get('required')))}}},")
    out.append("};")
    out.append(f"const int NS_SCHEMA_N_ROOT_ATTRS = "
               f"{len(schema['root_attributes']['attributes'])};")
    out.append("")
    return "\n".join(out)


def cell(text):
    return text.replace("|", "\\|")


def shape(s):
    return f"[n][{'w' if s.get('width') == 'channels' else s['width']}]" if s.get("width") else "[n]"


def markdown(schema):
    out = [f"# {schema['title']}", "",
           "<!-- Generated from src/io/runlog.schema.json by src/io/gen_runlog_schema.py: edit "
           "the schema, not this page. -->", ""]
    for p in schema["intro"]:
        out += [p, ""]
    out += [f"Format version: `{schema['format']}` (root attribute `format`).", "",
            "## Root attributes", ""]
    for p in schema["root_attributes"]["notes"]:
        out += [p, ""]
    out += ["| attribute | dtype | required | meaning |", "|---|---|---|---|"]
    for a in schema["root_attributes"]["attributes"]:
        out.append(f"| `{a['name']}` | {a['dtype']} | {'yes' if a.get('required') else ''} "
                   f"| {cell(a['doc'])} |")
    out.append("")
    widths = ("Vector widths: `w` the site's channel count (d), `grid` 5 (r = 0 and the four "
              "grid steps), `hessian_top` the root attribute, `density` density_runs x "
              "(density_steps or hessian_iters).")
    for g in schema["groups"]:
        when = f"; when: {g['when']}" if g.get("when") else ""
        out += [f"## `/{g['path']}` ({g['id']})", "",
                f"Probe `{g['probe']}`{when}: {g['doc']}.", ""]
        for p in g.get("notes", []):
            out += [p, ""]
        if any(s.get("width") for s in g["series"]):
            out += [widths, ""]
        out += ["| series | dtype | shape | units | definition |", "|---|---|---|---|---|"]
        for s in g["series"]:
            opt = " (optional)" if s.get("optional") else ""
            out.append(f"| `{s['name']}`{opt} | {s['dtype']} | {shape(s)} | {cell(s['units'])} "
                       f"| {cell(s['doc'])} |")
        out.append("")
    return "\n".join(out)


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("header", "source", "markdown"):
        sys.exit("usage: gen_runlog_schema.py header|source|markdown SCHEMA.json")
    schema = load(sys.argv[2])
    text = {"header": header, "source": source, "markdown": markdown}[sys.argv[1]](schema)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
