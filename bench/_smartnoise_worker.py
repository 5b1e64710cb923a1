"""SmartNoise SQL side of ``bench/dp_query.py``: runs in its own venv (``bench/.venv-smartnoise``).

SmartNoise SQL needs opendp < 0.15 and pandas < 3, so it cannot share the project's venv; this script imports
only snsql, pandas and pyarrow (never ``enclave``). It reads one job as JSON from argv[1]:

    {"path": "<parquet>", "bound": 10, "lower": 0, "upper": 20000, "repeat": 2,
     "queries": [{"sql": "SELECT ... FROM bench.admissions ...", "epsilon": 1.0}]}

and prints one line of JSON: the versions, the setup times (Parquet into pandas; ``snsql.from_df``, which
copies the frame into an in-memory SQLite database) and, per query, the privacy cost that snsql accounts and
the time of each run.

The metadata mirrors the bench's engine: person unit (``person_id`` is the private id, ``max_ids`` = the
bench's bound, each person's rows reservoir-sampled per query), cost clamped to the same bounds, and no
dimension censoring (the groups are public domains in our engine, so there is no tau threshold to pay delta
for; delta is passed as 0). snsql spends its epsilon per statistic (AVG is a noisy SUM over a noisy COUNT), so
each query's per-statistic epsilon is the target divided by the number of noisy statistics, which makes the
accounted total equal to the target.
"""

from __future__ import annotations

import json
import sys
import time
from importlib.metadata import version

import pandas as pd
import snsql
from snsql import Privacy

TABLE = "bench.admissions"


def metadata(bound: int, lower: int, upper: int) -> dict[str, object]:
    return {
        "bench": {
            "bench": {
                "admissions": {
                    "row_privacy": False,
                    "max_ids": bound,
                    "sample_max_ids": True,
                    "censor_dims": False,
                    "clamp_columns": True,
                    "person_id": {"type": "string", "private_id": True},
                    "region": {"type": "string"},
                    "sex": {"type": "string"},
                    "cost_gbp": {"type": "int", "lower": lower, "upper": upper},
                }
            }
        }
    }


def main() -> None:
    job = json.loads(sys.argv[1])
    t0 = time.perf_counter()
    frame = pd.read_parquet(job["path"], columns=["person_id", "region", "sex", "cost_gbp"])
    read_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    reader = snsql.from_df(
        frame,
        privacy=Privacy(epsilon=1.0, delta=0.0),
        metadata=metadata(job["bound"], job["lower"], job["upper"]),
    )
    reader_s = time.perf_counter() - t0
    results = []
    for query in job["queries"]:
        sql, epsilon = query["sql"], float(query["epsilon"])
        reader.privacy = Privacy(epsilon=1.0, delta=0.0)
        statistics = float(reader.get_privacy_cost(sql)[0])
        reader.privacy = Privacy(epsilon=epsilon / statistics, delta=0.0)
        cost_epsilon, cost_delta = (float(x) for x in reader.get_privacy_cost(sql))
        seconds = []
        for _ in range(job["repeat"]):
            t0 = time.perf_counter()
            out = reader.execute_df(sql)
            seconds.append(time.perf_counter() - t0)
        results.append(
            {
                "sql": sql,
                "epsilon_per_statistic": epsilon / statistics,
                "cost_epsilon": cost_epsilon,
                "cost_delta": cost_delta,
                "groups": len(out),
                "seconds": seconds,
            }
        )
    versions = {
        name: version(name) for name in ("smartnoise-sql", "opendp", "pandas", "pyarrow", "sqlalchemy")
    }
    print(
        json.dumps(
            {
                "rows": len(frame),
                "versions": versions,
                "python": sys.version.split()[0],
                "read_s": read_s,
                "reader_s": reader_s,
                "queries": results,
            }
        )
    )


if __name__ == "__main__":
    main()
