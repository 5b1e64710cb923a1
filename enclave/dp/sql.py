"""DP-SQL: a small SQL subset, parsed with sqlglot into the same ``QueryPlan`` the client builds.

Researchers who think in SQL write ``SELECT region, COUNT(*) FROM admissions WHERE ... GROUP BY region``;
this module turns it into a :class:`~enclave.domain.queries.plans.QueryPlan`, which then goes through exactly
the checks, pricing and release path of any other plan. SQL is only a front end: nothing here executes
SQL, so the parser's job is to accept a shape that maps one-to-one onto a plan and to refuse everything
else with a sentence that says what is unsupported and, where there is one, what to write instead.

Accepted
--------
* ``SELECT`` of aggregates and group-by columns, in any order:

  - ``COUNT(*)`` -> ``count_rows``; ``COUNT(DISTINCT person_id)`` -> ``count_persons``
  - ``SUM(column)`` -> ``sum``; ``AVG(column)`` -> ``mean``
  - ``MEDIAN(column)``, or ``PERCENTILE_CONT(0.5)`` / ``PERCENTILE_DISC(0.5)``
    ``WITHIN GROUP (ORDER BY column)`` -> ``median``
  - a bare column only if it is in ``GROUP BY``. Group-by columns need not be selected: the release
    always carries every group-by column (and every combination of their public domains).
  - ``AS`` aliases only when they repeat the name the release gives the value anyway (``count``,
    ``sum_<column>``, ``mean_<column>``, ``median_<column>``, or the column's own name), because the
    released DataFrame is named by the plan, not by the SQL; any other alias would be silently ignored.

* ``FROM`` one dataset, by name (an optional alias may qualify columns: ``FROM admissions a ... a.region``).
* ``WHERE`` comparisons of a column with a literal joined by ``AND`` (parentheses allowed):
  ``=``, ``<>``/``!=``, ``<``, ``<=``, ``>``, ``>=`` (either side may be the column),
  ``IN (v, ...)``, ``NOT IN (v, ...)`` (as one ``!=`` per value, which is the same condition),
  ``BETWEEN a AND b`` (as ``>= a`` and ``<= b``).
  Literals: ``'text'``, integers, decimals, negative numbers, ``DATE 'YYYY-MM-DD'`` (sent as the ISO
  string, which the engine compares with date columns).
* ``GROUP BY`` column names.
* Unquoted identifiers are case-insensitive (lower-cased, as SQL specifies for unquoted names);
  ``"quoted"`` identifiers are taken as written.

Refused (each with its own sentence)
------------------------------------
Anything but one ``SELECT`` statement (``ATTACH``, ``PRAGMA``, ``INSERT``, ``WITH`` ...), more than one
statement or any ``;``, comments (``--``, ``/* */``, optimizer hints), ``UNION``/``INTERSECT``/``EXCEPT``,
joins and several tables, subqueries, ``OR`` and ``NOT`` (other than ``NOT IN``), ``IS [NOT] NULL``,
``LIKE``, functions other than the aggregates above (``MIN``/``MAX`` with a reason of their own),
arithmetic, ``DISTINCT`` (also inside aggregates), ``COUNT(column)``, window functions, ``SELECT *``,
selecting a column that is not grouped, ``HAVING``, ``ORDER BY``, ``LIMIT``/``OFFSET``, ``GROUP BY``
by position or expression, ``ROLLUP``/``CUBE``/``GROUPING SETS``, and any other clause.

``ORDER BY`` and ``LIMIT`` are refused rather than ignored: a release holds every public key
combination, computed and priced together, so ``LIMIT 10`` would suggest a smaller (cheaper) query than
the one that runs, and ordering noisy values is post-processing the researcher does on the returned
DataFrame. ``HAVING`` is refused for the same reason (filter the released DataFrame instead).

Injection
---------
The query is tokenised before it is parsed, and refused at the token level if it has a ``;``, a comment
or a hint, or does not start with ``SELECT``: there is no way to smuggle a second statement, and since
the result is a plan and never SQL, there is no string that reaches a database. The text is limited to
``MAX_SQL_CHARS`` characters, and parser failures of any kind (including pathological nesting) become an
``InvalidInput`` sentence, never a traceback.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any, Literal

import sqlglot
import sqlglot.expressions as exp
from pydantic import ValidationError
from sqlglot import Token, Tokenizer, TokenType
from sqlglot.errors import ParseError, SqlglotError
from sqlglot.parser import Parser

from enclave.domain.catalog.datasets import PERSON_COLUMN
from enclave.domain.errors import InvalidInput
from enclave.domain.queries.plans import (
    MAX_AGGREGATES,
    MAX_GROUP_BY,
    AggregateSpec,
    FilterSpec,
    QueryPlan,
)

MAX_SQL_CHARS = 10_000
MAX_FILTERS = 20
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_INT64 = 2**63
_FORM = "SELECT <aggregates and group-by columns> FROM <dataset> [WHERE ...] [GROUP BY <columns>]"
_AGGREGATES = "COUNT(*), COUNT(DISTINCT person_id), SUM(column), AVG(column) and MEDIAN(column)"
_CONDITIONS = (
    "WHERE takes comparisons of a column with a value (=, <>, <, <=, >, >=, IN (...), NOT IN (...),"
    " BETWEEN) joined by AND"
)
AggregateKind = Literal["count_rows", "count_persons", "sum", "mean", "median", "quantile"]
FilterOp = Literal["==", "!=", "<", "<=", ">", ">=", "in"]
_COMPARISONS: dict[type[exp.Expr], FilterOp] = {
    exp.EQ: "==",
    exp.NEQ: "!=",
    exp.LT: "<",
    exp.LTE: "<=",
    exp.GT: ">",
    exp.GTE: ">=",
}
_FLIPPED: dict[FilterOp, FilterOp] = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_SQL_OPS = {"==": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_SQL_AGGREGATES = {"count_rows": "COUNT", "sum": "SUM", "mean": "AVG", "median": "MEDIAN"}
PERSON_COUNT = "COUNT(DISTINCT person_id)"
# The Select clauses a plan has a place for; every other non-empty clause is refused. sqlglot 25-29
# calls the FROM clause "from", later versions "from_".
_ALLOWED_CLAUSES = {"expressions", "from", "from_", "where", "group"}
_CLAUSE_REFUSALS = {
    "having": "HAVING is not supported: filter the released DataFrame instead",
    "order": (
        "ORDER BY is not supported: a release holds every group in a fixed order; sort the returned"
        " DataFrame instead"
    ),
    "limit": (
        "LIMIT is not supported: every group is computed and priced together; select rows of the"
        " returned DataFrame instead"
    ),
    "offset": "OFFSET is not supported: select rows of the returned DataFrame instead",
    "distinct": "SELECT DISTINCT is not supported: use GROUP BY on public columns with COUNT(*)",
    "joins": "joins are not supported: a query reads one dataset",
    "laterals": "LATERAL is not supported: a query reads one dataset",
    "with": "WITH (common table expressions) is not supported: write a single SELECT",
    "with_": "WITH (common table expressions) is not supported: write a single SELECT",
    "windows": "window functions are not supported",
    "qualify": "QUALIFY is not supported",
    "into": "SELECT INTO is not supported: a query only reads",
    "locks": "locking clauses (FOR UPDATE ...) are not supported: a query only reads",
    "sample": "TABLESAMPLE is not supported",
    "hint": "optimizer hints are not supported",
}


def parse_sql(sql: str, epsilon: Decimal, delta: Decimal = Decimal(0)) -> QueryPlan:
    """The plan of one DP-SQL query at privacy loss ``epsilon`` (and ``delta``, for a GROUP BY on a
    column without a public domain); ``InvalidInput`` says what is not
    supported otherwise. Schema checks (does the column exist, has it a public domain, is it bounded)
    are not done here: the plan goes through ``check_scope`` and ``check_against_catalog`` like any
    other, so SQL and builder queries can never be held to different rules."""
    if not isinstance(sql, str):
        raise InvalidInput("the SQL query must be text")
    if len(sql) > MAX_SQL_CHARS:
        raise InvalidInput(f"the SQL query is {len(sql)} characters long; the limit is {MAX_SQL_CHARS}")
    _check_tokens(_tokenise(sql))
    tree = _parse(sql)
    if isinstance(tree, exp.Union | exp.Intersect | exp.Except):
        kind = {exp.Union: "UNION", exp.Intersect: "INTERSECT", exp.Except: "EXCEPT"}[type(tree)]
        raise InvalidInput(f"{kind} is not supported: a query is one SELECT from one dataset")
    if not isinstance(tree, exp.Select):
        raise InvalidInput(f"only a single SELECT statement is accepted: {_FORM}")
    return _Translator(tree).plan(epsilon, delta)


def plan_to_sql(plan: QueryPlan) -> str:
    """The DP-SQL text of a plan, for display: ``parse_sql(plan_to_sql(p), p.epsilon) == p``.

    ε is not part of SQL and is left out. Group-by columns come first in the SELECT list, then the
    aggregates, as the release lays them out. A histogram (``bins``) has no DP-SQL form."""
    if plan.bins:
        raise InvalidInput("a histogram (a plan with bins) has no DP-SQL form: use the plan or the client")
    items = [_identifier(c) for c in plan.group_by]
    for agg in plan.aggregates:
        arg = "*" if agg.column is None else _identifier(agg.column)
        if agg.kind == "quantile":
            items.append(f"PERCENTILE_CONT({agg.q}) WITHIN GROUP (ORDER BY {arg})")
        elif agg.kind == "count_persons":
            items.append(PERSON_COUNT)
        else:
            items.append(f"{_SQL_AGGREGATES[agg.kind]}({arg})")
    # Display text from a validated plan (names match Name, literals are escaped); never executed.
    text = f"SELECT {', '.join(items)} FROM {_identifier(plan.dataset)}"  # noqa: S608
    if plan.filters:
        text += " WHERE " + " AND ".join(_filter_sql(f) for f in plan.filters)
    if plan.group_by:
        text += " GROUP BY " + ", ".join(_identifier(c) for c in plan.group_by)
    return text


# ----------------------------------------------------------------- tokens and parsing
def _tokenise(sql: str) -> list[Token]:
    try:
        return Tokenizer().tokenize(sql)
    except SqlglotError:
        # sqlglot's message quotes the text with terminal escapes; ours says what to check.
        raise InvalidInput(
            "the SQL query could not be read: check for an unterminated 'string' or \"name\""
        ) from None
    except RecursionError:
        raise InvalidInput("the SQL query is nested too deeply to read") from None
    except Exception:
        # Any other tokenizer failure is still the query's fault, and never a traceback for the user.
        raise InvalidInput("the SQL query could not be read") from None


def _check_tokens(tokens: list[Token]) -> None:
    """Refusals that need no parse tree, so nothing after them can hide from them."""
    if not tokens:
        raise InvalidInput(f"the SQL query is empty (a comment alone is not a query): write {_FORM}")
    for token in tokens:
        if token.comments or token.token_type is TokenType.HINT:
            raise InvalidInput("comments (-- or /* */) are not allowed in a DP-SQL query: remove them")
        if token.token_type is TokenType.SEMICOLON:
            raise InvalidInput("';' is not allowed: a DP-SQL query is one SELECT statement; remove the ';'")
    first = tokens[0]
    if first.token_type is TokenType.WITH:
        raise InvalidInput(_CLAUSE_REFUSALS["with"])
    if first.token_type is not TokenType.SELECT:
        word = first.text.upper() if first.text.replace("_", "").isalpha() else repr(first.text)
        raise InvalidInput(f"only a single SELECT statement is accepted, not {word}: write {_FORM}")


def _parse(sql: str) -> exp.Expr:
    try:
        tree = sqlglot.parse_one(sql)
    except ParseError as exc:
        where = ""
        if exc.errors:
            first = exc.errors[0]
            description = str(first.get("description") or "unexpected text")
            where = f" ({description} at line {first.get('line')}, column {first.get('col')})"
        raise InvalidInput(
            f"the SQL query could not be parsed{where}: the accepted form is {_FORM}"
        ) from None
    except SqlglotError:
        raise InvalidInput(f"the SQL query could not be parsed: the accepted form is {_FORM}") from None
    except RecursionError:
        raise InvalidInput("the SQL query is nested too deeply to parse") from None
    except Exception:
        # sqlglot raises other exceptions on some malformed input; the user gets a sentence.
        raise InvalidInput(f"the SQL query could not be parsed: the accepted form is {_FORM}") from None
    if tree is None:
        raise InvalidInput(f"the SQL query is empty: write {_FORM}")
    return tree


# ----------------------------------------------------------------- translation
def _is_person_count(node: exp.Expr | None) -> bool:
    """``COUNT(DISTINCT person_id)``: the count of persons (the privacy unit's own column, which is
    otherwise never queryable)."""
    if not isinstance(node, exp.Count) or not isinstance(node.this, exp.Distinct):
        return False
    inner = node.this.expressions
    return len(inner) == 1 and isinstance(inner[0], exp.Column) and inner[0].name.lower() == PERSON_COLUMN


def _snippet(node: exp.Expr) -> str:
    """A short SQL rendering of a node, to name it in a refusal."""
    try:
        text = node.sql()
    except Exception:
        text = type(node).__name__.upper()
    return text if len(text) <= 60 else text[:57] + "..."


def _set_args(node: exp.Expr) -> set[str]:
    """The names of a node's arguments that are present (sqlglot stores absent ones as None/[]/False)."""
    return {k for k, v in node.args.items() if v not in (None, [], False)}


