"""The Jinja2 sandbox for message templates, bounded in work and output.

Jinja2's SandboxedEnvironment stops a template reaching unsafe attributes, but not one that
works forever or fills memory: `range(10**12)`, `'x' * 10**9`, a macro that calls itself, nested
loops. A policy's `templates:` may come from a branch, so every render here has a budget:

- every loop iteration and every call spends one unit of work (MAX_WORK per render);
- everything printed, and the literal text of a loop body once per iteration, spends output
  (MAX_OUTPUT characters per render);
- `range` is capped at MAX_RANGE items; `*`, `**`, `+` and `%` refuse a result over MAX_OUTPUT
  before computing it; an integer argument over MAX_ARGUMENT to any call or filter (a width, a
  count, a paragraph number) is refused; macros nest at most MAX_CALL_DEPTH deep.

Past a bound the render stops with a SecurityError (a TemplateError), which the renderer turns
into exit 2 naming the template.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator
from types import CodeType
from typing import Any

from jinja2 import BytecodeCache, nodes
from jinja2.bccache import Bucket
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, Macro
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import pass_context

MAX_WORK = 200_000
MAX_OUTPUT = 1_000_000
MAX_RANGE = 10_000
MAX_ARGUMENT = 100_000
MAX_CALL_DEPTH = 40
# A printf or str.format width or precision of six digits or more: '%999999999d', '{:>999999}'.
_WIDE_FORMAT = re.compile(r"%[-+ #0*]*\d*\.?\d{6}|\{[^{}]*:[^{}]*\d{6}")
_LOOP_FILTER = "_hie_loop"


class _Budget:
    __slots__ = ("depth", "output", "work")

    def __init__(self) -> None:
        self.work = 0
        self.output = 0
        self.depth = 0

    def spend(self, work: int = 0, output: int = 0) -> None:
        self.work += work
        self.output += output
        if self.work > MAX_WORK:
            raise SecurityError(
                f"the template does more than {MAX_WORK} loop iterations and calls (a loop "
                "that never ends?)"
            )
        if self.output > MAX_OUTPUT:
            raise SecurityError(f"the template writes more than {MAX_OUTPUT} characters")


def _budget(context: Context) -> _Budget:
    budget: _Budget | None = getattr(context, "_hie_budget", None)
    if budget is None:
        budget = _Budget()
        context._hie_budget = budget  # type: ignore[attr-defined]
    return budget


def _size(value: object) -> int:
    return len(value) if isinstance(value, (str, bytes, list, tuple, dict)) else 0


def _check_arguments(args: Iterable[Any]) -> None:
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_ARGUMENT:
            raise SecurityError(f"a number over {MAX_ARGUMENT} given to a call in a template")
        if isinstance(arg, str) and _WIDE_FORMAT.search(arg):
            raise SecurityError("a format width of six digits or more in a template")


class _CompiledTemplates(BytecodeCache):
    """Compiled templates kept in memory and shared by every BoundedSandbox in the process.

    Compiling the built-in templates is most of a command's time, and a run builds one
    environment per format (each compiles the same code: the options that shape the code are
    the same). Jinja2 keys a bucket by template name and a checksum of its source, so a policy's
    override never picks up the built-in's code. The oldest entries go past MAX_ENTRIES.
    """

    MAX_ENTRIES = 512

    def __init__(self) -> None:
        self._code: dict[str, CodeType] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        code = self._code.get(_key(bucket))
        if code is not None:
            bucket.code = code

    def dump_bytecode(self, bucket: Bucket) -> None:
        if bucket.code is None:
            return
        if len(self._code) >= self.MAX_ENTRIES:
            self._code.pop(next(iter(self._code)))
        self._code[_key(bucket)] = bucket.code


_CODE_OPTIONS = (
    "autoescape",
    "trim_blocks",
    "lstrip_blocks",
    "keep_trailing_newline",
    "newline_sequence",
    "optimized",
    "block_start_string",
    "block_end_string",
    "variable_start_string",
    "variable_end_string",
    "comment_start_string",
    "comment_end_string",
    "line_statement_prefix",
    "line_comment_prefix",
    "is_async",
)


def _key(bucket: Bucket) -> str:
    """Name, source and every environment option that changes the compiled code."""
    env = bucket.environment
    options = [repr(getattr(env, name, None)) for name in _CODE_OPTIONS]
    options += [type(env).__name__, str(env.finalize is not None), *sorted(env.extensions)]
    return "\x1f".join([bucket.key, bucket.checksum, *options])


_COMPILED = _CompiledTemplates()


class BoundedSandbox(SandboxedEnvironment):
    """A SandboxedEnvironment whose renders are bounded in work and output (module docstring)."""

    intercepted_binops = frozenset(["*", "**", "+", "%"])

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        finalize: Callable[[Any], Any] | None = kwargs.pop("finalize", None)

        @pass_context
        def _finalize(context: Context, value: Any) -> Any:
            shown = finalize(value) if finalize is not None else value
            _budget(context).spend(output=len(str(shown)))
            return shown

        kwargs.setdefault("bytecode_cache", _COMPILED)
        super().__init__(*args, finalize=_finalize, **kwargs)
        self.globals["range"] = _bounded_range
        self.globals.pop("lipsum", None)  # lipsum(n) builds n paragraphs: nothing a notice needs
        self.filters = {name: _bounded_filter(f) for name, f in self.filters.items()}
        self.filters[_LOOP_FILTER] = _counted_loop

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        try:
            tree = super()._parse(source, name, filename)
        except RecursionError:
            from jinja2 import TemplateSyntaxError

            raise TemplateSyntaxError("nested too deeply", 1, name, filename) from None
        # Every for loop iterates through `_counted_loop`, which spends work per item and the
        # literal text of the loop body as output.
        for loop in tree.find_all(nodes.For):
            literal = sum(len(data.data) for data in loop.find_all(nodes.TemplateData))
            loop.iter = nodes.Filter(
                loop.iter, _LOOP_FILTER, [nodes.Const(literal)], [], None, None, lineno=loop.lineno
            )
        return tree

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        owner = getattr(value, "__self__", None)
        if isinstance(owner, str):
            _check_arguments([owner])  # '{:>999999999}'.format(1)
        return super().wrap_str_format(value)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget = _budget(context)
        budget.spend(work=1)
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                sized = isinstance(seq, (str, list, tuple)) and isinstance(n, int)
                if sized and len(seq) * n > MAX_OUTPUT:
                    raise SecurityError(
                        f"a repetition in a template makes more than {MAX_OUTPUT} items"
                    )
        elif operator == "**":
            if isinstance(right, (int, float)) and abs(right) > 64:
                raise SecurityError("a power over 64 in a template")
        elif operator == "+":
            if _size(left) + _size(right) > MAX_OUTPUT:
                raise SecurityError(f"a sum in a template makes more than {MAX_OUTPUT} items")
        elif operator == "%" and isinstance(left, str):
            _check_arguments([left, *(right if isinstance(right, tuple) else (right,))])
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _budget(__context)
        budget.spend(work=1)
        _check_arguments([*args, *kwargs.values()])
        if isinstance(__obj, Macro):
            if budget.depth >= MAX_CALL_DEPTH:
                raise SecurityError(f"macros call each other more than {MAX_CALL_DEPTH} deep")
            budget.depth += 1
            try:
                return super().call(__context, __obj, *args, **kwargs)
            finally:
                budget.depth -= 1
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str) and getattr(__obj, "__name__", "") == "replace":
            _check_replace((owner, *args))
        result = super().call(__context, __obj, *args, **kwargs)
        if _size(result) > MAX_OUTPUT:
            raise SecurityError(f"a call in a template made more than {MAX_OUTPUT} items")
        return result


def _check_replace(args: Any) -> None:
    """`s.replace(old, new)` can multiply `s`: refuse a result over MAX_OUTPUT before making it."""
    if len(args) < 3 or not all(isinstance(a, str) for a in args[:3]):
        return
    text, old, new = args[:3]
    count = text.count(old) if old else len(text) + 1
    if len(text) + count * len(new) > MAX_OUTPUT:
        raise SecurityError(f"a replace in a template would make over {MAX_OUTPUT} characters")


def _bounded_range(*args: int) -> range:
    _check_arguments(args)
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise SecurityError(f"range() in a template is limited to {MAX_RANGE} numbers")
    return numbers


@pass_context
def _counted_loop(context: Context, iterable: Any, literal: int) -> Iterator[Any]:
    budget = _budget(context)
    for item in iterable:
        budget.spend(work=1, output=literal)
        yield item


def _bounded_filter(func: Callable[..., Any]) -> Callable[..., Any]:
    # Filters marked pass_context / pass_eval_context / pass_environment get that first.
    skip = 2 if getattr(func, "jinja_pass_arg", None) is not None else 1

    @functools.wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _check_arguments([*args[skip:], *kwargs.values()])
        if len(args) >= skip and isinstance(args[skip - 1], str):
            _check_arguments([args[skip - 1]])  # the value may be a format (`|format`)
        if func.__name__ == "do_replace":
            _check_replace(args[skip - 1 : skip + 2])
        result = func(*args, **kwargs)
        if _size(result) > MAX_OUTPUT:
            raise SecurityError(f"a filter in a template made more than {MAX_OUTPUT} items")
        return result

    return bounded
