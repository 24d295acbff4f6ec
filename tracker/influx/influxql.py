"""The InfluxQL subset Tracker answers: query text -> typed statements. Pure: no I/O, no clock.

`parse_query(text, now_ns=..., params=...)` returns one statement object per `;`-separated
statement, or raises `QueryParseError` whose message reads like InfluxDB's
(`error parsing query: found EOF, expected identifier at line 1, char 15`), so the HTTP layer
can answer 400 with it unchanged.

Shape of the code: a hand-written lexer that produces one token at a time (a `/` is a regex
only where the parser asks for one: after `=~`/`!~` and in FROM, exactly as InfluxDB's scanner
does), and a recursive-descent parser with precedence climbing for expressions.

Decisions worth knowing:
- `now()` and time arithmetic compared with `time` are folded at parse time into `TimeLiteral`,
  so `time > now() - 1h` reaches the executor as `BinaryExpr(">", VarRef("time"), TimeLiteral(ns))`.
- The time bounds of a SELECT must be AND-ed at the top level of WHERE; `time` inside an OR, or
  compared with `!=`/`=~`, is refused at parse time (400) rather than silently widening the range.
  `time_range()` extracts the bounds and the remaining tag/field condition.
- Function calls take InfluxDB 1.x's arguments, including `*` and `/regex/` (count(*), max(/pwr/))
  and `DISTINCT x`. What InfluxDB refuses when it compiles a SELECT (undefined functions, wrong
  arguments, mixing aggregates with fields, a transformation of a raw field under GROUP BY time ...)
  is `compile_error(statement)`, in InfluxDB's words; the statement carries it in `compile_error`
  and is answered with it inside its own result, as InfluxDB does, not as a 400 for the request.
- Statements Tracker does not run (DROP, DELETE, GRANT, SELECT INTO, SHOW USERS, ...) parse into
  `UnsupportedStatement`; the executor answers an error inside that statement's result.
- Expression trees are at most MAX_EXPR_DEPTH deep (parentheses at most MAX_PAREN_DEPTH), so code
  that walks them recursively cannot hit Python's recursion limit.

Subqueries (`FROM (SELECT ...)`, nested too) parse into a Source holding the inner statement.

Refused with a clear QueryParseError: a subquery beside other sources, GROUP BY /regex/, ORDER BY
other than time, time inside OR or compared with != or a regex, comparisons in SELECT fields.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import re2  # type: ignore[import-untyped]

from tracker.influx import timebuckets
from tracker.rules import parse_duration, parse_time_string

__all__ = [
    "AGGREGATES",
    "AGGREGATE_FUNCTIONS",
    "MATH_FUNCTIONS",
    "REDUCERS",
    "SELECTOR_FUNCTIONS",
    "TRANSFORMATIONS",
    "BinaryExpr",
    "BooleanLiteral",
    "Call",
    "CreateDatabase",
    "DeleteStatement",
    "DurationLiteral",
    "Expr",
    "FieldExpr",
    "IntegerLiteral",
    "MAX_TIME",
    "MIN_TIME",
    "NumberLiteral",
    "QueryParseError",
    "RegexLiteral",
    "SelectStatement",
    "ShowDatabases",
    "ShowFieldKeys",
    "ShowMeasurements",
    "ShowRetentionPolicies",
    "ShowSeries",
    "ShowTagKeys",
    "ShowTagValues",
    "Source",
    "Statement",
    "StringLiteral",
    "TimeLiteral",
    "UnsupportedStatement",
    "VarRef",
    "Wildcard",
    "compile_error",
    "format_expr",
    "format_influx_duration",
    "parse_duration",
    "parse_query",
    "parse_time_string",
    "time_range",
    "walk",
]

ERROR_PREFIX = "error parsing query: "
MIN_TIME = -(2**63) + 2  # InfluxDB's influxql.MinTime: the earliest representable instant
MAX_TIME = 2**63 - 1  # default exclusive end of a time range
MAX_PAREN_DEPTH = 100  # nesting of ( ) and call arguments; keeps the recursive parser off Python's limit
MAX_EXPR_DEPTH = 256  # depth of a finished expression tree, so recursive consumers are safe too
# The aggregates the SQL and column paths answer per bucket (one field each); the others run in
# tracker.influx.functions.
AGGREGATES = ("mean", "median", "min", "max", "sum", "count", "first", "last", "spread", "stddev")
# InfluxDB 1.x's functions by kind: aggregates and selectors reduce a bucket's points; transformations
# map a sequence of points (raw, or one aggregate per bucket); math maps each value.
AGGREGATE_FUNCTIONS = frozenset({"count", "distinct", "integral", "mean", "median", "mode", "spread", "stddev", "sum"})
SELECTOR_FUNCTIONS = frozenset({"bottom", "first", "last", "max", "min", "percentile", "sample", "top"})
REDUCERS = AGGREGATE_FUNCTIONS | SELECTOR_FUNCTIONS
TRANSFORMATIONS = frozenset({
    "cumulative_sum", "derivative", "difference", "elapsed", "moving_average", "non_negative_derivative",
    "non_negative_difference",
})  # fmt: skip
MATH_FUNCTIONS = frozenset({
    "abs", "acos", "asin", "atan", "atan2", "ceil", "cos", "exp", "floor", "ln", "log", "log2", "log10", "pow",
    "round", "sin", "sqrt", "tan",
})  # fmt: skip
_TWO_ARGUMENT_MATH = frozenset({"atan2", "log", "pow"})
FILL_OPTIONS = ("null", "none", "previous", "linear")
TYPE_HINTS = ("field", "tag", "float", "integer", "string", "boolean", "unsigned")
_INT64_MAX = 2**63 - 1


class QueryParseError(ValueError):
    """The query cannot run as written; `str(err)` starts with "error parsing query: " (answer 400)."""

    def __init__(self, message: str) -> None:
        if not message.startswith(ERROR_PREFIX):
            message = ERROR_PREFIX + message
        super().__init__(message)
        self.message = message


# ---------------------------------------------------------------------------------------------
# AST: expressions


@dataclass(frozen=True, slots=True)
class VarRef:
    """A field, tag or `time` reference; `type_hint` from `"x"::field` / `::tag` (lower case)."""

    name: str
    type_hint: str | None = None


@dataclass(frozen=True, slots=True)
class Wildcard:
    """`*` in a SELECT field list (optionally `*::field` / `*::tag`)."""

    type_hint: str | None = None


@dataclass(frozen=True, slots=True)
class Call:
    """A function call; `name` is lower case. Only aggregates survive validation in SELECT fields."""

    name: str
    args: tuple[Expr, ...] = ()


@dataclass(frozen=True, slots=True)
class BinaryExpr:
    """`op` is one of AND OR = != < <= > >= =~ !~ + - * / % (`<>` is normalised to `!=`)."""

    op: str
    lhs: Expr
    rhs: Expr


@dataclass(frozen=True, slots=True)
class StringLiteral:
    value: str


@dataclass(frozen=True, slots=True)
class IntegerLiteral:
    value: int


@dataclass(frozen=True, slots=True)
class NumberLiteral:
    value: float


@dataclass(frozen=True, slots=True)
class BooleanLiteral:
    value: bool


@dataclass(frozen=True, slots=True)
class DurationLiteral:
    """`10m`, `1h30m`, `100ms` ... as nanoseconds."""

    ns: int


@dataclass(frozen=True, slots=True)
class TimeLiteral:
    """An absolute instant in ns since the epoch: what a comparison with `time` is folded into."""

    ns: int


# A user's pattern runs in RE2, as in InfluxDB (Go's regexp): linear in the text, so no pattern can
# backtrack for hours, and the same syntax InfluxDB users write (no backreferences or lookaround).
# max_mem bounds what compiling one pattern may take (RE2 refuses a pattern that needs more).
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
_RE2_OPTIONS.max_mem = 8 << 20


@functools.lru_cache(maxsize=256)
def compile_regex(pattern: str) -> Any:
    """The RE2 program for a user's pattern; `.search(text)` is unanchored, like Go's MatchString.
    Raises ValueError with RE2's reason for an invalid pattern."""
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "invalid pattern"
        raise ValueError(reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)) from None


# RE2's reasons in the words of Go's regexp/syntax, which InfluxDB answers with.
_GO_REGEXP_REASONS = {
    "missing ]": "missing closing ]",
    "missing )": "missing closing )",
    "no argument for repetition operator": "missing argument to repetition operator",
    "bad repetition operator": "invalid nested repetition operator",
    "invalid repetition size": "invalid repeat count",
    "trailing \\": "trailing backslash at end of expression",
    "invalid perl operator": "invalid or unsupported Perl syntax",
}


def _go_regexp_error(reason: str) -> str:
    """`missing ]: [` (RE2) -> "error parsing regexp: missing closing ]: `[`" (Go, as InfluxDB says it)."""
    code, _, argument = reason.partition(": ")
    code = _GO_REGEXP_REASONS.get(code, code)
    return f"error parsing regexp: {code}: `{argument}`"


@dataclass(frozen=True, slots=True)
class RegexLiteral:
    """`/pattern/` with `\\/` unescaped. Matching is `compiled.search()` (unanchored, like Go's MatchString)."""

    pattern: str
    compiled: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Compiled once here so an invalid pattern fails at parse time, not per row.
        object.__setattr__(self, "compiled", compile_regex(self.pattern))


