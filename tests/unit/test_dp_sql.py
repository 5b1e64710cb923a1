"""DP-SQL: each supported form parses to exactly the plan a builder would make; everything else,
injection attempts first, is refused at parse time with a sentence saying what is unsupported."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enclave.domain.errors import InvalidInput
from enclave.domain.queries.plans import QueryPlan
from enclave.dp.sql import MAX_SQL_CHARS, parse_sql, plan_to_sql

EPS = Decimal("0.5")


def plan(
    aggregates: list[dict[str, Any]],
    *,
    dataset: str = "admissions",
    group_by: list[str] | None = None,
    filters: list[dict[str, Any]] | None = None,
) -> QueryPlan:
    return QueryPlan.model_validate(
        {
            "dataset": dataset,
            "aggregates": aggregates,
            "group_by": group_by or [],
            "filters": filters or [],
            "epsilon": EPS,
        }
    )


COUNT = {"kind": "count_rows"}


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        pytest.param("SELECT COUNT(*) FROM admissions", plan([COUNT]), id="count"),
        pytest.param(
            "SELECT region, COUNT(*) FROM admissions GROUP BY region",
            plan([COUNT], group_by=["region"]),
            id="count-by-key",
        ),
        pytest.param(
            "SELECT COUNT(*) FROM admissions GROUP BY region, sex",
            plan([COUNT], group_by=["region", "sex"]),
            id="keys-need-not-be-selected",
        ),
        pytest.param(
            "select Region, count(*), Sum(COST_GBP), avg(cost_gbp), median(length_of_stay_days)"
            " from ADMISSIONS group by REGION",
            plan(
                [
                    COUNT,
                    {"kind": "sum", "column": "cost_gbp"},
                    {"kind": "mean", "column": "cost_gbp"},
                    {"kind": "median", "column": "length_of_stay_days"},
                ],
                group_by=["region"],
            ),
            id="unquoted-names-are-case-insensitive",
        ),
        pytest.param(
            "SELECT PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY cost_gbp) FROM admissions",
            plan([{"kind": "median", "column": "cost_gbp"}]),
            id="percentile-cont-median",
        ),
        pytest.param(
            "SELECT PERCENTILE_DISC(0.5) WITHIN GROUP (ORDER BY cost_gbp DESC) FROM admissions",
            plan([{"kind": "median", "column": "cost_gbp"}]),
            id="percentile-disc-median",
        ),
        pytest.param(
            "SELECT PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY cost_gbp) FROM admissions",
            plan([{"kind": "quantile", "column": "cost_gbp", "q": "0.9"}]),
            id="percentile-cont-quantile",
        ),
        pytest.param(
            "SELECT PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY cost_gbp DESC) FROM admissions",
            plan([{"kind": "quantile", "column": "cost_gbp", "q": "0.1"}]),
            id="percentile-desc-quantile",
        ),
        pytest.param(
            "SELECT region, COUNT(DISTINCT person_id) AS persons FROM admissions a GROUP BY region",
            plan([{"kind": "count_persons"}], group_by=["region"]),
            id="count-of-persons",
        ),
        pytest.param(
            "SELECT COUNT(*) AS count, SUM(cost_gbp) AS sum_cost_gbp, region AS region FROM admissions"
            " GROUP BY region",
            plan([COUNT, {"kind": "sum", "column": "cost_gbp"}], group_by=["region"]),
            id="aliases-that-repeat-the-released-name",
        ),
        pytest.param(
            "SELECT COUNT(*) FROM admissions a WHERE a.sex = 'F' AND admissions.cost_gbp > 10",
            plan(
                [COUNT],
                filters=[
                    {"column": "sex", "op": "==", "value": "F"},
                    {"column": "cost_gbp", "op": ">", "value": 10},
                ],
            ),
            id="qualified-columns",
        ),
        pytest.param(
            'SELECT COUNT(*) FROM "admissions" WHERE "sex" = \'F\'',
            plan([COUNT], filters=[{"column": "sex", "op": "==", "value": "F"}]),
            id="quoted-names",
        ),
        pytest.param(
            "SELECT COUNT(*) FROM admissions WHERE a = 1 AND b <> 'x' AND c != 'y' AND d < 2.5"
            " AND e <= -3 AND f > 1e3 AND g >= DATE '2020-01-31'",
            plan(
                [COUNT],
                filters=[
                    {"column": "a", "op": "==", "value": 1},
                    {"column": "b", "op": "!=", "value": "x"},
                    {"column": "c", "op": "!=", "value": "y"},
                    {"column": "d", "op": "<", "value": 2.5},
                    {"column": "e", "op": "<=", "value": -3},
                    {"column": "f", "op": ">", "value": 1000.0},
                    {"column": "g", "op": ">=", "value": "2020-01-31"},
                ],
            ),
            id="every-comparison-and-literal",
        ),
        pytest.param(
            "SELECT COUNT(*) FROM admissions WHERE 10 < cost_gbp AND 'F' = sex AND 5 >= a",
            plan(
                [COUNT],
                filters=[
                    {"column": "cost_gbp", "op": ">", "value": 10},
                    {"column": "sex", "op": "==", "value": "F"},
                    {"column": "a", "op": "<=", "value": 5},
                ],
            ),
            id="literal-on-the-left-flips-the-operator",
        ),
        pytest.param(
            "SELECT COUNT(*) FROM admissions WHERE region IN ('E1', 'E2') AND n IN (1, 2, 3)",
            plan(
                [COUNT],
                filters=[
                    {"column": "region", "op": "in", "value": ["E1", "E2"]},
                    {"column": "n", "op": "in", "value": [1, 2, 3]},
                ],
            ),
            id="in-lists",
        ),
        pytest.param(
            "SELECT COUNT(*) FROM admissions WHERE region NOT IN ('E1', 'E2')",
            plan(
                [COUNT],
                filters=[
                    {"column": "region", "op": "!=", "value": "E1"},
                    {"column": "region", "op": "!=", "value": "E2"},
                ],
            ),
            id="not-in-is-one-inequality-per-value",
        ),
        pytest.param(
            "SELECT COUNT(*) FROM admissions WHERE cost_gbp BETWEEN 10 AND 20",
            plan(
                [COUNT],
                filters=[
                    {"column": "cost_gbp", "op": ">=", "value": 10},
                    {"column": "cost_gbp", "op": "<=", "value": 20},
                ],
            ),
            id="between-is-inclusive",
        ),
        pytest.param(
            "SELECT COUNT(*) FROM admissions WHERE (a = 1 AND (b = 2)) AND ((c = 'it''s'))",
            plan(
                [COUNT],
                filters=[
                    {"column": "a", "op": "==", "value": 1},
                    {"column": "b", "op": "==", "value": 2},
                    {"column": "c", "op": "==", "value": "it's"},
                ],
            ),
            id="parentheses-and-escaped-quotes",
        ),
        pytest.param(
            "SELECT ALL COUNT(*)\n  FROM admissions\n WHERE x = '--not a comment' AND y = '/* nor this */'",
            plan(
                [COUNT],
                filters=[
                    {"column": "x", "op": "==", "value": "--not a comment"},
                    {"column": "y", "op": "==", "value": "/* nor this */"},
                ],
            ),
            id="comment-markers-inside-strings-are-text",
        ),
    ],
)
def test_supported_forms_parse_to_the_exact_plan(sql: str, expected: QueryPlan) -> None:
    """The plan is what the client builder would send, so both go through the same checks and
    have the same fingerprint (an identical SQL and builder query share one release)."""
    assert parse_sql(sql, EPS) == expected
    assert parse_sql(sql, EPS).fingerprint(1) == expected.fingerprint(1)


INJECTIONS = [
    ("SELECT COUNT(*) FROM admissions; DROP TABLE admissions", "';' is not allowed"),
    ("SELECT COUNT(*) FROM admissions;", "';' is not allowed"),
    ("SELECT COUNT(*) FROM a; SELECT COUNT(*) FROM b", "';' is not allowed"),
    ("ATTACH DATABASE '/data/other.db' AS other", "only a single SELECT statement is accepted, not ATTACH"),
    ("PRAGMA table_info(admissions)", "only a single SELECT statement is accepted, not PRAGMA"),
    ("DROP TABLE admissions", "only a single SELECT statement is accepted, not DROP"),
    ("INSERT INTO admissions VALUES (1)", "only a single SELECT statement is accepted, not INSERT"),
    ("COPY admissions TO '/tmp/x.csv'", "only a single SELECT statement is accepted, not COPY"),
    ("(SELECT COUNT(*) FROM admissions)", "only a single SELECT statement is accepted, not '('"),
    (
        "SELECT COUNT(*) FROM admissions UNION SELECT COUNT(*) FROM deaths",
        "UNION is not supported: a query is one SELECT from one dataset",
    ),
    ("SELECT COUNT(*) FROM admissions UNION ALL SELECT COUNT(*) FROM deaths", "UNION is not supported"),
    ("SELECT COUNT(*) FROM admissions INTERSECT SELECT COUNT(*) FROM deaths", "INTERSECT is not supported"),
    ("SELECT COUNT(*) FROM admissions EXCEPT SELECT COUNT(*) FROM deaths", "EXCEPT is not supported"),
    ("SELECT COUNT(*) FROM admissions -- WHERE sex = 'F'", "comments (-- or /* */) are not allowed"),
    ("SELECT COUNT(*) FROM admissions /* x */ WHERE a = 1", "comments (-- or /* */) are not allowed"),
    ("/* x */ SELECT COUNT(*) FROM admissions", "comments (-- or /* */) are not allowed"),
    ("SELECT /*+ INDEX(a) */ COUNT(*) FROM admissions", "comments (-- or /* */) are not allowed"),
    ("-- nothing but a comment", "the SQL query is empty"),
    ("", "the SQL query is empty"),
    ("SELECT COUNT(*) FROM admissions WHERE sex = 'F' OR '1' = '1'", "OR is not supported"),
    ("SELECT COUNT(*) FROM read_parquet('/data/x.parquet')", "FROM takes the name of one dataset"),
    ("SELECT COUNT(*) FROM main.admissions", "FROM takes a dataset name without a schema or database"),
    (
        "WITH x AS (SELECT * FROM deaths) SELECT COUNT(*) FROM x",
        "WITH (common table expressions) is not supported",
    ),
    ("SELECT COUNT(*) FROM admissions WHERE x = 'unterminated", "could not be read"),
    ("SELECT COUNT(*) FROM admissions\x00", "is not a valid name"),
]


@pytest.mark.parametrize(("sql", "sentence"), INJECTIONS)
def test_injection_attempts_are_refused_at_parse_time(sql: str, sentence: str) -> None:
    """A second statement, another command, a set operation or a comment never gets past parsing:
    the tokens are checked before the tree is built, and the result is a plan, never SQL."""
    with pytest.raises(InvalidInput, match=re.escape(sentence)):
        parse_sql(sql, EPS)


REFUSALS = [
    ("SELECT COUNT(*) FROM admissions JOIN deaths ON a = b", "joins are not supported"),
    ("SELECT COUNT(*) FROM admissions, deaths", "joins are not supported"),
    ("SELECT COUNT(*) FROM admissions WHERE x IN (SELECT y FROM deaths)", "subqueries are not supported"),
    ("SELECT COUNT(*) FROM (SELECT * FROM admissions)", "subqueries are not supported"),
    ("SELECT COUNT(*) FROM admissions WHERE EXISTS (SELECT 1)", "subqueries are not supported"),
    ("SELECT COUNT(*) FROM admissions WHERE NOT a = 1", "NOT is not supported (except NOT IN)"),
    ("SELECT COUNT(*) FROM admissions WHERE a LIKE 'x' OR a = 1", "OR is not supported"),
    (
        "SELECT COUNT(*) FROM admissions WHERE a <=> 1",
        "is not supported: WHERE takes comparisons of a column with a value",
    ),
    ("SELECT COUNT(*) FROM admissions WHERE a IS NULL", "IS NULL and IS NOT NULL are not supported"),
    ("SELECT COUNT(*) FROM admissions WHERE a IS NOT NULL", "NOT is not supported (except NOT IN)"),
    ("SELECT COUNT(*) FROM admissions WHERE a = NULL", "comparisons with NULL are never true"),
    ("SELECT COUNT(*) FROM admissions WHERE a LIKE 'E1%'", "LIKE is not supported"),
    ("SELECT COUNT(*) FROM admissions WHERE a = TRUE", "TRUE is not supported as a value"),
    ("SELECT COUNT(*) FROM admissions WHERE a = b", "a = b compares two columns, which is not supported"),
    ('SELECT COUNT(*) FROM admissions WHERE sex = "F"', "text values take single quotes"),
    ("SELECT COUNT(*) FROM admissions WHERE 1 = 1", "1 = 1 does not involve a column"),
    ("SELECT COUNT(*) FROM admissions WHERE a = 1 + 1", "1 + 1 is not a literal value"),
    ("SELECT COUNT(*) FROM admissions WHERE a = ?", "? is not a literal value"),
    ("SELECT COUNT(*) FROM admissions WHERE a IN (1.5, 2)", "IN lists take text or whole numbers"),
    ("SELECT COUNT(*) FROM admissions WHERE d > DATE '2020-02-30'", "DATE '2020-02-30' is not a valid date"),
    ("SELECT COUNT(*) FROM admissions WHERE a = 9223372036854775808", "is too large (integers are 64-bit)"),
    ("SELECT COUNT(*) FROM admissions WHERE UPPER(a) = 'X'", "functions are not supported in WHERE"),
    ("SELECT COUNT(*) FROM admissions HAVING COUNT(*) > 10", "HAVING is not supported"),
    ("SELECT COUNT(*) FROM admissions ORDER BY 1", "ORDER BY is not supported"),
    ("SELECT COUNT(*) FROM admissions LIMIT 5", "LIMIT is not supported"),
    ("SELECT COUNT(*) FROM admissions OFFSET 5", "OFFSET is not supported"),
    ("SELECT DISTINCT region FROM admissions", "SELECT DISTINCT is not supported"),
    (
        "SELECT COUNT(DISTINCT region) FROM admissions",
        "DISTINCT is not supported except in COUNT(DISTINCT person_id)",
    ),
    ("SELECT SUM(DISTINCT cost_gbp) FROM admissions", "DISTINCT is not supported"),
    ("SELECT SUM(cost_gbp) OVER (PARTITION BY region) FROM admissions", "window functions"),
    ("SELECT * FROM admissions", "SELECT * is not supported: rows are never released"),
    ("SELECT region FROM admissions", "column 'region' is selected but not in GROUP BY"),
    ("SELECT sex, COUNT(*) FROM admissions GROUP BY region", "column 'sex' is selected but not in GROUP BY"),
    ("SELECT COUNT(*) AS n FROM admissions", "the alias 'n' is not supported"),
    ("SELECT region AS r, COUNT(*) FROM admissions GROUP BY region", "the alias 'r' is not supported"),
    ("SELECT MAX(cost_gbp) FROM admissions", "a minimum or maximum is one person's value"),
    ("SELECT MIN(cost_gbp) FROM admissions", "a minimum or maximum is one person's value"),
    ("SELECT STDDEV(cost_gbp) FROM admissions", "the function STDDEV() is not supported"),
    ("SELECT my_udf(cost_gbp) FROM admissions", "the function MY_UDF() is not supported"),
    ("SELECT COUNT(cost_gbp) FROM admissions", "COUNT(*) counts rows"),
    ("SELECT SUM(cost_gbp * 2) FROM admissions", "SUM takes one column name"),
    ("SELECT SUM(cost_gbp) + 1 FROM admissions", "arithmetic and expressions are not supported"),
    ("SELECT 1 FROM admissions", "selecting a constant (1) is not supported"),
    ("SELECT region, sex FROM admissions GROUP BY region, sex", "the query selects no aggregate"),
    (
        "SELECT PERCENTILE_CONT(1.5) WITHIN GROUP (ORDER BY cost_gbp) FROM admissions",
        "a percentile's level is a number between 0 and 1",
    ),
    ("SELECT COUNT(*) FROM admissions GROUP BY 1", "GROUP BY 1 (by position) is not supported"),
    ("SELECT COUNT(*) FROM admissions GROUP BY UPPER(region)", "GROUP BY takes column names"),
    ("SELECT COUNT(*) FROM admissions WHERE deaths.a = 1", "names the table 'deaths'"),
    ("SELECT COUNT(*)", "the query has no FROM"),
    ("SELECT COUNT(*) FROM admissions GROUP BY a, b, c, d, e", "groups by at most 4 columns (5 given)"),
    (
        "SELECT " + ", ".join(f"SUM(c{i})" for i in range(9)) + " FROM admissions",
        "at most 8 aggregates (9 given)",
    ),
    (
        "SELECT COUNT(*) FROM admissions WHERE " + " AND ".join(f"c{i} = 1" for i in range(21)),
        "at most 20 conditions (21 given",
    ),
    ("SELECT COUNT(*), COUNT(*) FROM admissions", "each aggregate may appear once"),
    ("SELECT COUNT(*) FROM admissions GROUP BY region, region", "each group-by column may appear once"),
    ('SELECT COUNT(*) FROM "Admissions"', "dataset 'Admissions' is not a valid name"),
    ("SELECT COUNT(*) FROM admissions WHERE " + "(" * 2400 + "a = 1" + ")" * 2400, "nested too deeply"),
    ("SELECT COUNT(*) FROM admissions WHERE = 1", "could not be parsed"),
    (
        "SELECT COUNT(*) FROM admissions WHERE a IN (" + ", ".join(["1"] * 1001) + ")",
        "the query does not make a valid plan: an 'in' list has 1 to 1000 values",
    ),
    ("SELECT COUNT(*) FROM admissions WHERE a = " + "-" * 20 + "1", "comments (-- or /* */) are not allowed"),
]


@pytest.mark.parametrize(("sql", "sentence"), REFUSALS)
def test_unsupported_sql_is_refused_with_its_sentence(sql: str, sentence: str) -> None:
    """Each unsupported construct gets a sentence naming it (and the fix where there is one),
    never a sqlglot traceback."""
    with pytest.raises(InvalidInput, match=re.escape(sentence)):
        parse_sql(sql, EPS)


def test_overlong_sql_and_bad_epsilon_are_refused() -> None:
    """The text length is capped before any parsing; epsilon is checked like any plan's."""
    long_sql = "SELECT COUNT(*) FROM admissions WHERE a IN (" + ", ".join(["1"] * 4000) + ")"
    assert len(long_sql) > MAX_SQL_CHARS
    with pytest.raises(InvalidInput, match=f"the limit is {MAX_SQL_CHARS}"):
        parse_sql(long_sql, EPS)
    with pytest.raises(InvalidInput, match="epsilon"):
        parse_sql("SELECT COUNT(*) FROM admissions", Decimal(0))
    with pytest.raises(InvalidInput, match="epsilon"):
        parse_sql("SELECT COUNT(*) FROM admissions", Decimal(11))