class _Translator:
    """Walks one parsed SELECT into a plan, refusing the first thing it has no place for."""

    def __init__(self, select: exp.Select) -> None:
        self._select = select
        self._dataset = ""
        self._qualifiers: set[str] = set()

    def plan(self, epsilon: Decimal, delta: Decimal) -> QueryPlan:
        try:
            return self._plan(epsilon, delta)
        except ValidationError as exc:
            # A literal or list the plan model refuses (an IN list over 1000 values, ...).
            raise InvalidInput(_validation_sentence(exc)) from None

    def _plan(self, epsilon: Decimal, delta: Decimal) -> QueryPlan:
        self._check_clauses()
        self._check_nodes()
        self._dataset, self._qualifiers = self._from()
        group_by = self._group_by()
        aggregates = self._select_list(group_by)
        filters = self._where()
        if len(aggregates) > MAX_AGGREGATES:
            raise InvalidInput(f"a query has at most {MAX_AGGREGATES} aggregates ({len(aggregates)} given)")
        if len(group_by) > MAX_GROUP_BY:
            raise InvalidInput(f"a query groups by at most {MAX_GROUP_BY} columns ({len(group_by)} given)")
        if len(filters) > MAX_FILTERS:
            raise InvalidInput(
                f"a query has at most {MAX_FILTERS} conditions ({len(filters)} given; NOT IN and BETWEEN"
                " count one per value and two)"
            )
        return QueryPlan(
            dataset=self._dataset,
            aggregates=aggregates,
            group_by=group_by,
            filters=filters,
            epsilon=epsilon,
            delta=delta,
        )

    # -- shape
    def _check_clauses(self) -> None:
        for clause in sorted(_set_args(self._select) - _ALLOWED_CLAUSES):
            refusal = _CLAUSE_REFUSALS.get(clause)
            if refusal is None:
                refusal = f"the {clause.rstrip('_').upper()} clause is not supported: write {_FORM}"
            raise InvalidInput(refusal)

    def _check_nodes(self) -> None:
        """Constructs refused wherever they appear, with their own sentence."""
        for node in self._select.walk():
            if node is self._select:
                continue
            if isinstance(node, exp.Subquery | exp.Select | exp.Exists):
                raise InvalidInput("subqueries are not supported: a query is one SELECT from one dataset")
            if isinstance(node, exp.Union | exp.Intersect | exp.Except):
                raise InvalidInput("UNION, INTERSECT and EXCEPT are not supported")
            if isinstance(node, exp.Join):
                raise InvalidInput(_CLAUSE_REFUSALS["joins"])
            if isinstance(node, exp.Window):
                raise InvalidInput("window functions (OVER ...) are not supported")
            if isinstance(node, exp.Distinct) and not _is_person_count(node.parent):
                raise InvalidInput(
                    "DISTINCT is not supported except in COUNT(DISTINCT person_id), the count of persons;"
                    " use COUNT(*) with GROUP BY on a public column"
                )
            if isinstance(node, exp.Or):
                raise InvalidInput(
                    "OR is not supported: use IN (...) for alternative values of one column, or run"
                    " separate queries"
                )

    # -- FROM
    def _from(self) -> tuple[str, set[str]]:
        clause = self._select.args.get("from_") or self._select.args.get("from")
        if clause is None:
            raise InvalidInput(f"the query has no FROM: write {_FORM}")
        table = clause.this
        if not isinstance(table, exp.Table) or not isinstance(table.this, exp.Identifier):
            raise InvalidInput(f"FROM takes the name of one dataset, not {_snippet(table)}")
        extra = _set_args(table) - {"this", "alias"}
        if extra & {"db", "catalog"}:
            raise InvalidInput(
                f"FROM takes a dataset name without a schema or database: write FROM {table.name.lower()}"
            )
        if extra:
            raise InvalidInput(f"FROM takes the name of one dataset, not {_snippet(table)}")
        dataset = _name(table.this, "dataset")
        qualifiers = {dataset}
        alias = table.args.get("alias")
        if alias is not None:
            if not isinstance(alias, exp.TableAlias) or _set_args(alias) != {"this"}:
                raise InvalidInput("a table alias is a single name (FROM admissions a)")
            qualifiers.add(_name(alias.this, "table alias"))
        return dataset, qualifiers

    def _column(self, node: exp.Expr, what: str) -> str | None:
        """The column's name if ``node`` is a (possibly qualified) column, else None."""
        if not isinstance(node, exp.Column):
            return None
        if isinstance(node.this, exp.Star):
            raise InvalidInput(
                "SELECT * is not supported: rows are never released; select aggregates such as COUNT(*)"
            )
        if _set_args(node) - {"this", "table"}:
            raise InvalidInput(f"{_snippet(node)}: a column is named by itself or as <dataset>.<column>")
        qualifier = node.args.get("table")
        if qualifier is not None:
            table = _name(qualifier, "table")
            if table not in self._qualifiers:
                raise InvalidInput(
                    f"{_snippet(node)} names the table {table!r}, but the query reads {self._dataset!r}"
                )
        return _name(node.this, what)

    # -- GROUP BY
    def _group_by(self) -> list[str]:
        group = self._select.args.get("group")
        if group is None:
            return []
        extra = _set_args(group) - {"expressions"}
        if extra:
            raise InvalidInput(
                f"GROUP BY {', '.join(sorted(k.upper() for k in extra))} is not supported:"
                " group by column names"
            )
        keys: list[str] = []
        for node in group.expressions:
            name = self._column(node, "column")
            if name is not None:
                keys.append(name)
            elif isinstance(node, exp.Literal) and not node.is_string:
                raise InvalidInput(f"GROUP BY {node.this} (by position) is not supported: name the column")
            else:
                raise InvalidInput(f"GROUP BY takes column names, not {_snippet(node)}")
        return keys

    # -- SELECT list
    def _select_list(self, group_by: list[str]) -> list[AggregateSpec]:
        aggregates: list[AggregateSpec] = []
        for item in self._select.expressions:
            alias = None
            if isinstance(item, exp.Alias):
                alias = _name(item.args["alias"], "alias") if item.args.get("alias") else None
                item = item.this
            name = self._column(item, "column")
            if name is not None:
                if name not in group_by:
                    raise InvalidInput(
                        f"column {name!r} is selected but not in GROUP BY: only aggregates and"
                        " group-by columns can be selected (add it to GROUP BY or wrap it in an aggregate)"
                    )
                released = name
            else:
                agg = self._aggregate(item)
                aggregates.append(agg)
                released = agg.name
            if alias is not None and alias != released:
                raise InvalidInput(
                    f"the alias {alias!r} is not supported: the release names this value {released!r};"
                    " drop the AS and rename the DataFrame's column instead"
                )
        if not aggregates:
            raise InvalidInput(f"the query selects no aggregate: select at least one of {_AGGREGATES}")
        return aggregates

    def _aggregate(self, node: exp.Expr) -> AggregateSpec:
        if isinstance(node, exp.Count):
            if _is_person_count(node):
                return AggregateSpec(kind="count_persons")
            if not isinstance(node.this, exp.Star) or _set_args(node) - {"this", "big_int"}:
                raise InvalidInput(
                    f"{_snippet(node)} is not supported: COUNT(*) counts rows; COUNT of a column or an"
                    " expression is not a supported aggregate"
                )
            return AggregateSpec(kind="count_rows")
        kinds: dict[type[exp.Expr], AggregateKind] = {exp.Sum: "sum", exp.Avg: "mean"}
        median = getattr(exp, "Median", None)  # sqlglot >= 26; earlier, MEDIAN is an Anonymous function
        if median is not None:
            kinds[median] = "median"
        for cls, kind in kinds.items():
            if isinstance(node, cls):
                return AggregateSpec(kind=kind, column=self._aggregate_column(node, node.this))
        if isinstance(node, exp.Anonymous) and node.name.upper() == "MEDIAN" and len(node.expressions) == 1:
            return AggregateSpec(kind="median", column=self._aggregate_column(node, node.expressions[0]))
        if isinstance(node, exp.WithinGroup):
            column, level = self._percentile(node)
            if level == Decimal("0.5"):
                return AggregateSpec(kind="median", column=column)
            return AggregateSpec(kind="quantile", column=column, q=level)
        if isinstance(node, exp.Min | exp.Max):
            raise InvalidInput(
                f"{_snippet(node)} is not supported: a minimum or maximum is one person's value; use"
                " MEDIAN(column) or AVG(column)"
            )
        if isinstance(node, exp.Func):
            raise InvalidInput(
                f"the function {_function_name(node)}() is not supported: the aggregates are {_AGGREGATES}"
            )
        if isinstance(node, exp.Star):
            raise InvalidInput(
                "SELECT * is not supported: rows are never released; select aggregates such as COUNT(*)"
            )
        if isinstance(node, exp.Literal | exp.Neg | exp.Null | exp.Boolean):
            raise InvalidInput(f"selecting a constant ({_snippet(node)}) is not supported")
        if isinstance(node, exp.Binary | exp.Unary | exp.Paren):
            raise InvalidInput(
                f"{_snippet(node)}: arithmetic and expressions are not supported in SELECT; select"
                f" {_AGGREGATES} of plain columns"
            )
        raise InvalidInput(f"{_snippet(node)} cannot be selected: select {_AGGREGATES} and group-by columns")

    def _aggregate_column(self, func: exp.Expr, arg: Any) -> str:
        extra = _set_args(func) - {"this"}
        if isinstance(func, exp.Anonymous):
            extra -= {"expressions"}
        name = self._column(arg, "column") if isinstance(arg, exp.Column) else None
        if name is None or extra:
            fn = _function_name(func)
            raise InvalidInput(f"{_snippet(func)}: {fn} takes one column name, as in {fn}(cost_gbp)")
        return name

    def _percentile(self, node: exp.WithinGroup) -> tuple[str, Decimal]:
        func, order = node.this, node.expression
        if not isinstance(func, exp.PercentileCont | exp.PercentileDisc):
            raise InvalidInput(
                f"{_snippet(node)}: WITHIN GROUP is supported only for PERCENTILE_CONT(q), a quantile"
            )
        fraction = func.this
        level = _level(fraction)
        if level is None:
            raise InvalidInput(
                f"{_snippet(node)}: a percentile's level is a number between 0 and 1 with at most four"
                " decimals, as in PERCENTILE_CONT(0.25)"
            )
        ordered = order.expressions if isinstance(order, exp.Order) else []
        if len(ordered) != 1 or not isinstance(ordered[0], exp.Ordered):
            raise InvalidInput(f"{_snippet(node)}: a percentile orders by exactly one column")
        name = self._column(ordered[0].this, "column")
        if name is None:
            raise InvalidInput(f"{_snippet(node)}: a percentile orders by a column name, not an expression")
        if ordered[0].args.get("desc"):
            level = (1 - level).normalize()  # the q-th from the top is the (1 - q)-th from the bottom
        return name, level

    # -- WHERE
    def _where(self) -> list[FilterSpec]:
        where = self._select.args.get("where")
        if where is None:
            return []
        filters: list[FilterSpec] = []
        for term in _conjuncts(where.this):
            filters.extend(self._condition(term))
        return filters

    def _condition(self, term: exp.Expr) -> list[FilterSpec]:
        if isinstance(term, exp.Not):
            inner = _unparen(term.this)
            if isinstance(inner, exp.In):
                column, values = self._in(inner)
                return [FilterSpec(column=column, op="!=", value=v) for v in values]
            raise InvalidInput(f"NOT is not supported (except NOT IN): {_CONDITIONS}")
        if isinstance(term, exp.In):
            column, values = self._in(term)
            return [FilterSpec(column=column, op="in", value=list(values))]
        if isinstance(term, exp.Between):
            between = self._column(term.this, "column")
            if between is None or _set_args(term) - {"this", "low", "high"}:
                raise InvalidInput(f"{_snippet(term)}: BETWEEN compares a column with two values")
            low, high = _value(term.args["low"]), _value(term.args["high"])
            return [
                FilterSpec(column=between, op=">=", value=low),
                FilterSpec(column=between, op="<=", value=high),
            ]
        op = _COMPARISONS.get(type(term))
        if op is not None:
            return [self._comparison(term, op)]
        if isinstance(term, exp.Is):
            raise InvalidInput(f"IS NULL and IS NOT NULL are not supported: {_CONDITIONS}")
        if isinstance(term, exp.Like | exp.ILike):
            raise InvalidInput(f"LIKE is not supported: list the values with IN (...); {_CONDITIONS}")
        raise InvalidInput(f"the condition {_snippet(term)} is not supported: {_CONDITIONS}")

    def _comparison(self, term: exp.Expr, op: FilterOp) -> FilterSpec:
        left, right = _unparen(term.this), _unparen(term.expression)
        if isinstance(left, exp.Column) and isinstance(right, exp.Column):
            raise InvalidInput(
                f"{_snippet(term)} compares two columns, which is not supported: compare a column with a"
                " value (text values take single quotes, as in sex = 'F')"
            )
        left_col, right_col = self._column(left, "column"), self._column(right, "column")
        if left_col is not None:
            return FilterSpec(column=left_col, op=op, value=_value(right))
        if right_col is not None:
            return FilterSpec(column=right_col, op=_FLIPPED[op], value=_value(left))
        if isinstance(left, exp.Func) or isinstance(right, exp.Func):
            raise InvalidInput(
                f"{_snippet(term)}: functions are not supported in WHERE;"
                " compare a column itself with a value"
            )
        raise InvalidInput(f"{_snippet(term)} does not involve a column: compare a column with a value")

    def _in(self, term: exp.In) -> tuple[str, list[str | int]]:
        if _set_args(term) - {"this", "expressions"}:
            raise InvalidInput(f"{_snippet(term)}: IN takes a list of values, as in region IN ('E1', 'E2')")
        column = self._column(term.this, "column")
        if column is None:
            raise InvalidInput(f"{_snippet(term)}: IN tests a column, as in region IN ('E1', 'E2')")
        values: list[str | int] = []
        for node in term.expressions:
            value = _value(node)
            if isinstance(value, float):
                raise InvalidInput(
                    f"{_snippet(term)}: IN lists take text or whole numbers; compare decimals with < and >"
                )
            values.append(value)
        return column, values


