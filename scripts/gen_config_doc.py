#!/usr/bin/env python3
"""Writes docs/configuration.md from the params registry (src/util/params.def).

  gen_config_doc.py          rewrite the file
  gen_config_doc.py --check  exit 1 if the file is out of date (a ctest test runs this)
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEF = ROOT / "src/util/params.def"
DOC = ROOT / "docs/configuration.md"
PARAM = re.compile(r'XSITE_PARAM\(\w+, "(\w+)", (\w+), "([^"]*)", "(.*)"\)\s*$')
CHOICE = re.compile(r'XSITE_CHOICE\(\w+, "(\w+)", "([^"]*)", "([^"]*)", "(.*)"\)\s*$')
RANGE = re.compile(r'XSITE_RANGE\(\w+, "(\w+)", "([^"]*)", (-?\d+), (-?\d+), "(.*)"\)\s*$')
EXTERNAL = re.compile(r'XSITE_EXTERNAL\(\w+, "(\w+)", "(.*)"\)\s*$')

HEADER = """# Configuration

Every environment variable xsite reads, generated from the one registry
(`src/util/params.def`) by `scripts/gen_config_doc.py`; a test fails when this page and the
registry disagree. `build/bin/xsite-info -c` prints the effective value of each in the current
environment (`-a` adds the launcher variables that are set). A bad value stops the
communicator's creation with an error that names the variable and the value.

`UCX_*`, `NCCL_*` and `GLOO_*` variables are not ours and pass through untouched.

Sizes take K, M and G suffixes (powers of 1024). An empty default means unset.

Where a rank's place comes from, first match wins: `XSITE_TOPO_FILE` (every rank's site and
domain), then the `XSITE_*` variables, then torchrun's (`RANK`, `LOCAL_RANK`, `GROUP_RANK`...),
Open MPI's (`OMPI_COMM_WORLD_*`), Slurm's (`SLURM_*`), and the host name as the domain. Two set
sources that disagree (say `XSITE_RANK=3` and `RANK=5`) are an error naming both.
"""


def render():
    out = [HEADER]
    section = None
    rows = []

    def flush():
        if section and rows:
            out.append(f"\n## {section}\n\n| variable | type | default | meaning |\n| --- | --- | --- | --- |")
            out.extend(rows)
        rows.clear()

    lines = DEF.read_text().splitlines()
    body = lines[lines.index(""):]  # past the file's header comment
    for line in body:
        line = line.strip()
        m, e = PARAM.match(line), EXTERNAL.match(line)
        c, r = CHOICE.match(line), RANGE.match(line)
        if m:
            name, kind, default, doc = m.groups()
            rows.append(f"| `{name}` | {kind.lower()} | {('`' + default + '`') if default else ''} | {doc} |")
        elif c:
            name, default, words, doc = c.groups()
            kind = " \\| ".join(words.split("|"))
            rows.append(f"| `{name}` | {kind} | `{default}` | {doc} |")
        elif r:
            name, default, lo, hi, doc = r.groups()
            rows.append(f"| `{name}` | int {lo}..{hi} | `{default}` | {doc} |")
        elif e:
            name, doc = e.groups()
            rows.append(f"| `{name}` | launcher | | {doc} |")
        elif line.startswith("// "):
            flush()
            section = line[3:]
    flush()
    return "\n".join(out) + "\n"


def main():
    text = render()
    if "--check" in sys.argv:
        if not DOC.exists() or DOC.read_text() != text:
            print("docs/configuration.md is out of date: run scripts/gen_config_doc.py")
            return 1
        print("docs/configuration.md is up to date")
        return 0
    DOC.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
