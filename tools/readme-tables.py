#!/usr/bin/env python3
"""Regenerates the finding-code and assumption tables of README.md from sim/src/finding.rs.

Run from the repository root: tools/readme-tables.py. The tables sit between
<!-- finding-codes:begin/end --> and <!-- assumptions:begin/end --> markers; the test
`readme_lists_every_code_and_the_two_commands` fails when a code is missing.
"""
import re

src = open("sim/src/finding.rs").read()
body = src[src.index("finding_codes! {"):src.index("impl fmt::Display for FindingCode")]
rows, doc = [], ""
for line in body.splitlines():
    l = line.strip()
    if l.startswith("///"):
        doc = l[3:].strip()
    m = re.match(r'(\w+) => "(\w+)", (Error|Warning), (\w+);', l)
    if m:
        rows.append((m.group(2), m.group(3).lower(), doc))
codes = "| code | severity | meaning |\n|---|---|---|\n" + "\n".join(f"| `{c}` | {s} | {d} |" for c, s, d in rows)
a = src[src.index("assumptions! {"):]
arows = re.findall(r'=> "(ASSUMPTION_\w+)",\s*"((?:[^"\\]|\\.)*)";', a, re.S)
assumptions = "| code | what we assume |\n|---|---|\n" + "\n".join(
    f"| `{c}` | {' '.join(m.replace(chr(92) + chr(34), chr(34)).split())} |" for c, m in arows)

readme = open("README.md").read()
for name, table in (("finding-codes", codes), ("assumptions", assumptions)):
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    i, j = readme.index(begin) + len(begin), readme.index(end)
    readme = readme[:i] + "\n" + table + "\n" + readme[j:]
open("README.md", "w").write(readme)
print(f"{len(rows)} finding codes, {len(arows)} assumptions")