Expr = (
    VarRef
    | Wildcard
    | Call
    | BinaryExpr
    | StringLiteral
    | IntegerLiteral
    | NumberLiteral
    | BooleanLiteral
    | DurationLiteral
    | TimeLiteral
    | RegexLiteral
)

_COMPARISONS = frozenset({"=", "!=", "<", "<=", ">", ">=", "=~", "!~"})
_ARITHMETIC = frozenset({"+", "-", "*", "/", "%"})


# ---------------------------------------------------------------------------------------------
# AST: statements


@dataclass(frozen=True, slots=True)
class FieldExpr:
    expr: Expr
    alias: str | None = None

    @property
    def name(self) -> str:
        """The result column name InfluxDB would give: alias, field name, function name, or a_b for math."""
        return self.alias if self.alias is not None else _column_name(self.expr)


@dataclass(frozen=True, slots=True)
class Source:
    """A FROM item: a measurement `name` or a `regex`, with the optional "db"."rp". prefix; or a
    subquery, `FROM (SELECT ...)`, whose answer is the outer statement's points."""

    name: str | None = None
    regex: RegexLiteral | None = None
    database: str | None = None
    retention_policy: str | None = None
    query: SelectStatement | None = None


@dataclass(frozen=True, slots=True)
class SelectStatement:
    fields: list[FieldExpr]
    sources: list[Source]
    condition: Expr | None = None
    group_by_time: tuple[int, int] | None = None  # (interval_ns > 0, offset_ns in [0, interval))
    group_by_tags: list[str] = field(default_factory=list)  # "*" means every tag
    fill: str | float | None = None  # "null" | "none" | "previous" | "linear" | a number | None (not given)
    order_desc: bool = False
    limit: int | None = None  # None: no limit (LIMIT 0 means none too, as in InfluxDB)
    offset: int = 0
    slimit: int = 0  # series of the answer: 0 is no limit, as in InfluxDB
    soffset: int = 0
    time_zone: str | None = None  # tz('...'): a zone name timebuckets.load_zone knows
    # InfluxDB's compile error for a well-formed statement it cannot run (e.g. "undefined function
    # foo()"): answered inside the statement's result, as InfluxDB does, so the others still run.
    compile_error: str | None = None
    time_column: str = "time"  # `SELECT time AS t, ...` names the time column t

    @property
    def is_aggregate(self) -> bool:
        """Reduces points per bucket (or the whole range), rather than answering row per point."""
        return any(_has_aggregate(f.expr) for f in self.fields)

    @property
    def needs_functions(self) -> bool:
        """Beyond the SQL and column paths: functions other than the plain AGGREGATES over one named
        field (transformations, math, percentile, top, ..., nested calls, `*` or /regex/ arguments),
        and a selector beside fields or tags."""
        for item in self.fields:
            for node in walk(item.expr):
                if isinstance(node, Call) and (
                    node.name not in AGGREGATES or len(node.args) != 1 or not isinstance(node.args[0], VarRef)
                ):
                    return True
        # a selector beside fields or tags: SELECT max(x), y
        aggregate = self.is_aggregate
        return aggregate and any(isinstance(n, VarRef) for item in self.fields for n in _outside_calls(item.expr))


@dataclass(frozen=True, slots=True)
class ShowDatabases:
    pass


@dataclass(frozen=True, slots=True)
class ShowMeasurements:
    """`name_op` is None, "=", "!=", "=~" or "!~"; for the regex ops `name_value` is the pattern."""

    database: str | None = None
    name_op: str | None = None
    name_value: str | None = None
    condition: Expr | None = None
    limit: int | None = None
    offset: int = 0

    def matches_name(self, name: str) -> bool:
        return self.name_op is None or _name_matches(self.name_op, [self.name_value or ""], name)


@dataclass(frozen=True, slots=True)
class ShowFieldKeys:
    from_: list[Source] = field(default_factory=list)
    database: str | None = None
    limit: int | None = None
    offset: int = 0


@dataclass(frozen=True, slots=True)
class ShowTagKeys:
    from_: list[Source] = field(default_factory=list)
    database: str | None = None
    condition: Expr | None = None
    limit: int | None = None
    offset: int = 0


@dataclass(frozen=True, slots=True)
class ShowTagValues:
    """`key_op` is "=", "!=", "=~", "!~" or "IN"; `keys` holds the names, or [pattern] for the regex ops."""

    from_: list[Source]
    key_op: str
    keys: list[str]
    database: str | None = None
    condition: Expr | None = None
    limit: int | None = None
    offset: int = 0

    def matches_key(self, key: str) -> bool:
        return _name_matches(self.key_op, self.keys, key)


@dataclass(frozen=True, slots=True)
class ShowRetentionPolicies:
    database: str | None = None


@dataclass(frozen=True, slots=True)
class ShowSeries:
    from_: list[Source] = field(default_factory=list)
    condition: Expr | None = None
    database: str | None = None
    limit: int | None = None
    offset: int = 0


@dataclass(frozen=True, slots=True)
class CreateDatabase:
    name: str  # as written; the caller validates it as a user name


@dataclass(frozen=True, slots=True)
class DeleteStatement:
    """DELETE (the samples of a time range), DROP SERIES and DROP MEASUREMENT (whole series): what
    the owner removes from the database of the `db` parameter. `keyword` is one of those three;
    `sources` empty means every measurement; `text` is the statement as written (for refusals)."""

    text: str
    keyword: str
    sources: list[Source] = field(default_factory=list)
    condition: Expr | None = None


@dataclass(frozen=True, slots=True)
class UnsupportedStatement:
    """A well-formed statement Tracker does not run; `keyword` is e.g. "DROP DATABASE", "SELECT INTO";
    `database` is the one its ON clause names, if any (rights are checked before it is refused)."""

    text: str
    keyword: str
    database: str | None = None


Statement = (
    SelectStatement
    | ShowDatabases
    | ShowMeasurements
    | ShowFieldKeys
    | ShowTagKeys
    | ShowTagValues
    | ShowRetentionPolicies
    | ShowSeries
    | CreateDatabase
    | DeleteStatement
    | UnsupportedStatement
)


# ---------------------------------------------------------------------------------------------
# Public helpers


def parse_query(text: str, *, now_ns: int, params: dict[str, Any] | None = None) -> list[Statement]:
    """Parse every `;`-separated statement of `text`. Empty statements are skipped (`""` gives [])."""
    return _Parser(text, now_ns, params or {}).statements()


def time_range(condition: Expr | None, now_ns: int) -> tuple[int, int, Expr | None]:
    """(start_ns inclusive, end_ns exclusive, the condition without its time terms).

    Only `time` comparisons AND-ed at the top level count (parentheses around AND groups are fine);
    `time` anywhere else (inside OR, with != or a regex) raises QueryParseError, because dropping it
    would return rows the query excluded. Bounds are clamped to [MIN_TIME, MAX_TIME].
    """
    start, end = MIN_TIME, MAX_TIME
    rest: list[Expr] = []
    for term in _conjuncts(condition):
        bound = _time_bound(term, now_ns)
        if bound is None:
            if any(_is_time_ref(node) for node in walk(term)):
                raise QueryParseError(
                    "time conditions must be AND-ed with the rest of the WHERE clause (time inside OR is not supported)"
                )
            rest.append(term)
            continue
        op, ns = bound
        if op == ">":
            start = max(start, ns + 1)
        elif op == ">=":
            start = max(start, ns)
        elif op == "<":
            end = min(end, ns)
        elif op == "<=":
            end = min(end, ns + 1)
        else:  # "=": exactly one instant
            start, end = max(start, ns), min(end, ns + 1)
    remainder: Expr | None = None
    for term in rest:
        remainder = term if remainder is None else BinaryExpr("AND", remainder, term)
    return max(start, MIN_TIME), min(end, MAX_TIME), remainder


# ---------------------------------------------------------------------------------------------
# Tree helpers (iterative where a tree may be long, e.g. a 1000-term AND chain)


def walk(expr: Expr, into_call: Callable[[Call], bool] = lambda call: True) -> list[Expr]:
    """The nodes of `expr`, parents first, left to right; the arguments of a call only where
    `into_call(call)` says so (the call itself is always a node)."""
    out: list[Expr] = []
    stack = [expr]
    while stack:
        node = stack.pop()
        out.append(node)
        if isinstance(node, BinaryExpr):
            stack.extend((node.rhs, node.lhs))
        elif isinstance(node, Call) and into_call(node):
            stack.extend(reversed(node.args))
    return out


