"""Untrusted math text to sympy without ``eval``: an expression tree checked against an allowlist.

Plain text (``x^2 - 5x + 6``, ``binomial(10, 3)``) is tokenised by sympy's parser
transformations (implicit multiplication, ``^`` as power, ``5!``), which only rewrite
tokens; the resulting Python source is parsed with `ast` (parsing never runs it) and
each node is turned into a sympy object by hand. Only numbers, plain symbol names, the
operators of arithmetic and comparison, tuples, a few constants and an allowlisted set of
sympy functions are accepted: attribute access, subscripts, strings, lambdas, keywords,
dunders and every other node are refused with the reason. LaTeX goes through
`latex2sympy2_extended` (an ANTLR parser that builds sympy objects; it has no ``eval``
path for its input), and what it returns is checked to be a sympy value.

Nothing here executes the text, so the sandbox's process limits are a second line, not
the only one.

Example:
    >>> parse_math("x^2 - 5x + 6")
    x**2 - 5*x + 6
    >>> parse_math("x.__class__")
    Traceback (most recent call last):
    ...
    rader.agent.safe_math.RefusedExpression: attribute access is not mathematics
"""

from __future__ import annotations

import ast
import re
from tokenize import TokenError

import sympy
from sympy.parsing.sympy_parser import (
    convert_xor,
    implicit_multiplication_application,
    standard_transformations,
    stringify_expr,
)

FUNCTIONS = {name: getattr(sympy, name) for name in (
    "sqrt root sin cos tan cot sec csc asin acos atan sinh cosh tanh exp log factorial binomial "
    "gcd lcm floor ceiling Abs Rational Min Max simplify expand factor solve Mod isprime "
    "primefactors divisors totient nsimplify"
).split()}
FUNCTIONS["ln"] = sympy.log
CONSTANTS = {"pi": sympy.pi, "E": sympy.E, "I": sympy.I, "oo": sympy.oo}
_TRANSFORMATIONS = (*standard_transformations, implicit_multiplication_application, convert_xor)
# the tokeniser keeps these names whole (``sin x``, not ``s*i*n*x``); the objects are never called by it
_KNOWN_NAMES = {**FUNCTIONS, **CONSTANTS, "Symbol": sympy.Symbol, "Integer": sympy.Integer,
                "Float": sympy.Float}
_SYMBOL = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")
_FLOAT = re.compile(r"[0-9]*\.?[0-9]*(?:[eE][+-]?[0-9]+)?")
_BINARY = {ast.Add: sympy.Add, ast.Mult: sympy.Mul, ast.Pow: sympy.Pow, ast.Mod: sympy.Mod,
           ast.Sub: lambda a, b: a - b, ast.Div: lambda a, b: a / b,
           ast.FloorDiv: lambda a, b: sympy.floor(a / b)}
_COMPARE = {ast.Eq: sympy.Eq, ast.NotEq: sympy.Ne, ast.Lt: sympy.Lt, ast.LtE: sympy.Le,
            ast.Gt: sympy.Gt, ast.GtE: sympy.Ge}
_NODE_NAMES = {ast.Attribute: "attribute access", ast.Subscript: "subscripting", ast.Lambda: "a lambda",
               ast.JoinedStr: "a string", ast.List: "a list", ast.Dict: "a dict", ast.Set: "a set",
               ast.Starred: "unpacking", ast.NamedExpr: "assignment", ast.IfExp: "a conditional",
               ast.Tuple: "a tuple inside an expression"}


class RefusedExpression(ValueError):
    """The text is not plain mathematics; the message says what was found."""


def parse_math(text: str) -> sympy.Basic:
    """Plain text or LaTeX (anything with a backslash) to a sympy value, or `RefusedExpression`."""
    if "\\" in text:
        return parse_latex(text)
    try:
        source = stringify_expr(text, {}, dict(_KNOWN_NAMES), _TRANSFORMATIONS)
        tree = ast.parse(source.strip(), mode="eval")
    except (SyntaxError, TokenError, ValueError, TypeError) as err:
        raise RefusedExpression(f"not a readable expression: {str(err)[:120]}") from None
    if isinstance(tree.body, ast.Tuple):  # ``1, 2``: a tuple only at the top, never inside a product
        return sympy.Tuple(*map(_build, tree.body.elts))
    return _build(tree.body)


def parse_latex(text: str) -> sympy.Basic:
    """LaTeX through latex2sympy, its result checked to be sympy (never a Python string or object)."""
    from latex2sympy2_extended import latex2sympy

    value = latex2sympy(text)
    _check_sympy(value)
    return value


def _check_sympy(value) -> None:
    if isinstance(value, list | tuple):
        for item in value:
            _check_sympy(item)
    elif not isinstance(value, sympy.Basic | sympy.MatrixBase):
        raise RefusedExpression(f"the LaTeX parser returned {type(value).__name__}, not mathematics")


def _build(node: ast.AST) -> sympy.Basic:
    """One allowlisted node to its sympy value; anything else is refused."""
    match node:
        case ast.Constant(value=bool()):
            pass
        case ast.Constant(value=int() as number):
            return sympy.Integer(number)
        case ast.Constant(value=float() as number):
            return sympy.Float(number)
        case ast.Name(id=name) if name in CONSTANTS:
            return CONSTANTS[name]
        case ast.Call(func=ast.Name(id="Symbol"), args=[ast.Constant(value=str() as name)], keywords=[]) \
                if _SYMBOL.fullmatch(name) and "__" not in name:
            return sympy.Symbol(name)
        case ast.Call(func=ast.Name(id="Integer"), args=[ast.Constant(value=int() as number)], keywords=[]):
            return sympy.Integer(number)
        case ast.Call(func=ast.Name(id="Float"), args=[ast.Constant(value=str() as number)], keywords=[]) \
                if number and _FLOAT.fullmatch(number):
            return sympy.Float(number)
        case ast.Call(func=ast.Name(id=name), args=args, keywords=[]) if name in FUNCTIONS:
            return FUNCTIONS[name](*map(_build, args))
        case ast.BinOp(left=left, op=op, right=right) if type(op) in _BINARY:
            return _BINARY[type(op)](_build(left), _build(right))
        case ast.UnaryOp(op=ast.USub(), operand=operand):
            return -_build(operand)
        case ast.UnaryOp(op=ast.UAdd(), operand=operand):
            return _build(operand)
        case ast.Compare(left=left, ops=[op], comparators=[right]) if type(op) in _COMPARE:
            return _COMPARE[type(op)](_build(left), _build(right))
    raise RefusedExpression(f"{_describe(node)} is not mathematics")


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.Call):
        func = node.func
        if node.keywords:
            return "a keyword argument"
        if isinstance(func, ast.Name):
            kind = "name" if func.id in ("Symbol", "Float") else "function"
            return f"the {kind} {func.id!r}"
        return _describe(func) if isinstance(func, ast.Attribute | ast.Subscript) else "calling a value"
    if isinstance(node, ast.Name):
        return f"the name {node.id!r}"
    if isinstance(node, ast.Constant):
        return "a string" if isinstance(node.value, str | bytes) else f"the constant {node.value!r}"
    return _NODE_NAMES.get(type(node), f"a {type(node).__name__} expression")
