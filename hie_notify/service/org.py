"""One service for an organisation: which GitLab project a run belongs to, that project's
protected policy, and whose ledger notes count.

The operator's service file (HIE_SERVICE_CONFIG) maps HCP workspaces to GitLab projects:

    workspaces:
      "hie-sde/eoe-*": hie/infra      # ORG/WORKSPACE (shell pattern) -> group/project
      "hie-sde/web-prod": hie/web
      "hie-sde/team-*": vcs           # the project of the workspace's VCS repository
    ledger_authors: [project_42_bot_hie]

The project comes from the operator's mapping and from what HCP Terraform signed (the
organisation, the workspace, the workspace's VCS repository), never from the run message: a
message can name a change (its Jira key) and a commit of the mapped project, never another
project. A workspace no entry maps is refused; so is one whose entries disagree, and one whose
VCS repository is another project than the one it is mapped to. The policy each decision is made
with is the project's protected policy, read by the service from the project's default branch (or
the central policy project, HIE_POLICY_PROJECT), never a branch's.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pydantic import ValidationError

from hie_notify.errors import InputError
from hie_notify.policy.loader import deep_merge, default_policy_data
from hie_notify.policy.model import Policy
from hie_notify.yamlfile import format_validation_error, parse_yaml_mapping, read_yaml_mapping

VCS = "vcs"
POLICY_PATH = ".hie-notify/policy.yaml"
POLICY_SECONDS = 60.0  # a project's protected policy is read again after this long
_KEYS = ("workspaces", "ledger_authors")


@dataclass(frozen=True)
class OrgConfig:
    source: str  # the file, for messages
    workspaces: tuple[tuple[str, str], ...]  # (ORG/WORKSPACE pattern, group/project or "vcs")
    ledger_authors: tuple[str, ...]  # usernames whose ledger notes count, besides the token's

    @classmethod
    def load(cls, path: Path) -> OrgConfig:
        data = read_yaml_mapping(path)
        problems: list[str] = []
        for key in data:
            if key not in _KEYS:
                problems.append(f"{path}: {key}: unknown key (expected {', '.join(_KEYS)})")
        raw = data.get("workspaces")
        pairs: list[tuple[str, str]] = []
        if not isinstance(raw, Mapping) or not raw:
            problems.append(
                f"{path}: workspaces: expected a mapping of ORG/WORKSPACE patterns to GitLab "
                'projects, e.g. {"hie-sde/eoe-*": "hie/infra"}'
            )
            raw = {}
        for pattern, project in raw.items():
            where = f"{path}: workspaces: {pattern!r}"
            org, _, name = str(pattern).partition("/")
            if not org or not name or "/" in name or any(c in org for c in "*?["):
                problems.append(f"{where}: expected ORG/WORKSPACE (a pattern only in WORKSPACE)")
                continue
            if not isinstance(project, str) or not (project == VCS or _project_path(project)):
                problems.append(
                    f"{where}: expected a GitLab project path (group/project) or {VCS!r}, "
                    f"got {project!r}"
                )
                continue
            pairs.append((str(pattern), project))
        authors = data.get("ledger_authors", [])
        if not isinstance(authors, list) or not all(
            isinstance(a, str) and a and "," not in a and a.strip() == a for a in authors
        ):
            problems.append(
                f"{path}: ledger_authors: expected a list of GitLab usernames (the bot users the "
                "pipelines write the ledger as)"
            )
            authors = []
        if problems:
            raise InputError(problems)
        return cls(str(path), tuple(pairs), tuple(authors))

    def project_for(
        self,
        organization: str | None,
        workspace: str | None,
        vcs_repo_url: str | None,
        gitlab_api_url: str,
    ) -> str:
        """The GitLab project (group/project) a run of this workspace belongs to; InputError,
        saying why, when the operator's mapping does not name exactly one."""
        if not organization or not workspace:
            raise InputError(
                "the run names no organisation or workspace: hie-notify cannot tell which "
                "GitLab project it belongs to"
            )
        name = f"{organization}/{workspace}"
        matches = [(p, proj) for p, proj in self.workspaces if fnmatch.fnmatchcase(name, p)]
        exact = [(p, proj) for p, proj in matches if p == name]
        matches = exact or matches
        if not matches:
            raise InputError(
                f"workspace {name} is not mapped to any GitLab project ({self.source}: "
                "workspaces): hie-notify decides only for the workspaces its operator maps"
            )
        projects = sorted({proj for _, proj in matches})
        if len(projects) > 1:
            raise InputError(
                f"workspace {name} is mapped to {' and '.join(projects)} by "
                f"{', '.join(repr(p) for p, _ in matches)} ({self.source}: workspaces): "
                "map it to one project"
            )
        repo = vcs_project(vcs_repo_url, gitlab_api_url)
        if projects[0] == VCS:
            if repo is None:
                raise InputError(
                    f"workspace {name} is mapped to its VCS repository ({self.source}), but "
                    "the run has no VCS repository on this GitLab: map the workspace to a project"
                )
            return repo
        if repo is not None and repo.lower() != projects[0].lower():
            raise InputError(
                f"workspace {name} is mapped to {projects[0]} ({self.source}), but its VCS "
                f"repository is {repo}: not deciding for a run of another project's code"
            )
        return projects[0]