def _tree_depth(expr: Expr) -> int:
    deepest = 0
    stack: list[tuple[Expr, int]] = [(expr, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(node, BinaryExpr):
            stack.extend(((node.lhs, depth + 1), (node.rhs, depth + 1)))
        elif isinstance(node, Call):
            stack.extend((arg, depth + 1) for arg in node.args)
    return deepest


def _conjuncts(condition: Expr | None) -> list[Expr]:
    """The top-level AND terms, left to right, looking through nested ANDs."""
    out: list[Expr] = []
    stack = [condition] if condition is not None else []
    while stack:
        node = stack.pop()
        if isinstance(node, BinaryExpr) and node.op == "AND":
            stack.extend((node.rhs, node.lhs))
        else:
            out.append(node)
    return out


def _is_time_ref(expr: Expr) -> bool:
    return isinstance(expr, VarRef) and expr.name.lower() == "time"


_FLIPPED = {">": "<", ">=": "<=", "<": ">", "<=": ">=", "=": "="}


def _time_bound(term: Expr, now_ns: int) -> tuple[str, int] | None:
    """("op", ns) with `time` on the left for a usable time comparison; None if `term` is no time comparison."""
    if not isinstance(term, BinaryExpr) or term.op not in _COMPARISONS:
        return None
    lhs_time, rhs_time = _is_time_ref(term.lhs), _is_time_ref(term.rhs)
    if lhs_time == rhs_time:  # neither, or `time op time`
        return None
    op = term.op if lhs_time else _FLIPPED.get(term.op, term.op)
    if op not in _FLIPPED:
        raise QueryParseError(f"invalid time comparison operator: {term.op} (use >, >=, <, <= or =)")
    try:
        ns = _time_value(term.rhs if lhs_time else term.lhs, now_ns)
    except ValueError as exc:
        raise QueryParseError(str(exc)) from None
    return op, ns


def _time_value(expr: Expr, now_ns: int) -> int:
    """Evaluate what `time` is compared with to ns since the epoch (ValueError if it is no time)."""
    if isinstance(expr, (TimeLiteral, DurationLiteral)):
        return expr.ns  # a duration compared with time is an absolute epoch offset: 1700000000000ms
    if isinstance(expr, IntegerLiteral):
        return expr.value  # bare integers are ns
    if isinstance(expr, NumberLiteral):
        return int(expr.value)
    if isinstance(expr, StringLiteral):
        return parse_time_string(expr.value)
    if isinstance(expr, Call) and expr.name == "now" and not expr.args:
        return now_ns
    if isinstance(expr, BinaryExpr) and expr.op in ("+", "-"):
        lhs, rhs = _time_value(expr.lhs, now_ns), _time_value(expr.rhs, now_ns)
        return lhs + rhs if expr.op == "+" else lhs - rhs
    raise ValueError(
        "invalid time expression: compare time with now() - 1h, '2015-08-18T00:00:00Z', 1700000000000ms or ns"
    )


def _outside_calls(expr: Expr) -> list[Expr]:
    """Nodes of `expr` that are not inside a function call's arguments."""
    return walk(expr, into_call=lambda call: False)


def _has_aggregate(expr: Expr) -> bool:
    return any(isinstance(node, Call) and node.name in REDUCERS for node in walk(expr))


def _inside_call(expr: Expr, target: Expr) -> bool:
    return not any(node is target for node in _outside_calls(expr))


# ---------------------------------------------------------------------------------------------
# Compiling a SELECT as InfluxDB 1.x does (query/compile.go): its checks, in its order, its words.

_LITERALS = (StringLiteral, IntegerLiteral, NumberLiteral, BooleanLiteral, DurationLiteral, TimeLiteral)
_GO_TYPES = {
    VarRef: "*influxql.VarRef", Wildcard: "*influxql.Wildcard", Call: "*influxql.Call",
    BinaryExpr: "*influxql.BinaryExpr", StringLiteral: "*influxql.StringLiteral",
    IntegerLiteral: "*influxql.IntegerLiteral", NumberLiteral: "*influxql.NumberLiteral",
    BooleanLiteral: "*influxql.BooleanLiteral", DurationLiteral: "*influxql.DurationLiteral",
    TimeLiteral: "*influxql.TimeLiteral", RegexLiteral: "*influxql.RegexLiteral",
}  # fmt: skip


def format_influx_duration(ns: int) -> str:
    """InfluxQL's FormatDuration: the largest unit that divides the duration (1w, 90m, 1500ms)."""
    if ns == 0:
        return "0s"
    for unit, size in (("w", 604_800 * 10**9), ("d", 86_400 * 10**9), ("h", 3_600 * 10**9), ("m", 60 * 10**9),
                       ("s", 10**9), ("ms", 10**6), ("u", 10**3)):  # fmt: skip
        if ns % size == 0:
            return f"{ns // size}{unit}"
    return f"{ns}ns"


def format_expr(expr: Expr) -> str:
    """An expression as InfluxQL writes it back (for error texts that quote one)."""
    if isinstance(expr, VarRef):
        name = expr.name if _IDENT_CHARS.fullmatch(expr.name) and expr.name.upper() not in _KEYWORDS else f'"{expr.name}"'
        return name + (f"::{expr.type_hint}" if expr.type_hint else "")
    if isinstance(expr, Wildcard):
        return "*"
    if isinstance(expr, Call):
        return f"{expr.name}({', '.join(format_expr(arg) for arg in expr.args)})"
    if isinstance(expr, BinaryExpr):
        return f"{format_expr(expr.lhs)} {expr.op} {format_expr(expr.rhs)}"
    if isinstance(expr, StringLiteral):
        return "'" + expr.value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(expr, BooleanLiteral):
        return "true" if expr.value else "false"
    if isinstance(expr, DurationLiteral):
        return format_influx_duration(expr.ns)
    if isinstance(expr, RegexLiteral):
        return "/" + expr.pattern.replace("/", "\\/") + "/"
    if isinstance(expr, TimeLiteral):
        return str(expr.ns)
    return f"{expr.value:.3f}" if isinstance(expr, NumberLiteral) else str(expr.value)  # Go's 'f', 3


class _CompileError(Exception):
    pass


@dataclass(slots=True)
class _Compiled:
    """What compiling the fields found out (InfluxDB's compiledStatement flags)."""

    has_interval: bool
    limit: int | None
    function_calls: int = 0
    only_selectors: bool = True
    has_auxiliary: bool = False
    has_distinct: bool = False
    top_bottom: str | None = None


def compile_error(statement: SelectStatement) -> str | None:
    """InfluxDB's error for a SELECT it would refuse when compiling it, else None."""
    state = _Compiled(statement.group_by_time is not None, statement.limit)
    fields = [item for item in statement.fields if not _is_time_ref(item.expr)]
    try:
        for item in fields:
            _compile_expr(item.expr, state, allow_wildcard=True)
    except _CompileError as exc:
        return str(exc)
    if not fields:
        return "at least 1 non-time field must be queried"
    if state.function_calls > 1 and state.top_bottom:
        return f"selector function {state.top_bottom}() cannot be combined with other functions"
    if state.function_calls == 0:
        if statement.fill in ("none", "linear"):
            return f"fill({statement.fill}) must be used with a function"
        if state.has_interval:
            return "GROUP BY requires at least one aggregate function"
    if state.has_distinct and (state.function_calls != 1 or state.has_auxiliary):
        return "aggregate function distinct() cannot be combined with other functions or fields"
    if state.has_auxiliary:
        if not state.only_selectors:
            return "mixing aggregate and non-aggregate queries is not supported"
        if state.function_calls > 1:
            return "mixing multiple selector functions with tags or fields is not supported"
    return None


def _compile_expr(expr: Expr, state: _Compiled, *, allow_wildcard: bool) -> None:
    if isinstance(expr, VarRef):
        state.has_auxiliary = True
    elif isinstance(expr, (Wildcard, RegexLiteral)):
        state.has_auxiliary = True
        if not allow_wildcard:
            what = "wildcard" if isinstance(expr, Wildcard) else "regex"
            raise _CompileError(f"unable to use {what} in a binary expression")
    elif isinstance(expr, Call):
        if expr.name in MATH_FUNCTIONS:
            _compile_math(expr, state, allow_wildcard)
        else:
            state.function_calls += 1
            _compile_call(expr, state, allow_wildcard)
    elif isinstance(expr, BinaryExpr):
        # Wildcards inside arithmetic are refused, as InfluxDB does (it cannot expand them there).
        lhs_literal, rhs_literal = isinstance(expr.lhs, _LITERALS), isinstance(expr.rhs, _LITERALS)
        if lhs_literal and rhs_literal:
            raise _CompileError("field must contain at least one variable")
        if not lhs_literal:
            _compile_expr(expr.lhs, state, allow_wildcard=False)
        if not rhs_literal:
            _compile_expr(expr.rhs, state, allow_wildcard=False)
    else:
        raise _CompileError("field must contain at least one variable")


def _compile_math(call: Call, state: _Compiled, allow_wildcard: bool) -> None:
    expected = 2 if call.name in _TWO_ARGUMENT_MATH else 1
    if len(call.args) != expected:
        raise _CompileError(f"invalid number of arguments for {call.name}, expected {expected}, got {len(call.args)}")
    variables = [arg for arg in call.args if not isinstance(arg, _LITERALS)]
    if not variables:
        raise _CompileError("field must contain at least one variable")
    for arg in variables:
        _compile_expr(arg, state, allow_wildcard=allow_wildcard)


def _compile_symbol(name: str, arg: Expr, allow_wildcard: bool = True) -> None:
    """Must be a field: a name, or `*` / a /regex/ where they can be expanded (not inside arithmetic)."""
    if isinstance(arg, Wildcard) and not allow_wildcard:
        raise _CompileError(f"unsupported expression with wildcard: {name}()")
    if isinstance(arg, RegexLiteral) and not allow_wildcard:
        raise _CompileError(f"unsupported expression with regex field: {name}()")
    if not isinstance(arg, (VarRef, Wildcard, RegexLiteral)):
        raise _CompileError(f"expected field argument in {name}()")


def _argument_count(call: Call, low: int, high: int) -> None:
    got = len(call.args)
    if low == high and got != low:
        raise _CompileError(f"invalid number of arguments for {call.name}, expected {low}, got {got}")
    if not low <= got <= high:
        raise _CompileError(
            f"invalid number of arguments for {call.name}, expected at least {low} but no more than {high}, got {got}"
        )


def _duration_argument(call: Call, message: str) -> None:
    if len(call.args) == 2:
        unit = call.args[1]
        if not isinstance(unit, DurationLiteral):
            raise _CompileError(message.format(type=_GO_TYPES.get(type(unit), "influxql.Expr")))
        if unit.ns <= 0:
            raise _CompileError(f"duration argument must be positive, got {format_influx_duration(unit.ns)}")


def _compile_call(call: Call, state: _Compiled, allow_wildcard: bool) -> None:
    name, args = call.name, call.args
    if name in TRANSFORMATIONS:
        if name in ("derivative", "non_negative_derivative", "elapsed"):
            _argument_count(call, 1, 2)
            _duration_argument(call, f"second argument to {name} must be a duration, got {{type}}")
        elif name == "moving_average":
            _argument_count(call, 2, 2)
            window = args[1]
            if not isinstance(window, IntegerLiteral):
                raise _CompileError(
                    f"second argument for moving_average must be an integer, got {_GO_TYPES.get(type(window))}"
                )
            if window.value <= 1:
                raise _CompileError(f"moving_average window must be greater than 1, got {window.value}")
        else:
            _argument_count(call, 1, 1)
        state.only_selectors = False
        if isinstance(args[0], Call):
            if not state.has_interval:
                raise _CompileError(f"{name} aggregate requires a GROUP BY interval")
            _compile_expr(args[0], state, allow_wildcard=allow_wildcard)
        else:
            if state.has_interval:
                raise _CompileError(f"aggregate function required inside the call to {name}")
            _compile_symbol(name, args[0], allow_wildcard)
    elif name == "integral":
        _argument_count(call, 1, 2)
        _duration_argument(call, "second argument must be a duration")
        state.only_selectors = False
        _compile_symbol(name, args[0], allow_wildcard)
    elif name == "percentile":
        _argument_count(call, 2, 2)
        if not isinstance(args[1], (IntegerLiteral, NumberLiteral)):
            raise _CompileError("expected float argument in percentile()")
        _compile_symbol(name, args[0], allow_wildcard)
    elif name == "sample":
        _argument_count(call, 2, 2)
        size = args[1]
        if not isinstance(size, IntegerLiteral):
            raise _CompileError("expected integer argument in sample()")
        if size.value <= 0:
            raise _CompileError(f"sample window must be greater than 1, got {size.value}")
        _compile_symbol(name, args[0], allow_wildcard)
    elif name == "distinct":
        _compile_distinct(args, state, nested=False)
    elif name in ("top", "bottom"):
        _compile_top_bottom(call, state)
    elif name in REDUCERS:  # the plain ones: one field each
        if name not in SELECTOR_FUNCTIONS:
            state.only_selectors = False
        _argument_count(call, 1, 1)
        if name == "count" and isinstance(args[0], Call) and args[0].name == "distinct":
            _compile_distinct(args[0].args, state, nested=True)
        else:
            _compile_symbol(name, args[0], allow_wildcard)
    else:
        raise _CompileError(f"undefined function {name}()")


def _compile_distinct(args: tuple[Expr, ...], state: _Compiled, *, nested: bool) -> None:
    if not args:
        raise _CompileError("distinct function requires at least one argument")
    if len(args) != 1:
        raise _CompileError("distinct function can only have one argument")
    if not isinstance(args[0], VarRef):
        raise _CompileError("expected field argument in distinct()")
    state.has_distinct = state.has_distinct or not nested
    state.only_selectors = False


def _compile_top_bottom(call: Call, state: _Compiled) -> None:
    name, args = call.name, call.args
    if state.top_bottom:
        raise _CompileError(f"selector function {state.top_bottom}() cannot be combined with other functions")
    if len(args) < 2:
        raise _CompileError(f"invalid number of arguments for {name}, expected at least 2, got {len(args)}")
    limit = args[-1]
    if not isinstance(limit, IntegerLiteral):
        raise _CompileError(f"expected integer as last argument in {name}(), found {format_expr(limit)}")
    if limit.value <= 0:
        raise _CompileError(f"limit ({limit.value}) in {name} function must be at least 1")
    if state.limit and limit.value > state.limit:
        raise _CompileError(
            f"limit ({limit.value}) in {name} function can not be larger than the LIMIT ({state.limit}) in the select statement"
        )
    if not isinstance(args[0], VarRef):
        raise _CompileError(f"expected first argument to be a field in {name}(), found {format_expr(args[0])}")
    for tag in args[1:-1]:
        if not isinstance(tag, VarRef):
            raise _CompileError(f"only fields or tags are allowed in {name}(), found {format_expr(tag)}")
    state.top_bottom = name


def _without_time_fields(fields: list[FieldExpr]) -> tuple[list[FieldExpr], str | None]:
    """The fields without `time` (the time column is always there), and the alias it gives that
    column. InfluxDB's RewriteTimeFields, including its skip: after a `time` it removes, it does not
    look at the next field, so `SELECT time, time AS b, x` keeps b (a column of nulls)."""
    kept = list(fields)
    alias: str | None = None
    i = 0
    while i < len(kept):
        expr = kept[i].expr
        if isinstance(expr, VarRef) and expr.name == "time":  # as written: TIME is some other field
            alias = kept[i].alias
            del kept[i]
        i += 1
    return kept, alias


def _column_name(expr: Expr) -> str:
    # InfluxDB names math after the names it combines: mean(a) / mean(b) -> "mean_mean".
    names: list[str] = []
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, VarRef):
            names.append(node.name)
        elif isinstance(node, Call):
            names.append(node.name)
        elif isinstance(node, Wildcard):
            names.append("*")
        elif isinstance(node, BinaryExpr):
            stack.extend((node.rhs, node.lhs))
    return "_".join(names)


def _name_matches(op: str, values: list[str], name: str) -> bool:
    if op in ("=~", "!~"):
        found = compile_regex(values[0]).search(name) is not None  # checked at parse time
        return found if op == "=~" else not found
    if op == "!=":
        return name not in values
    return name in values  # "=" and "IN"


# ---------------------------------------------------------------------------------------------
# Lexer

_EOF, _IDENT, _KEYWORD, _STRING, _INTEGER, _NUMBER, _DURATION, _REGEX, _PARAM, _OP = (
    "EOF", "IDENT", "KEYWORD", "STRING", "INTEGER", "NUMBER", "DURATION", "REGEX", "PARAM", "OP"
)  # fmt: skip

# InfluxQL 1.x keywords: a bare word in this set is a keyword, never an identifier (quote it to use it as a name).
_KEYWORDS = frozenset(
    """ALL ALTER ANALYZE AND ANY AS ASC BEGIN BY CARDINALITY CREATE CONTINUOUS DATABASE DATABASES DEFAULT
    DELETE DESC DESTINATIONS DIAGNOSTICS DISTINCT DROP DURATION END EVERY EXACT EXPLAIN FALSE FIELD FOR
    FROM GRANT GRANTS GROUP GROUPS IN INSERT INTO KEY KEYS KILL LIMIT MEASUREMENT MEASUREMENTS NAME
    OFFSET ON OR ORDER PASSWORD POLICY POLICIES PRIVILEGES QUERIES QUERY READ REPLICATION RESAMPLE
    RETENTION REVOKE SELECT SERIES SET SHARD SHARDS SHOW SLIMIT SOFFSET STATS SUBSCRIPTION SUBSCRIPTIONS TAG
    TO TRUE USER USERS VALUES WHERE WITH WRITE""".split()
)
_OPERATORS_2 = ("::", "!=", "<>", "<=", ">=", "=~", "!~")
_OPERATORS_1 = frozenset("(),;.*+-/%=<>&|^")
_SPACE = re.compile(r"(?:\s+|--[^\n]*)*")
_SPACE_AND_BLOCK_COMMENTS = re.compile(r"(?:\s+|--[^\n]*|/\*.*?\*/)*", re.DOTALL)
_IDENT_CHARS = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PARAM_NAME = re.compile(r"[A-Za-z0-9_]+")
_NUMBER_CHARS = re.compile(r"[0-9]+(\.[0-9]*)?|\.[0-9]+")
_DURATION_TAIL = re.compile(r"[A-Za-z0-9µμ]*")
_DIGITS = frozenset("0123456789")  # ASCII only: str.isdigit() also accepts "¹" and "٣"
_STRING_ESCAPES = {"n": "\n", "\\": "\\", "'": "'", '"': '"'}


@dataclass(slots=True)
class _Token:
    kind: str
    value: Any  # name / keyword (upper) / decoded string / operator / int / float / ns
    start: int
    end: int


def _line_and_char(text: str, pos: int) -> tuple[int, int]:
    return text.count("\n", 0, pos) + 1, pos - (text.rfind("\n", 0, pos) + 1) + 1


def _error_at(text: str, message: str, pos: int) -> QueryParseError:
    line, char = _line_and_char(text, pos)
    return QueryParseError(f"{message} at line {line}, char {char}")


class _Lexer:
    """Scans one token at a time from `pos`, so the parser can ask for a regex where one may start."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        # the last two tokens, which place the end of the text the way InfluxDB does
        self.last: _Token | None = None
        self.before_last: _Token | None = None

    def next(self, *, regex_ok: bool = False) -> _Token:
        text = self.text
        # Where a regex may start, "/*" must stay a regex, not a comment.
        skip = _SPACE if regex_ok else _SPACE_AND_BLOCK_COMMENTS
        pos = skip.match(text, self.pos).end()
        if pos >= len(text):
            self.pos = pos
            return _Token(_EOF, "", self._eof_position(), pos)
        self.before_last, self.last = self.last, self._scan(pos, regex_ok)
        token = self.last
        self.pos = token.end
        return token

    def _eof_position(self) -> int:
        """Where InfluxDB's errors place the end of the text: right after the last token (the end of
        the text when nothing follows it), one further where its scanner reads a character ahead
        and counts the end once: after a name or keyword, a call's `(`, `,`, `.`, `=~` and `!~`."""
        last = self.last
        if last is None:
            return len(self.text)
        at = last.end if last.end < len(self.text) else len(self.text)
        reads_ahead = last.kind in (_IDENT, _KEYWORD) or (
            last.kind == _OP
            and (last.value in (",", ".", "=~", "!~") or (last.value == "(" and self.before_last is not None and self.before_last.kind == _IDENT))
        )  # fmt: skip
        return at + 1 if reads_ahead else at

    def _scan(self, pos: int, regex_ok: bool) -> _Token:
        text = self.text
        ch = text[pos]
        ch = text[pos]
        if regex_ok and ch == "/":
            token = self._regex(pos)
        elif ch.isascii() and (ch.isalpha() or ch == "_"):
            end = _IDENT_CHARS.match(text, pos).end()
            word = text[pos:end]
            upper = word.upper()
            token = _Token(_KEYWORD, upper, pos, end) if upper in _KEYWORDS else _Token(_IDENT, word, pos, end)
        elif ch == '"':
            value, end = self._quoted(pos, '"')
            token = _Token(_IDENT, value, pos, end)
        elif ch == "'":
            value, end = self._quoted(pos, "'")
            token = _Token(_STRING, value, pos, end)
        elif ch in _DIGITS or (ch == "." and text[pos + 1 : pos + 2] in _DIGITS):
            token = self._number(pos)
        elif ch == "$":
            token = self._param(pos)
        elif text.startswith(_OPERATORS_2, pos):
            token = _Token(_OP, text[pos : pos + 2], pos, pos + 2)
        elif ch in _OPERATORS_1:
            token = _Token(_OP, ch, pos, pos + 1)
        else:
            raise _error_at(text, f"found {ch}, expected a keyword, identifier, literal or operator", pos)
        return token

    def _quoted(self, start: int, quote: str) -> tuple[str, int]:
        text, out, i = self.text, [], start + 1
        while i < len(text):
            ch = text[i]
            if ch == quote:
                return "".join(out), i + 1
            if ch == "\n":
                break
            if ch == "\\":
                escaped = _STRING_ESCAPES.get(text[i + 1 : i + 2])
                if escaped is None:
                    raise _error_at(text, f"bad escape {text[i:i + 2]!r} (use \\\\, \\{quote} or \\n)", i)
                out.append(escaped)
                i += 2
                continue
            out.append(ch)
            i += 1
        what = "string" if quote == "'" else "quoted identifier"
        raise _error_at(text, f"unterminated {what} starting with {text[start:start + 20]}", start)

    def _regex(self, start: int) -> _Token:
        text, out, i = self.text, [], start + 1
        while i < len(text):
            ch = text[i]
            if ch == "\\" and i + 1 < len(text):
                # InfluxQL unescapes only "\/"; every other escape belongs to the pattern.
                out.append("/" if text[i + 1] == "/" else text[i : i + 2])
                i += 2
                continue
            if ch == "/":
                return _Token(_REGEX, "".join(out), start, i + 1)
            out.append(ch)
            i += 1
        # InfluxDB's words, placed one character before the regex (its scanner's position, kept for the same text)
        raise _error_at(text, "bad regex: ", max(0, start - 1))

    def _number(self, start: int) -> _Token:
        text = self.text
        match = _NUMBER_CHARS.match(text, start)
        end = match.end()
        literal = text[start:end]
        is_integer = "." not in literal
        if is_integer and end < len(text) and (text[end].isalpha() or text[end] in "µμ"):
            # digits directly followed by letters: a duration, validated as a whole ("10x" is an error)
            end = _DURATION_TAIL.match(text, end).end()
            literal = text[start:end]
            try:
                return _Token(_DURATION, parse_duration(literal), start, end)
            except ValueError as exc:  # InfluxDB's words, without a position
                if str(exc).startswith("overflowed"):
                    raise QueryParseError(f"{exc}: choose a smaller duration or INF") from None
                raise QueryParseError("invalid duration") from None
        if is_integer:
            value = int(literal)
            if value > _INT64_MAX:
                raise _error_at(text, f"unable to parse integer {literal}: out of range", start)
            return _Token(_INTEGER, value, start, end)
        return _Token(_NUMBER, float(literal), start, end)

    def _param(self, start: int) -> _Token:
        text = self.text
        if text[start + 1 : start + 2] == '"':
            name, end = self._quoted(start + 1, '"')
            return _Token(_PARAM, name, start, end)
        match = _PARAM_NAME.match(text, start + 1)
        if match is None:
            raise QueryParseError("empty bound parameter")  # InfluxDB's words, no position
        return _Token(_PARAM, match[0], start, match.end())


