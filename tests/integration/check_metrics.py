#!/usr/bin/env python3
"""Every metric that the Prometheus rules and the Grafana dashboard query
is one the daemon exports.

    check_metrics.py METRICS.txt RULES.yml DASHBOARD.json

METRICS.txt is a scrape of a running daemon's /metrics (status.sh takes
it); the names are read from the PromQL of every `expr:` of the rules and
every "expr" of the dashboard (which must be valid JSON).  Prints each
unknown name with where it is used; exit 1 if there is one.  Only the
standard library: no YAML module is needed for `expr:` values.
"""
import json
import re
import sys

# Series Prometheus makes itself, not the daemon.
BUILTIN = {"up"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right",
            "and", "or", "unless", "bool", "offset", "inf", "nan"}


def exported(path):
    names = set()
    for line in open(path, encoding="utf-8"):
        if line.startswith("#") or not line.strip():
            continue
        names.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
    return names


def metric_names(expr):
    """The metric names an expression selects: identifiers that are not
    functions, keywords, label names or parts of strings and durations."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)          # strings
    e = re.sub(r"\{[^}]*\}", " ", e)                     # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)                    # ranges
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)",
               " ", e)                                   # grouping labels
    out = set()
    for m in re.finditer(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", e):
        name, call = m.group(1), m.group(2)
        if call or name.lower() in KEYWORDS:
            continue
        out.add(name)
    return out


def rules_exprs(path):
    """`expr:` values of a rules file, block scalars (`expr: |`) included."""
    exprs, cur, indent = [], None, 0
    for line in open(path, encoding="utf-8"):
        if cur is not None:
            ind = len(line) - len(line.lstrip())
            if line.strip() and ind > indent:
                cur.append(line.strip())
                continue
            exprs.append(" ".join(cur))
            cur = None
        m = re.match(r"(\s*)-?\s*expr:\s*(.*)$", line)
        if m:
            indent = len(m.group(1))
            v = m.group(2).strip()
            if v in ("|", ">", "|-", ">-"):
                cur = []
            else:
                exprs.append(v.strip("'\""))
    if cur is not None:
        exprs.append(" ".join(cur))
    return exprs


def dashboard_exprs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "expr" and isinstance(v, str):
                yield v
            else:
                yield from dashboard_exprs(v)
    elif isinstance(node, list):
        for v in node:
            yield from dashboard_exprs(v)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    have = exported(sys.argv[1]) | BUILTIN
    try:
        dash = json.load(open(sys.argv[3], encoding="utf-8"))
    except ValueError as e:
        sys.exit(f"{sys.argv[3]}: not valid JSON: {e}")
    uses = [(sys.argv[2], e) for e in rules_exprs(sys.argv[2])]
    uses += [(sys.argv[3], e) for e in dashboard_exprs(dash)]
    if len(uses) < 10:
        sys.exit(f"only {len(uses)} expressions found: the parser is broken")
    bad = 0
    seen = set()
    for where, e in uses:
        for name in sorted(metric_names(e)):
            seen.add(name)
            if name not in have:
                print(f"{where}: {name} is not in /metrics: {e}")
                bad += 1
    print(f"# {len(uses)} expressions, {len(seen)} metrics, {bad} unknown")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