def test_plan_to_sql_reads_like_sql() -> None:
    """Display text: keys first, then aggregates; reserved words quoted, quotes escaped."""
    p = plan(
        [COUNT, {"kind": "mean", "column": "cost_gbp"}, {"kind": "median", "column": "from"}],
        group_by=["region"],
        filters=[
            {"column": "sex", "op": "==", "value": "O'Brien"},
            {"column": "icd10_chapter", "op": "in", "value": ["I", "II"]},
            {"column": "cost_gbp", "op": "!=", "value": -1.5},
        ],
    )
    assert plan_to_sql(p) == (
        'SELECT region, COUNT(*), AVG(cost_gbp), MEDIAN("from") FROM admissions'
        " WHERE sex = 'O''Brien' AND icd10_chapter IN ('I', 'II') AND cost_gbp <> -1.5 GROUP BY region"
    )
    assert parse_sql(plan_to_sql(p), EPS) == p


_KEYWORDS = ["select", "from", "where", "group", "order", "date", "count", "sum", "in", "and", "not", "limit"]
names = st.one_of(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), st.sampled_from(_KEYWORDS))
scalars = st.one_of(
    st.text(max_size=12),
    st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
)
single_filters = st.builds(
    lambda c, o, v: {"column": c, "op": o, "value": v},
    names,
    st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
    scalars,
)
in_filters = st.builds(
    lambda c, v: {"column": c, "op": "in", "value": v},
    names,
    st.lists(st.one_of(st.text(max_size=8), st.integers(-(2**63) + 1, 2**63 - 1)), min_size=1, max_size=4),
)
aggregates = st.lists(
    st.one_of(
        st.just({"kind": "count_rows"}),
        st.just({"kind": "count_persons"}),
        st.builds(lambda k, c: {"kind": k, "column": c}, st.sampled_from(["sum", "mean", "median"]), names),
        st.builds(
            lambda q, c: {"kind": "quantile", "column": c, "q": str(q)},
            st.decimals(min_value="0.0001", max_value="0.9999", places=4).filter(
                lambda q: q != Decimal("0.5")
            ),
            names,
        ),
    ),
    min_size=1,
    max_size=8,
    unique_by=lambda a: (a["kind"], a.get("column")),
)