def _conjuncts(node: exp.Expr) -> Iterator[exp.Expr]:
    node = _unparen(node)
    if isinstance(node, exp.And):
        yield from _conjuncts(node.this)
        yield from _conjuncts(node.expression)
    else:
        yield node


def _unparen(node: exp.Expr) -> exp.Expr:
    return node.unnest()


def _value(node: exp.Expr) -> str | int | float:
    """A literal's value: text, an integer, a finite decimal, or a date as its ISO string."""
    node = _unparen(node)
    if isinstance(node, exp.Literal):
        return node.this if node.is_string else _number(node)
    if isinstance(node, exp.Neg) and isinstance(_unparen(node.this), exp.Literal):
        inner = _unparen(node.this)
        assert isinstance(inner, exp.Literal)
        if not inner.is_string:
            return -_number(inner)
    if isinstance(node, exp.Cast) and isinstance(node.this, exp.Literal) and node.this.is_string:
        to = node.args.get("to")
        if isinstance(to, exp.DataType) and to.this == exp.DataType.Type.DATE:
            try:
                return date.fromisoformat(node.this.this).isoformat()
            except ValueError:
                raise InvalidInput(
                    f"DATE {_literal_sql(str(node.this.this))} is not a valid date: write DATE 'YYYY-MM-DD'"
                ) from None
    if isinstance(node, exp.Null):
        raise InvalidInput(
            "comparisons with NULL are never true in SQL, and IS NULL is not supported: remove the condition"
        )
    if isinstance(node, exp.Boolean):
        raise InvalidInput(f"{_snippet(node)} is not supported as a value: use a number or a 'text' value")
    if isinstance(node, exp.Subquery | exp.Select):
        raise InvalidInput("subqueries are not supported: a query is one SELECT from one dataset")
    raise InvalidInput(
        f"{_snippet(node)} is not a literal value: use a number, a 'text' in single quotes or"
        " DATE 'YYYY-MM-DD'"
    )