def vcs_project(url: str | None, gitlab_api_url: str) -> str | None:
    """The project path of a VCS repository URL on this GitLab (None for any other host)."""
    if not url:
        return None
    repo, ours = urlparse(url), urlparse(gitlab_api_url)
    if repo.scheme != "https" or not repo.hostname or repo.hostname != ours.hostname:
        return None
    if (repo.port or 443) != (ours.port or 443):
        return None
    path = repo.path.split("/-/", 1)[0].strip("/").removesuffix(".git")
    prefix = ours.path.removesuffix("/").removesuffix("/api/v4").strip("/")
    if prefix:  # GitLab under a relative URL (https://example.org/gitlab/...)
        if not path.startswith(prefix + "/"):
            return None
        path = path[len(prefix) + 1 :]
    return path if _project_path(path) else None


def _project_path(value: str) -> bool:
    parts = value.split("/")
    return len(parts) >= 2 and all(
        p and p not in (".", "..") and all(c.isalnum() or c in "._-" for c in p) for p in parts
    )


class ProtectedPolicies:
    """Each project's protected policy, read through the GitLab API and kept POLICY_SECONDS;
    written to the work directory under a name from its content (a file is never rewritten)."""

    def __init__(
        self, workdir: Path, monotonic: Callable[[], float] | None = None, reader: Any = None
    ) -> None:
        self.workdir = workdir
        self.monotonic = monotonic or time.monotonic
        self._reader = reader
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, Path, str]] = {}

    def get(self, env: Mapping[str, str], project: str) -> tuple[Path, str]:
        """(a file holding the policy, where it came from), for `project`."""
        now = self.monotonic()
        with self._lock:
            cached = self._cache.get(project)
        if cached is not None and now - cached[0] < POLICY_SECONDS:
            return cached[1], cached[2]
        path, where = self._read(env, project)
        with self._lock:
            self._cache[project] = (now, path, where)
        return path, where

    def _read(self, env: Mapping[str, str], project: str) -> tuple[Path, str]:
        from hie_notify.gitlab_api import read_repository_file

        reader = self._reader or read_repository_file
        central = env.get("HIE_POLICY_PROJECT")
        source = central or project
        file_path = env.get("HIE_POLICY_PATH") or POLICY_PATH
        ref = (env.get("HIE_POLICY_REF") or None) if central else None  # None: default branch
        raw, resolved = reader(env, source, file_path, ref)
        where = f"{source}@{resolved}:{file_path}"
        if raw is None:
            # Fails closed: the built-in default may ask for less notice than the project means.
            raise InputError(
                f"{project}: no protected policy at {where}: add the project's policy there "
                "(its default branch), or point HIE_POLICY_PROJECT at a central one"
            )
        data = deep_merge(default_policy_data(), parse_yaml_mapping(raw, where))
        try:
            Policy.model_validate(data)
        except ValidationError as exc:
            raise InputError(format_validation_error(where, exc, Policy)) from None
        digest = hashlib.sha256(f"{where}\0".encode() + raw).hexdigest()[:24]
        self.workdir.mkdir(parents=True, exist_ok=True)
        out = self.workdir / f"policy-{digest}.yaml"
        if not out.exists():
            tmp = self.workdir / f".{out.name}.{threading.get_ident()}.tmp"
            tmp.write_bytes(raw)
            os.replace(tmp, out)
        return out, where