# ---------------------------------------------------------------------------------------------
# Parser

_PRECEDENCE = {
    "OR": 1,
    "AND": 2,
    "=": 4, "!=": 4, "<>": 4, "<": 4, "<=": 4, ">": 4, ">=": 4, "=~": 4, "!~": 4,
    "+": 5, "-": 5,
    "*": 6, "/": 6, "%": 6,
}  # fmt: skip
_STATEMENT_KEYWORDS = "SELECT, DELETE, SHOW, CREATE, DROP, EXPLAIN, GRANT, REVOKE, ALTER, SET, KILL"
_OTHER_STATEMENTS = frozenset({"DELETE", "DROP", "EXPLAIN", "GRANT", "REVOKE", "ALTER", "SET", "KILL"})
# Words that end the descriptive keyword of an UnsupportedStatement ("DROP DATABASE", not "DROP DATABASE ON").
_CLAUSE_WORDS = frozenset({"ON", "FROM", "WHERE", "WITH", "TO", "FOR", "INTO", "IN", "LIMIT", "SELECT"})
_SHOW_WHAT = (
    "CONTINUOUS, DATABASES, DIAGNOSTICS, FIELD, GRANTS, MEASUREMENT, MEASUREMENTS, QUERIES, "
    "RETENTION, SERIES, SHARD, SHARDS, STATS, SUBSCRIPTIONS, TAG, USERS"
)
_OPERAND = "identifier, string, number, bool"


