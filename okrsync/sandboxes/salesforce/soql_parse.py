"""Tokenizer and recursive-descent parser for the SOQL subset the sandbox understands.

Nothing is ever evaluated as Python: the parser builds a small AST that ``soql_eval`` interprets.
Errors are raised as :class:`ApiError` with Salesforce's message layout (excerpt, caret, Row/Column).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from .errors import ApiError
from .soql_ast import AggCall, BoolOp, Compare, FieldRef, Literal, Not, OrderItem, Query, SelectItem

KEYWORDS = {
    "SELECT",
    "FROM",
    "WHERE",
    "AND",
    "OR",
    "NOT",
    "IN",
    "LIKE",
    "ORDER",
    "BY",
    "GROUP",
    "HAVING",
    "LIMIT",
    "OFFSET",
    "ASC",
    "DESC",
    "NULLS",
    "FIRST",
    "LAST",
    "NULL",
    "TRUE",
    "FALSE",
    "INCLUDES",
    "EXCLUDES",
    "WITH",
    "USING",
    "TYPEOF",
    "FOR",
}
AGGREGATES = {"COUNT", "COUNT_DISTINCT", "SUM", "AVG", "MIN", "MAX"}

_DATETIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})")
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?![T\d])")
_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?(?![\w.])")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_OPS = ("!=", "<>", "<=", ">=", "=", "<", ">")
_ESCAPES = {
    "n": "\n",
    "N": "\n",
    "r": "\r",
    "R": "\r",
    "t": "\t",
    "T": "\t",
    "b": "\b",
    "B": "\b",
    "f": "\f",
    "F": "\f",
    '"': '"',
    "'": "'",
    "\\": "\\",
}
_LIKE_ESCAPES = {"%", "_"}


def soql_error(query: str, pos: int, message: str, code: str = "MALFORMED_QUERY") -> ApiError:
    """An error whose message looks like Salesforce's: the query line, a caret, Row:Column, the reason."""
    pos = max(0, min(pos, len(query)))
    row = query.count("\n", 0, pos) + 1
    line_start = query.rfind("\n", 0, pos) + 1
    line_end = query.find("\n", pos)
    line = query[line_start : line_end if line_end >= 0 else len(query)]
    col = pos - line_start + 1
    # Salesforce shows a window of the line around the error
    lo = max(0, col - 1 - 40)
    excerpt = line[lo : lo + 100]
    caret = " " * (col - 1 - lo) + "^"
    return ApiError(400, code, f"\n{excerpt}\n{caret}\nERROR at Row:{row}:Column:{col}\n{message}")


@dataclass
class Token:
    kind: str  # IDENT KW STRING NUMBER DATE DATETIME OP ( ) , EOF
    value: Any
    pos: int
    text: str