def _number(node: exp.Literal) -> int | float:
    text = str(node.this)
    if re.fullmatch(r"[0-9]+", text):
        value = int(text)
        if value >= _INT64:
            raise InvalidInput(f"the number {text} is too large (integers are 64-bit)")
        return value
    try:
        number = float(text)
    except ValueError:
        raise InvalidInput(f"{text!r} is not a number") from None
    if not math.isfinite(number):
        raise InvalidInput(f"the number {text} is too large")
    return number


def _name(node: Any, what: str) -> str:
    """An identifier as the catalog spells it: unquoted names are case-insensitive (lower-cased)."""
    if not isinstance(node, exp.Identifier):
        raise InvalidInput(f"{what} must be a plain name")
    text = str(node.this)
    name = text if node.quoted else text.lower()
    if not _NAME.fullmatch(name):
        raise InvalidInput(
            f"{what} {name!r} is not a valid name: names are lower-case letters, digits and underscores,"
            " starting with a letter"
        )
    return name


def _function_name(node: exp.Expr) -> str:
    if isinstance(node, exp.Anonymous):
        return node.name.upper()
    if isinstance(node, exp.Func):
        return node.sql_name()
    return type(node).__name__.upper()


def _validation_sentence(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        problems.append(f"{loc}: {message}" if loc else message)
    return "the query does not make a valid plan: " + "; ".join(problems)


# ----------------------------------------------------------------- rendering
def _identifier(name: str) -> str:
    """A name bare if it reads back as the same plain name, else double-quoted (reserved words)."""
    try:
        tokens = Tokenizer().tokenize(name)
    except SqlglotError:
        tokens = []
    plain = len(tokens) == 1 and tokens[0].token_type is TokenType.VAR and tokens[0].text == name
    # some plain words are read as functions without parentheses (IF, CASE, ...): quote them too
    plain = plain and name.upper() not in Parser.NO_PAREN_FUNCTION_PARSERS
    return name if plain else f'"{name}"'


def _literal_sql(value: str | int | float) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"the filter value {value} has no SQL literal")
    return repr(value)


def _filter_sql(flt: FilterSpec) -> str:
    column = _identifier(flt.column)
    if isinstance(flt.value, list):
        return f"{column} IN ({', '.join(_literal_sql(v) for v in flt.value)})"
    return f"{column} {_SQL_OPS[flt.op]} {_literal_sql(flt.value)}"


def _level(node: Any) -> Decimal | None:
    """A quantile's level from a numeric literal: 0 < q < 1, at most four decimals."""
    if not isinstance(node, exp.Literal) or node.is_string:
        return None
    try:
        level = Decimal(node.this)
    except (ArithmeticError, ValueError):
        return None
    if not level.is_finite() or not 0 < level < 1 or level != level.quantize(Decimal("0.0001")):
        return None
    return level.normalize()