class _Parser:
    def __init__(self, text: str, now_ns: int, params: dict[str, Any]) -> None:
        self.text = text
        self.now_ns = now_ns
        self.params = params
        self.lexer = _Lexer(text)
        self.tok = self.lexer.next()
        self.paren_depth = 0
        self.expr_depth = 0  # backstop: _expr recursion also grows through operator precedence levels
        # Inside a SELECT's WHERE: time compared with what is no time, in InfluxDB's words. InfluxDB
        # parses such a statement and fails it when it runs (the statements before it still run).
        self.time_errors: list[str] | None = None

    # -- token helpers -------------------------------------------------------------------------

    def _advance(self, *, regex_ok: bool = False) -> _Token:
        previous = self.tok
        self.tok = self.lexer.next(regex_ok=regex_ok)
        return previous

    def _reset(self, tok: _Token) -> None:
        """Back up so `tok` is current again (the lexer is positioned right after it)."""
        self.tok = tok
        self.lexer.pos = tok.end

    def _is_kw(self, *words: str) -> bool:
        return self.tok.kind == _KEYWORD and self.tok.value in words

    def _is_op(self, *ops: str) -> bool:
        return self.tok.kind == _OP and self.tok.value in ops

    def _is_ident(self, word: str) -> bool:
        return self.tok.kind == _IDENT and self.tok.value.lower() == word

    def _expect_kw(self, word: str, *, regex_ok: bool = False) -> None:
        if not self._is_kw(word):
            raise self._expected(word)
        self._advance(regex_ok=regex_ok)

    def _expect_op(self, op: str) -> None:
        if not self._is_op(op):
            raise self._expected(op)
        self._advance()

    def _error(self, message: str, pos: int | None = None) -> QueryParseError:
        return _error_at(self.text, message, self.tok.start if pos is None else pos)

    def _expected(self, expected: str) -> QueryParseError:
        tok = self.tok
        found = "EOF" if tok.kind == _EOF else self.text[tok.start : tok.end]
        if len(found) > 60:
            found = found[:57] + "..."
        return self._error(f"found {found}, expected {expected}", tok.start)

    def _identifier(self, expected: str = "identifier") -> str:
        if self.tok.kind == _IDENT:
            return self._advance().value
        if self.tok.kind == _PARAM:
            return self._param_identifier(self._advance())
        raise self._expected(expected)

    # -- statements ----------------------------------------------------------------------------

    def statements(self) -> list[Statement]:
        out: list[Statement] = []
        while True:
            while self._is_op(";"):
                self._advance()
            if self.tok.kind == _EOF:
                return out
            out.append(self._statement())
            if not (self._is_op(";") or self.tok.kind == _EOF):
                raise self._expected(";")

    def _statement(self) -> Statement:
        start = self.tok
        if self._is_kw("SELECT"):
            return self._select(start)
        if self._is_kw("SHOW"):
            return self._show(start)
        if self._is_kw("CREATE"):
            self._advance()
            if not self._is_kw("DATABASE"):
                return self._unsupported(start)
            self._advance()
            name = self._identifier()
            if self._is_kw("WITH"):  # DURATION / REPLICATION / SHARD DURATION / NAME: we keep no policies
                self._skip_to_statement_end()
            return CreateDatabase(name)
        if self._is_kw("DELETE", "DROP"):
            statement = self._delete(start)
            if statement is not None:
                return statement
        if start.kind == _KEYWORD and start.value in _OTHER_STATEMENTS:
            return self._unsupported(start)
        raise self._expected(_STATEMENT_KEYWORDS)

    def _delete(self, start: _Token) -> DeleteStatement | None:
        """DELETE FROM/WHERE, DROP SERIES FROM/WHERE, DROP MEASUREMENT name; None for another DROP."""
        self._advance()
        if start.value == "DROP":
            if self._is_kw("MEASUREMENT"):
                self._advance()
                name = self._identifier()
                return DeleteStatement(self.text[start.start : self.tok.start].rstrip(), "DROP MEASUREMENT", [Source(name)])
            if not self._is_kw("SERIES"):
                self._reset(start)
                return None
            self._advance()
        keyword = "DELETE" if start.value == "DELETE" else "DROP SERIES"
        if not self._is_kw("FROM", "WHERE"):
            raise self._expected("FROM, WHERE")
        sources = self._optional_from()
        for source in sources:  # InfluxDB's checks and words, without a position
            if source.retention_policy is not None:
                raise QueryParseError("retention policy not supported at line 1, char 1")
            if source.database is not None:
                raise QueryParseError("database not supported at line 1, char 1")
        condition = self._optional_where()
        return DeleteStatement(self.text[start.start : self.tok.start].rstrip(), keyword, sources, condition)

    def _unsupported(self, start: _Token) -> UnsupportedStatement:
        self._reset(start)
        words: list[str] = []
        last_end = start.end
        while self.tok.kind == _KEYWORD and len(words) < 4 and not (words and self.tok.value in _CLAUSE_WORDS):
            token = self._advance()
            words.append(token.value)
            last_end = token.end
        keyword = "SELECT INTO" if words[0] == "SELECT" else " ".join(words)
        databases: list[str] = []
        end = self._skip_to_statement_end(last_end, databases)
        return UnsupportedStatement(self.text[start.start : end], keyword, databases[0] if databases else None)

    def _skip_to_statement_end(self, last_end: int = 0, on_databases: list[str] | None = None) -> int:
        """Consume tokens up to `;`/EOF (they must still scan); returns where the last one ended.
        The names after ON keywords are added to `on_databases` when given."""
        while not (self._is_op(";") or self.tok.kind == _EOF):
            # Where InfluxQL allows a regex, scan one, so a ';' or quote inside it does not split the statement.
            regex_ok = self._is_op("=~", "!~", ",") or self._is_kw("FROM")
            after_on = self._is_kw("ON")
            last_end = self._advance(regex_ok=regex_ok).end
            if after_on and on_databases is not None and self.tok.kind in (_IDENT, _STRING):
                on_databases.append(self.tok.value)
        return last_end

    def _select(self, start: _Token) -> Statement:
        self._advance(regex_ok=True)  # SELECT /regex/: a field may start with one
        fields = [self._field()]
        while self._is_op(","):
            self._advance(regex_ok=True)
            fields.append(self._field())
        if self._is_kw("INTO"):
            return self._unsupported(start)
        self._expect_kw("FROM", regex_ok=True)
        sources_at = self.tok.start
        sources = self._sources()
        if len(sources) > 1 and any(source.query is not None for source in sources):
            raise self._error("a subquery must be the only source of its SELECT", sources_at)
        outer_time_errors, self.time_errors = self.time_errors, []
        condition = self._optional_where()
        time_errors, self.time_errors = self.time_errors, outer_time_errors
        group_by_time, group_by_tags = self._group_by()
        fill = self._fill()
        order_desc = self._order_by()
        limit, offset = self._limit_offset()
        slimit, soffset = self._series_limit_offset()
        zone = self._time_zone()
        fields, time_alias = _without_time_fields(fields)
        statement = SelectStatement(
            time_column=time_alias or "time",
            fields=fields,
            sources=sources,
            condition=condition,
            group_by_time=group_by_time,
            group_by_tags=group_by_tags,
            fill=fill,
            order_desc=order_desc,
            limit=limit,
            offset=offset,
            slimit=slimit,
            soffset=soffset,
            time_zone=zone,
        )
        self._validate_select(statement)
        inner = statement.sources[0].query
        if inner is not None and inner.compile_error:
            error: str | None = inner.compile_error
        else:  # as InfluxDB: the condition is looked at before the fields
            error = time_errors[0] if time_errors else compile_error(statement)
        if error is not None:
            statement = dataclasses.replace(statement, compile_error=error)
        return statement

    def _field(self) -> FieldExpr:
        if self._is_op("*"):
            self._advance()
            return FieldExpr(Wildcard(self._type_hint()))
        tok = self.tok
        if tok.kind == _REGEX:
            # SELECT /regex/: the fields and tags whose names match, like `*`. As InfluxDB: a regex is a
            # field of its own (no math, no ::hint), and its alias is accepted but names nothing.
            self._advance()
            regex = self._regex_literal(tok.value, tok.start)
            if self._is_kw("AS"):
                self._advance()
                self._identifier()
            return FieldExpr(regex)
        start = self.tok.start
        expr = self._expr()
        self._check_depth(expr, start)
        comparison = next((n for n in walk(expr) if isinstance(n, BinaryExpr) and n.op not in _ARITHMETIC), None)
        if comparison is not None:  # InfluxDB's words, the position inside them
            line, char = _line_and_char(self.text, start)
            raise QueryParseError(
                f"invalid operator {comparison.op} in SELECT clause at line {line}, char {char}; "
                "operator is intended for WHERE clause"
            )
        alias = None
        if self._is_kw("AS"):
            self._advance()
            alias = self._identifier()
        return FieldExpr(expr, alias)

    def _sources(self) -> list[Source]:
        sources = [self._source()]
        while self._is_op(","):
            self._advance(regex_ok=True)
            sources.append(self._source())
        return sources

    def _source(self) -> Source:
        if self._is_op("("):
            return self._subquery()
        # Up to three dot-separated segments: [db.][rp.]measurement; `db..m` leaves rp empty.
        segments: list[str] = []
        regex: RegexLiteral | None = None
        while True:
            tok = self.tok
            if tok.kind == _REGEX:
                self._advance()
                regex = self._regex_literal(tok.value, tok.start)
                segments.append("")
                break  # a regex can only be the measurement part
            if tok.kind in (_IDENT, _PARAM):
                segments.append(self._identifier())
            elif self._is_op(".") and segments:
                segments.append("")
            else:
                raise self._expected("identifier")
            if not self._is_op("."):
                break
            if len(segments) == 3:
                raise self._error("too many segments in measurement name (use \"db\".\"rp\".\"measurement\")")
            self._advance(regex_ok=True)
        *prefix, name = segments
        database = prefix[0] if len(prefix) == 2 else None
        retention_policy = prefix[-1] if prefix else None
        return Source(
            name=None if regex is not None else name,
            regex=regex,
            database=database or None,
            retention_policy=retention_policy or None,
        )

    def _subquery(self) -> Source:
        self._enter_parens()
        self._advance()  # (
        start = self.tok
        if not self._is_kw("SELECT"):
            raise self._expected("SELECT")
        inner = self._select(start)
        if not isinstance(inner, SelectStatement):  # SELECT ... INTO
            raise self._error("SELECT INTO is not allowed in a subquery", start.start)
        self._expect_op(")")
        self.paren_depth -= 1
        return Source(query=inner)

    def _optional_where(self) -> Expr | None:
        if not self._is_kw("WHERE"):
            return None
        self._advance()
        start = self.tok.start
        condition = self._expr()
        self._check_depth(condition, start)
        self._validate_condition(condition, start)
        return condition

    def _group_by(self) -> tuple[tuple[int, int] | None, list[str]]:
        if not self._is_kw("GROUP"):
            return None, []
        self._advance()
        self._expect_kw("BY")
        interval: tuple[int, int] | None = None
        seen_time = False
        tags: list[str] = []
        while True:
            if self._is_ident("time") and self.text[self.tok.start] != '"':
                if seen_time:
                    raise self._error("multiple time dimensions in GROUP BY")
                seen_time = True
                interval = self._group_by_time()
            elif self._is_op("*"):
                self._advance()
                tags.append("*")
            elif self.tok.kind in (_IDENT, _PARAM):
                tags.append(self._identifier())
                self._type_hint()  # `"host"::tag` names the same tag
            else:
                raise self._expected("identifier, string, number, bool")  # InfluxDB's words
            if not self._is_op(","):
                return interval, tags
            self._advance()

    def _group_by_time(self) -> tuple[int, int] | None:
        """time(interval[, offset]); None for an interval of 0 or less, which InfluxDB 1.x answers as if
        there were no GROUP BY time (without an offset: with one it fails dividing by zero)."""
        self._advance()
        self._expect_op("(")
        pos = self.tok.start
        negative = self._is_op("-")
        if negative:
            self._advance()
        interval = -self._duration() if negative else self._duration()
        offset = 0
        if self._is_op(","):
            self._advance()
            negative = self._is_op("-")
            if negative:
                self._advance()
            offset = -self._duration() if negative else self._duration()
        self._expect_op(")")
        if interval <= 0:
            if offset:
                raise self._error("GROUP BY time() interval must be greater than 0", pos)
            return None
        return interval, offset % interval  # InfluxDB normalises the offset into [0, interval)

    def _duration(self) -> int:
        tok = self.tok
        if tok.kind == _DURATION:
            return self._advance().value
        if tok.kind == _PARAM:
            literal = self._param_literal(self._advance())
            if isinstance(literal, DurationLiteral):
                return literal.ns
            if isinstance(literal, StringLiteral):
                try:
                    return parse_duration(literal.value)
                except ValueError as exc:
                    raise self._error(str(exc), tok.start) from None
        raise self._expected("duration")

    def _fill(self) -> str | float | None:
        """fill(...), read as InfluxDB does: an expression that must be a call of one argument, the
        option's name as written (lower case only) or a number; its errors have no position."""
        if not self._is_ident("fill"):
            return None
        expr = self._expr()
        if not isinstance(expr, Call):
            raise QueryParseError("fill must be a function call")
        if len(expr.args) != 1:
            raise QueryParseError("fill requires an argument, e.g.: 0, null, none, previous, linear")
        (argument,) = expr.args
        if isinstance(argument, VarRef) and argument.type_hint is None and argument.name in FILL_OPTIONS:
            return argument.name
        if isinstance(argument, (IntegerLiteral, NumberLiteral)) and not isinstance(argument.value, bool):
            return float(argument.value)
        raise QueryParseError("expected number argument in fill()")

    def _order_by(self) -> bool:
        if not self._is_kw("ORDER"):
            return False
        self._advance()
        self._expect_kw("BY")
        if not self._is_kw("ASC", "DESC"):
            if self.tok.kind != _IDENT:
                raise self._expected("identifier, ASC, DESC")
            if not self._is_ident("time"):
                raise QueryParseError("only ORDER BY time supported at this time")  # no position: InfluxDB's
            self._advance()
        descending = self._is_kw("DESC")
        if self._is_kw("ASC", "DESC"):
            self._advance()
        if self._is_op(","):
            raise QueryParseError("only ORDER BY time supported at this time")
        return descending

    def _limit_offset(self) -> tuple[int | None, int]:
        limit: int | None = None
        offset = 0
        if self._is_kw("LIMIT"):
            self._advance()
            limit = self._integer() or None  # LIMIT 0 means no limit, as in InfluxDB
        if self._is_kw("OFFSET"):
            self._advance()
            offset = self._integer()
        return limit, offset

    def _integer(self) -> int:
        if self.tok.kind == _PARAM:
            tok = self._advance()
            literal = self._param_literal(tok)
            if isinstance(literal, IntegerLiteral) and literal.value >= 0:
                return literal.value
            raise self._error("found a bind parameter that is no integer, expected integer", tok.start)
        if self.tok.kind != _INTEGER:
            raise self._expected("integer")
        return self._advance().value

    def _series_limit_offset(self) -> tuple[int, int]:
        """SLIMIT and SOFFSET, in that order (0: not given, as in InfluxDB)."""
        slimit = soffset = 0
        if self._is_kw("SLIMIT"):
            self._advance()
            slimit = self._integer()
        if self._is_kw("SOFFSET"):
            self._advance()
            soffset = self._integer()
        return slimit, soffset

    def _time_zone(self) -> str | None:
        """`tz('Europe/Berlin')`: the zone's name, checked here as InfluxDB checks it (a 400)."""
        if not self._is_ident("tz"):
            return None
        name = self._advance()
        if not (self._is_op("(") and self.tok.start == name.end):
            raise QueryParseError("tz must be a function call")
        self._advance()
        if self.tok.kind != _STRING:
            raise QueryParseError("expected string argument in tz()")
        zone = self._advance().value
        try:
            timebuckets.load_zone(zone)
        except timebuckets.UnknownZone as exc:
            raise QueryParseError(str(exc)) from None
        self._expect_op(")")
        return str(zone)

    def _optional_on(self) -> str | None:
        if not self._is_kw("ON"):
            return None
        self._advance()
        return self._identifier()

    def _optional_from(self) -> list[Source]:
        if not self._is_kw("FROM"):
            return []
        self._advance(regex_ok=True)
        return self._sources()

    def _show(self, start: _Token) -> Statement:
        self._advance()
        if self._is_kw("DATABASES"):
            self._advance()
            return ShowDatabases()
        if self._is_kw("MEASUREMENTS"):
            self._advance()
            return self._show_measurements()
        if self._is_kw("RETENTION"):
            self._advance()
            self._expect_kw("POLICIES")
            return ShowRetentionPolicies(database=self._optional_on())
        if self._is_kw("FIELD"):
            self._advance()
            if not self._is_kw("KEYS"):  # SHOW FIELD KEY CARDINALITY and friends
                return self._unsupported(start)
            self._advance()
            database = self._optional_on()
            from_ = self._optional_from()
            limit, offset = self._limit_offset()
            return ShowFieldKeys(from_=from_, database=database, limit=limit, offset=offset)
        if self._is_kw("TAG"):
            self._advance()
            if self._is_kw("KEYS"):
                self._advance()
                database = self._optional_on()
                from_ = self._optional_from()
                condition = self._optional_where()
                limit, offset = self._limit_offset()
                self._series_limit_offset()  # InfluxDB 1.6 takes SLIMIT/SOFFSET here, and answers as without them
                return ShowTagKeys(from_=from_, database=database, condition=condition, limit=limit, offset=offset)
            if self._is_kw("VALUES"):
                self._advance()
                if self._is_kw("CARDINALITY", "EXACT"):
                    return self._unsupported(start)
                return self._show_tag_values()
            return self._unsupported(start)
        if self._is_kw("SERIES"):
            self._advance()
            if self._is_kw("CARDINALITY", "EXACT"):
                return self._unsupported(start)
            database = self._optional_on()
            from_ = self._optional_from()
            condition = self._optional_where()
            limit, offset = self._limit_offset()
            return ShowSeries(from_=from_, condition=condition, database=database, limit=limit, offset=offset)
        if self.tok.kind == _KEYWORD:  # SHOW USERS, SHOW STATS, SHOW SHARDS ...
            return self._unsupported(start)
        raise self._expected(_SHOW_WHAT)

    def _show_measurements(self) -> ShowMeasurements:
        database = self._optional_on()
        name_op = name_value = None
        if self._is_kw("WITH"):
            self._advance()
            self._expect_kw("MEASUREMENT")
            name_op, values = self._name_filter(allow_in=False)
            name_value = values[0]
        condition = self._optional_where()
        limit, offset = self._limit_offset()
        return ShowMeasurements(
            database=database, name_op=name_op, name_value=name_value, condition=condition, limit=limit, offset=offset
        )

    def _show_tag_values(self) -> ShowTagValues:
        database = self._optional_on()
        from_ = self._optional_from()
        self._expect_kw("WITH")
        self._expect_kw("KEY")
        key_op, keys = self._name_filter(allow_in=True)
        condition = self._optional_where()
        limit, offset = self._limit_offset()
        return ShowTagValues(
            from_=from_, key_op=key_op, keys=keys, database=database, condition=condition, limit=limit, offset=offset
        )

    def _name_filter(self, *, allow_in: bool) -> tuple[str, list[str]]:
        """`= name`, `!= name`, `=~ /re/`, `!~ /re/`, or `IN (a, b)`: (op, names or [pattern])."""
        if self._is_op("=~", "!~"):
            op = self._advance(regex_ok=True).value
            return op, [self._regex_operand().pattern]
        if self._is_op("=", "!=", "<>"):
            op = "!=" if self._advance().value != "=" else "="
            return op, [self._name()]
        if allow_in and self._is_kw("IN"):
            self._advance()
            self._expect_op("(")
            names = [self._name()]
            while self._is_op(","):
                self._advance()
                names.append(self._name())
            self._expect_op(")")
            return "IN", names
        raise self._expected("IN, =, =~" if allow_in else "=, =~")  # InfluxDB's words

    def _name(self) -> str:
        """A measurement or tag key name: identifier or (leniently) a string."""
        if self.tok.kind == _STRING:
            return self._advance().value
        return self._identifier("identifier")  # InfluxDB's words (a string is taken too)

    # -- expressions ---------------------------------------------------------------------------

    def _expr(self, min_precedence: int = 1) -> Expr:
        self.expr_depth += 1
        try:
            if self.expr_depth > 3 * MAX_PAREN_DEPTH:
                raise self._error("expression is nested too deeply")
            lhs = self._unary()
            chain = 0
            while True:
                op = self._binary_operator()
                if op is None or _PRECEDENCE[op] < min_precedence:
                    return lhs
                op_tok = self.tok
                chain += 1  # each operator here nests lhs one level deeper: refuse a long chain early
                if chain > MAX_EXPR_DEPTH:
                    raise self._error(f"expression is too complex (more than {MAX_EXPR_DEPTH} levels deep)")
                if op in ("=~", "!~"):
                    self._advance(regex_ok=True)
                    rhs: Expr = self._regex_operand()
                else:
                    self._advance()
                    rhs = self._expr(_PRECEDENCE[op] + 1)
                lhs = self._binary(op, lhs, rhs, op_tok.start)
        finally:
            self.expr_depth -= 1

    def _binary_operator(self) -> str | None:
        tok = self.tok
        if (tok.kind == _KEYWORD and tok.value in ("AND", "OR")) or (tok.kind == _OP and tok.value in _PRECEDENCE):
            return tok.value
        return None

    def _binary(self, op: str, lhs: Expr, rhs: Expr, pos: int) -> BinaryExpr:
        if op == "<>":
            op = "!="
        if op in ("=", "!=", "<", "<=", ">", ">="):
            # Fold what `time` is compared with into one TimeLiteral now: errors get a position,
            # and the executor never evaluates now() or date strings.
            try:
                if _is_time_ref(lhs) and not _is_time_ref(rhs):
                    rhs = TimeLiteral(_time_value(rhs, self.now_ns))
                elif _is_time_ref(rhs) and not _is_time_ref(lhs):
                    lhs = TimeLiteral(_time_value(lhs, self.now_ns))
            except ValueError as exc:
                if self.time_errors is None:
                    raise self._error(str(exc), pos) from None
                other = rhs if _is_time_ref(lhs) else lhs
                self.time_errors.append(f"invalid operation: time and {_GO_TYPES.get(type(other), 'influxql.Expr')} are not compatible")
                # a stand-in the statement never runs with: its compile error answers
                return BinaryExpr(op, lhs, TimeLiteral(0)) if _is_time_ref(lhs) else BinaryExpr(op, TimeLiteral(0), rhs)
        return BinaryExpr(op, lhs, rhs)

    def _unary(self) -> Expr:
        tok = self.tok
        if tok.kind == _OP:
            if tok.value == "(":
                self._enter_parens()
                self._advance()
                inner = self._expr()
                self._expect_op(")")
                self.paren_depth -= 1
                return inner
            if tok.value in ("-", "+"):
                self._advance()
                operand = self.tok
                if operand.kind in (_INTEGER, _NUMBER, _DURATION):
                    self._advance()
                    sign = -1 if tok.value == "-" else 1
                    if operand.kind == _INTEGER:
                        return IntegerLiteral(sign * operand.value)
                    if operand.kind == _NUMBER:
                        return NumberLiteral(sign * operand.value)
                    return DurationLiteral(sign * operand.value)
                if operand.kind == _IDENT or self._is_op("("):
                    # Like InfluxDB: -x is -1 * x. Only one sign is allowed, so this cannot recurse unboundedly.
                    inner = self._unary()
                    return inner if tok.value == "+" else BinaryExpr("*", IntegerLiteral(-1), inner)
                raise self._expected("identifier, number, duration, (")
        if tok.kind == _IDENT:
            self._advance()
            if self._is_op("("):
                return self._call(tok)
            return VarRef(tok.value, self._type_hint())
        if tok.kind == _KEYWORD and tok.value == "DISTINCT":
            # distinct(x), or InfluxQL's `DISTINCT x`: the same call
            self._advance()
            if self._is_op("("):
                return self._call(tok)
            return Call("distinct", (VarRef(self._identifier()),))
        if tok.kind == _KEYWORD and tok.value in ("TRUE", "FALSE"):
            self._advance()
            return BooleanLiteral(tok.value == "TRUE")
        if tok.kind == _STRING:
            return StringLiteral(self._advance().value)
        if tok.kind == _INTEGER:
            return IntegerLiteral(self._advance().value)
        if tok.kind == _NUMBER:
            return NumberLiteral(self._advance().value)
        if tok.kind == _DURATION:
            return DurationLiteral(self._advance().value)
        if tok.kind == _PARAM:
            return self._param_literal(self._advance())
        raise self._expected(_OPERAND)

    def _enter_parens(self) -> None:
        self.paren_depth += 1
        if self.paren_depth > MAX_PAREN_DEPTH:
            raise self._error(f"parentheses nested too deeply (more than {MAX_PAREN_DEPTH} levels)")

    def _call(self, name_tok: _Token) -> Call:
        self._enter_parens()
        self._advance(regex_ok=True)  # (, then mean(/regex/) may follow
        args: list[Expr] = []
        if not self._is_op(")"):
            args.append(self._call_argument())
            while self._is_op(","):
                self._advance(regex_ok=True)
                args.append(self._call_argument())
        self._expect_op(")")
        self.paren_depth -= 1
        return Call(name_tok.value.lower(), tuple(args))

    def _call_argument(self) -> Expr:
        """An expression, or `*` / `/regex/` (count(*), max(/pwr/)): InfluxDB expands them to one call per field."""
        tok = self.tok
        if self._is_op("*"):
            self._advance()
            return Wildcard()
        if tok.kind == _REGEX:
            self._advance()
            return self._regex_literal(tok.value, tok.start)
        return self._expr()

    def _type_hint(self) -> str | None:
        if not self._is_op("::"):
            return None
        self._advance()
        tok = self.tok
        if tok.kind in (_IDENT, _KEYWORD) and tok.value.lower() in TYPE_HINTS:
            return self._advance().value.lower()
        raise self._expected("float, integer, string, boolean, field, tag")  # InfluxDB's words

    def _regex_operand(self) -> RegexLiteral:
        tok = self.tok
        if tok.kind == _REGEX:
            self._advance()
            return self._regex_literal(tok.value, tok.start)
        if tok.kind == _PARAM:
            value = self._param_value(self._advance())
            pattern = value.get("regex") if isinstance(value, dict) else value
            if isinstance(pattern, str):
                return self._regex_literal(pattern, tok.start)
        raise self._expected("regex")

    def _regex_literal(self, pattern: str, pos: int) -> RegexLiteral:
        try:
            return RegexLiteral(pattern)
        except ValueError as exc:
            # InfluxDB places a regex's errors one character before it, as for "bad regex" above
            raise self._error(_go_regexp_error(str(exc)), max(0, pos - 1)) from None

    # -- bind parameters -----------------------------------------------------------------------

    def _param_value(self, tok: _Token) -> Any:
        if tok.value not in self.params:
            raise self._error(f"missing parameter: {tok.value}", tok.start)
        return self.params[tok.value]

    def _param_literal(self, tok: _Token) -> Expr:
        """JSON bind value -> literal: 5, 1.5, "s", true, or {"identifier"|"string"|"integer"|"number"|
        "boolean"|"duration"|"regex": value} as InfluxDB's params accept."""
        value = self._param_value(tok)
        kind = None
        if isinstance(value, dict) and len(value) == 1:
            kind, value = next(iter(value.items()))
        try:
            if kind == "identifier" and isinstance(value, str):
                return VarRef(value)
            if kind == "regex" and isinstance(value, str):
                return self._regex_literal(value, tok.start)
            if kind == "duration":
                return DurationLiteral(parse_duration(value) if isinstance(value, str) else int(value))
            if kind == "integer":
                return IntegerLiteral(int(value))
            if kind in ("number", "float"):
                return NumberLiteral(float(value))
            if isinstance(value, bool) and kind in (None, "boolean"):
                return BooleanLiteral(value)
            if isinstance(value, int) and kind is None:
                return IntegerLiteral(value)
            if isinstance(value, float) and kind is None:
                return NumberLiteral(value)
            if isinstance(value, str) and kind in (None, "string"):
                return StringLiteral(value)
        except (TypeError, ValueError) as exc:
            raise self._error(f"bad value for parameter {tok.value}: {exc}", tok.start) from None
        raise self._error(f"unsupported value for parameter {tok.value}: {value!r}", tok.start)

    def _param_identifier(self, tok: _Token) -> str:
        value = self._param_value(tok)
        if isinstance(value, dict) and len(value) == 1 and "identifier" in value:
            value = value["identifier"]
        if not isinstance(value, str):
            raise self._error(f"parameter {tok.value} must be a name (a string)", tok.start)
        return value

    # -- validation ----------------------------------------------------------------------------

    def _check_depth(self, expr: Expr, pos: int) -> None:
        if _tree_depth(expr) > MAX_EXPR_DEPTH:
            raise self._error(f"expression is too complex (more than {MAX_EXPR_DEPTH} levels deep)", pos)

    def _validate_condition(self, condition: Expr, pos: int) -> None:
        """Every leaf of the AND/OR tree must be a comparison; functions other than a folded now() are refused."""
        stack = [condition]
        while stack:
            node = stack.pop()
            if isinstance(node, BinaryExpr) and node.op in ("AND", "OR"):
                stack.extend((node.lhs, node.rhs))
            elif isinstance(node, BinaryExpr) and node.op in _COMPARISONS:
                if node.op in ("=~", "!~") and not isinstance(node.lhs, VarRef):
                    raise self._error(f"{node.op} needs a tag or field name on its left", pos)
                for inner in walk(node):
                    if isinstance(inner, Call):
                        raise self._error(f"function {inner.name}() is not allowed in WHERE", pos)
                    if isinstance(inner, BinaryExpr) and inner.op not in _ARITHMETIC and inner is not node:
                        raise self._error("invalid condition: a comparison cannot contain another comparison", pos)
            elif not isinstance(node, BooleanLiteral):
                raise self._error("invalid condition: expected comparisons like \"host\" = 'a' joined by AND/OR", pos)

    def _validate_select(self, statement: SelectStatement) -> None:
        # Errors that make the text no SELECT InfluxQL can run at all; what InfluxDB reports when it
        # compiles a statement is `compile_error`'s job (answered inside the statement's result).
        for item in statement.fields:
            for node in walk(item.expr):
                if isinstance(node, RegexLiteral) and node is not item.expr and not _inside_call(item.expr, node):
                    raise QueryParseError("a regex is not allowed in a SELECT field")
        # Refuse unusable time conditions now (400) rather than during execution.
        time_range(statement.condition, self.now_ns)