@settings(max_examples=300, deadline=None)
@given(
    dataset=names,
    aggs=aggregates,
    keys=st.lists(names, max_size=4, unique=True),
    filters=st.lists(st.one_of(single_filters, in_filters), max_size=6),
)
def test_plan_to_sql_round_trips(
    dataset: str, aggs: list[dict[str, Any]], keys: list[str], filters: list[dict[str, Any]]
) -> None:
    """Any plan prints as SQL that parses back to the same plan (names, keywords, quotes, negative
    and float values), so the SQL shown for a release is an exact account of what ran."""
    p = plan(aggs, dataset=dataset, group_by=keys, filters=filters)
    assert parse_sql(plan_to_sql(p), EPS) == p


_SQL_WORDS = [
    "SELECT", "COUNT(*)", "SUM(", "AVG(", "MEDIAN(", ")", "(", ",", "FROM", "admissions", "WHERE", "AND",
    "OR", "NOT", "IN", "BETWEEN", "GROUP", "BY", "region", "=", "<>", "<", ">=", "'F'", "1", "-2.5", ";",
    "--", "/*", "*/", "UNION", "JOIN", "AS", "DATE", "'2020-01-01'", "*", "ORDER", "LIMIT", "NULL", "IS",
    "WITHIN", "PERCENTILE_CONT(0.5)", "OVER", "\"", "'", "ATTACH", "PRAGMA", "WITH",
]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    words=st.lists(st.sampled_from(_SQL_WORDS), max_size=25),
    noise=st.text(max_size=40),
)
def test_any_text_gives_a_plan_or_a_sentence(words: list[str], noise: str) -> None:
    """Whatever the text (SQL-like token soup or arbitrary characters), the answer is a plan or an
    InvalidInput with a sentence: no sqlglot exception or traceback reaches the user."""
    for sql in (" ".join(words), noise, "SELECT " + noise):
        detail = "-"
        try:
            parse_sql(sql, EPS)
        except InvalidInput as exc:
            detail = exc.detail
        assert detail


@pytest.mark.parametrize("word", ["if", "case", "select", "count", "where"])
def test_a_column_named_like_a_keyword_or_function_round_trips(word: str) -> None:
    """Found by the round trip above: ``if`` is read as a function without parentheses unless quoted."""
    p = plan(
        [{"kind": "count_rows"}],
        dataset="admissions",
        group_by=[word],
        filters=[{"column": word, "op": "==", "value": ""}],
    )
    assert parse_sql(plan_to_sql(p), EPS) == p
