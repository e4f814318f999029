"""The names of the built-in message templates (package data), for the renderer and for the
policy's check of template overrides. Reads the package's file list only: no rendering."""

from __future__ import annotations

from functools import cache


@cache
def template_names() -> tuple[str, ...]:
    """The built-in templates a policy may override (partials starting with `_` excluded)."""
    from importlib import resources

    folder = resources.files("hie_notify").joinpath("templates")
    return tuple(
        sorted(p.name for p in folder.iterdir() if p.name.endswith(".j2") and p.name[0] != "_")
    )
