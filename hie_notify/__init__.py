"""hie-notify: deployment notices that a GitLab pipeline sends, and a gate that holds the apply."""

from __future__ import annotations

__version__ = "0.1.0"
