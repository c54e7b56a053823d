#!/usr/bin/env python3
"""Runs the DuckDB SQL of docs/history.md over a history dataset with
Python's duckdb (and pyarrow for the result), an engine that is not
covfleet's own; prints the rows of one question as JSON.

    history_duckdb.py DOCS DATASET (never-ran|trend|blocks)

The `views` block runs first, then the question's own views when the docs
have a `QUESTION-views` block (the block views need a layout 2 run).
"""
import json
import re
import sys

import duckdb
import pyarrow  # noqa: F401  (the result goes through Arrow)


def blocks(doc):
    """The ```sql blocks that start with `-- duckdb: NAME`, by name."""
    out = {}
    for body in re.findall(r"```sql\n(.*?)```", doc, flags=re.S):
        m = re.match(r"-- duckdb: ([\w-]+)\n", body)
        if m:
            out[m.group(1)] = body[m.end():]
    return out


def main():
    docs, dataset, question = sys.argv[1:4]
    sql = blocks(open(docs, encoding="utf-8").read())
    con = duckdb.connect()
    for name in ("views", question + "-views"):
        views = sql.get(name, "").replace("DATASET", dataset)
        code = "\n".join(l for l in views.splitlines() if not l.strip().startswith("--"))
        for stmt in code.split(";"):
            if stmt.strip():
                con.execute(stmt)
    table = con.execute(sql[question]).to_arrow_table()
    print(json.dumps(table.to_pylist(), default=str))


if __name__ == "__main__":
    main()