def tokenize(query: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        if ch.isspace():
            i += 1
            continue
        if ch == "'":
            value, end = _scan_string(query, i)
            tokens.append(Token("STRING", value, i, query[i:end]))
            i = end
            continue
        if ch in "(),":
            tokens.append(Token(ch, ch, i, ch))
            i += 1
            continue
        op = next((o for o in _OPS if query.startswith(o, i)), None)
        if op:
            tokens.append(Token("OP", "!=" if op == "<>" else op, i, op))
            i += len(op)
            continue
        if m := _DATETIME.match(query, i):
            tokens.append(Token("DATETIME", _to_datetime(m, query, i), i, m.group(0)))
            i = m.end()
            continue
        if m := _DATE.match(query, i):
            try:
                d = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            except ValueError:
                raise soql_error(query, i, f"line 1:{i} no viable alternative at character ' '") from None
            tokens.append(Token("DATE", d, i, m.group(0)))
            i = m.end()
            continue
        if m := _NUMBER.match(query, i):
            text = m.group(0)
            tokens.append(Token("NUMBER", float(text) if "." in text else int(text), i, text))
            i = m.end()
            continue
        if m := _IDENT.match(query, i):
            text = m.group(0)
            kind = "KW" if text.upper() in KEYWORDS else "IDENT"
            tokens.append(Token(kind, text.upper() if kind == "KW" else text, i, text))
            i = m.end()
            continue
        raise soql_error(query, i, f"line 1:{i} no viable alternative at character '{ch}'")
    tokens.append(Token("EOF", None, n, "<EOF>"))
    return tokens


def _scan_string(query: str, start: int) -> tuple[str, int]:
    out: list[str] = []
    i = start + 1
    while i < len(query):
        ch = query[i]
        if ch == "\\":
            nxt = query[i + 1 : i + 2]
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
            elif nxt in _LIKE_ESCAPES:
                out.append("\\" + nxt)  # kept escaped: only meaningful to LIKE
            else:
                raise soql_error(
                    query,
                    i,
                    "Invalid string literal '" + query[start : i + 2] + "'. Illegal escape "
                    "sequence: " + query[i : i + 2],
                )
            i += 2
            continue
        if ch == "'":
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise soql_error(query, start, f"line 1:{len(query)} mismatched character '<EOF>' expecting '''")


def _to_datetime(m: re.Match[str], query: str, pos: int) -> datetime:
    frac = m.group(7) or ""
    micro = int((frac[1:] + "000000")[:6]) if frac else 0
    tz_text = m.group(8)
    try:
        if tz_text == "Z":
            tz: timezone = UTC
        else:
            sign = 1 if tz_text[0] == "+" else -1
            digits = tz_text[1:].replace(":", "")
            tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
        value = datetime(
            int(m.group(1)),
            int(m.group(2)),
            int(m.group(3)),
            int(m.group(4)),
            int(m.group(5)),
            int(m.group(6)),
            micro,
            tzinfo=tz,
        )
    except ValueError:
        raise soql_error(query, pos, f"line 1:{pos} no viable alternative at character ' '") from None
    return value.astimezone(UTC)


class Parser:
    def __init__(self, query: str) -> None:
        self.query = query
        self.tokens = tokenize(query)
        self.i = 0

    # token helpers
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def _unexpected(self, tok: Token | None = None) -> ApiError:
        tok = tok or self.tok
        return soql_error(self.query, tok.pos, f"unexpected token: '{tok.text}'")

    def _is_kw(self, *words: str) -> bool:
        return self.tok.kind == "KW" and self.tok.value in words

    def _expect_kw(self, word: str) -> Token:
        if not self._is_kw(word):
            raise self._unexpected()
        return self._next()

    def _expect(self, kind: str) -> Token:
        if self.tok.kind != kind:
            raise self._unexpected()
        return self._next()

    def _next(self) -> Token:
        tok = self.tok
        self.i += 1
        return tok

    # grammar
    def parse(self) -> Query:
        self._expect_kw("SELECT")
        select = [self._select_item()]
        while self.tok.kind == ",":
            self._next()
            select.append(self._select_item())
        self._expect_kw("FROM")
        obj = self._expect("IDENT")
        q = Query(self.query, select, obj.value, obj.pos)
        if q.count_only and select[0].alias:
            raise self._unexpected()
        if self._is_kw("WHERE"):
            self._next()
            q.where = self._or_expr()
        if self._is_kw("GROUP"):
            self._next()
            self._expect_kw("BY")
            q.group_by.append(self._field())
            while self.tok.kind == ",":
                self._next()
                q.group_by.append(self._field())
        if self._is_kw("ORDER"):
            self._next()
            self._expect_kw("BY")
            q.order_by.append(self._order_item())
            while self.tok.kind == ",":
                self._next()
                q.order_by.append(self._order_item())
        if self._is_kw("LIMIT"):
            self._next()
            q.limit = self._non_negative_int()
        if self._is_kw("OFFSET"):
            self._next()
            q.offset = self._non_negative_int()
        if self.tok.kind != "EOF":
            raise self._unexpected()
        return q

    def _non_negative_int(self) -> int:
        tok = self._expect("NUMBER")
        if not isinstance(tok.value, int) or tok.value < 0:
            raise self._unexpected(tok)
        return tok.value

    def _field(self) -> FieldRef:
        tok = self._expect("IDENT")
        return FieldRef(tuple(tok.value.split(".")), tok.pos)

    def _select_item(self) -> SelectItem:
        tok = self.tok
        expr: FieldRef | AggCall
        if tok.kind == "IDENT" and tok.value.upper() in AGGREGATES and self.tokens[self.i + 1].kind == "(":
            self._next()
            self._next()
            func = tok.value.upper()
            arg = None if (func == "COUNT" and self.tok.kind == ")") else self._field()
            self._expect(")")
            expr = AggCall(func, arg, tok.pos)
        elif tok.kind == "IDENT":
            expr = self._field()
        else:
            raise self._unexpected()
        alias = None
        if self.tok.kind == "IDENT":
            alias = self._next().value
        return SelectItem(expr, alias)

    def _order_item(self) -> OrderItem:
        tok = self.tok
        if tok.kind == "IDENT" and tok.value.upper() in AGGREGATES and self.tokens[self.i + 1].kind == "(":
            self._next()
            self._next()
            arg = None if self.tok.kind == ")" else self._field()
            self._expect(")")
            item = OrderItem(AggCall(tok.value.upper(), arg, tok.pos))
        else:
            item = OrderItem(self._field())
        if self._is_kw("ASC", "DESC"):
            item.desc = self._next().value == "DESC"
        if self._is_kw("NULLS"):
            self._next()
            if not self._is_kw("FIRST", "LAST"):
                raise self._unexpected()
            item.nulls_last = self._next().value == "LAST"
        return item

    def _or_expr(self) -> Any:
        """SOQL forbids mixing AND and OR at one level without parentheses."""
        first = self._unary()
        if not self._is_kw("AND", "OR"):
            return first
        op = self.tok.value
        items = [first]
        while self._is_kw("AND", "OR"):
            if self.tok.value != op:
                raise self._unexpected()
            self._next()
            items.append(self._unary())
        return BoolOp(op, items)

    def _unary(self) -> Any:
        if self._is_kw("NOT"):
            self._next()
            return Not(self._unary())
        if self.tok.kind == "(":
            self._next()
            inner = self._or_expr()
            self._expect(")")
            return inner
        return self._comparison()

    def _comparison(self) -> Compare:
        fld = self._field()
        tok = self.tok
        if tok.kind == "OP":
            self._next()
            return Compare(fld, tok.value, self._literal(), tok.pos)
        if self._is_kw("LIKE"):
            self._next()
            return Compare(fld, "LIKE", self._literal(), tok.pos)
        negate = False
        if self._is_kw("NOT"):
            self._next()
            negate = True
            if not self._is_kw("IN"):
                raise self._unexpected()
        if self._is_kw("IN"):
            self._next()
            self._expect("(")
            if self._is_kw("SELECT"):
                raise soql_error(
                    self.query, self.tok.pos, "semi-join sub-selects are not supported by the sandbox"
                )
            values = [self._literal()]
            while self.tok.kind == ",":
                self._next()
                values.append(self._literal())
            self._expect(")")
            return Compare(fld, "NOT IN" if negate else "IN", values, tok.pos)
        raise self._unexpected()

    def _literal(self) -> Literal:
        tok = self._next()
        kinds = {"STRING": "string", "NUMBER": "number", "DATE": "date", "DATETIME": "datetime"}
        if tok.kind in kinds:
            return Literal(kinds[tok.kind], tok.value, tok.pos)
        if tok.kind == "KW" and tok.value in ("TRUE", "FALSE"):
            return Literal("boolean", tok.value == "TRUE", tok.pos)
        if tok.kind == "KW" and tok.value == "NULL":
            return Literal("null", None, tok.pos)
        raise self._unexpected(tok)


def parse(query: str) -> Query:
    return Parser(query).parse()
