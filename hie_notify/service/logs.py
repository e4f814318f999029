"""Structured logs: one JSON object a line, every secret masked."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

from hie_notify.masking import Masker

_FIELDS = ("task_result_id", "run_id", "stage", "status", "path", "code", "ms", "trigger")


class JsonFormatter(logging.Formatter):
    def __init__(self, masker: Masker) -> None:
        super().__init__()
        self.masker = masker

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": self.masker(record.getMessage()),
        }
        for name in _FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                data[name] = self.masker(str(value)) if isinstance(value, str) else value
        if record.exc_info:
            data["error"] = self.masker(self.formatException(record.exc_info))
        return json.dumps(data, ensure_ascii=False)


def configure(masker: Masker, level: int = logging.INFO) -> None:
    """JSON lines on stderr for the whole process (waitress's own logger included)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter(masker))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
