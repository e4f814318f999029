"""Which change a run belongs to, and where its change record and ledger are.

The run names its change by the Jira key in its message. The change record is read from the
GitLab project's repository at the run's commit (else its branch, else the default branch),
at HIE_CHANGE_PATH (`{id}` becomes the key), or is the one file HIE_CHANGE names. The ledger is
the merge request of the run's commit (HIE_LEDGER pins one instead). The record must carry the
key the run names: a run of another change, or one that names none, is never judged against
this one.

Serving an organisation (HIE_SERVICE_CONFIG), the project is the one the operator maps the run's
workspace to (`org.py`), and the decision is made with that project's protected policy; notes
by the configured ledger authors count as the service's own.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hie_notify.errors import InputError
from hie_notify.gitlab_api import NoteTarget, call, connect, gitlab_target, reported
from hie_notify.options import Options
from hie_notify.service.org import ProtectedPolicies
from hie_notify.service.settings import Settings
from hie_notify.yamlfile import read_yaml_mapping

if TYPE_CHECKING:
    from hie_notify.settings import Settings as EnvSettings


@dataclass(frozen=True)
class Located:
    change_id: str
    options: Options  # the change record, ledger and environment to decide with
    link: str  # the merge request, else the run


def gitlab_ready(env: Any, settings: EnvSettings) -> bool:
    return bool(settings.gitlab_token and env.get("CI_API_V4_URL") and env.get("CI_PROJECT_ID"))


def locate(
    base: Options,
    settings: Settings,
    workdir: Path,
    now: datetime,
    *,
    key: str | None,
    commit: str | None,
    branch: str | None,
    run_url: str | None,
    project: str | None = None,
    policies: ProtectedPolicies | None = None,
) -> Located:
    """The change a run belongs to; InputError saying what is missing when it cannot be told.
    `project` (serving an organisation): the GitLab project the operator maps the run to, whose
    protected policy (from `policies`) decides."""
    env = dict(base.env)
    policy = base.policy
    if project is not None:
        if base.change is not None or (base.ledger not in (None, "gitlab")):
            raise InputError(
                "HIE_CHANGE / HIE_LEDGER pin one change record or ledger: a service for an "
                "organisation (HIE_SERVICE_CONFIG) finds them in each run's project; unset them"
            )
        env["CI_PROJECT_ID"] = project
        for name in ("CI_MERGE_REQUEST_IID", "HIE_CHANGE_ISSUE_IID", "GITLAB_CI"):
            env.pop(name, None)  # the service's own environment names no project's
        if settings.org is not None and settings.org.ledger_authors:
            env["HIE_LEDGER_AUTHORS"] = ",".join(settings.org.ledger_authors)
        if key is not None:
            policy, _ = (policies or ProtectedPolicies(workdir)).get(env, project)
    if key is None:  # a pinned record (HIE_CHANGE) is no reason to take any run as its own
        raise InputError(
            "the run message names no Jira key (like FFAPP-4458): hie-notify cannot tell "
            "which change this run is; start runs with the key in their message"
        )
    if base.change is not None:
        change_path = base.change
        change_id = _record_id(change_path)
        if key != change_id:
            raise InputError(
                f"the run names {key}, but this service serves the change record {change_path} "
                f"({change_id}): not this change's run"
            )
    elif gitlab_ready(env, base.settings):
        path = settings.change_path.replace("{id}", key)
        change_path = _fetch_record(env, path, commit or branch, workdir, key, base.settings)
        change_id = _record_id(change_path)
        if change_id != key:
            raise InputError(
                f"{settings.change_path}: the change record is {change_id}, but the run names "
                f"{key}: not this change's run"
            )
    else:
        raise InputError(
            "no change record: set HIE_CHANGE to a file, or HIE_GITLAB_TOKEN, CI_API_V4_URL and "
            "CI_PROJECT_ID to read it from the repository"
        )
    ledger = base.ledger
    link = run_url or ""
    if (ledger is None or ledger == "gitlab") and gitlab_ready(env, base.settings):
        if commit:
            where = NoteTarget(gitlab_target(env, "the ledger", base.settings), "mr", None, commit)
            mr = where.noteable()
            env["CI_MERGE_REQUEST_IID"] = str(mr.iid)
            ledger = f"gitlab:mr:{mr.iid}"
            if project is not None:  # a path: GitLab's own address for it, no request needed
                server = where.target.server_url.rstrip("/")
                link = f"{server}/{project}/-/merge_requests/{int(mr.iid)}"
            else:
                link = _mr_link(where, int(mr.iid)) or link
        elif env.get("HIE_CHANGE_ISSUE_IID"):
            ledger = f"gitlab:issue:{env['HIE_CHANGE_ISSUE_IID']}"
        else:
            raise InputError(
                f"{change_id}: the run names no commit, so its merge request (the ledger) is "
                "unknown: put the commit SHA in the run message, or set HIE_LEDGER"
            )
    if ledger and ledger.startswith("gitlab:mr:"):  # the summary note and approvals go there
        env["CI_MERGE_REQUEST_IID"] = ledger.rsplit(":", 1)[1]
    elif ledger and ledger.startswith("gitlab:issue:"):
        env["HIE_CHANGE_ISSUE_IID"] = ledger.rsplit(":", 1)[1]
    # The service is an enforcement point: only real deliveries count, as in GitLab CI.
    options = replace(
        base,
        policy=policy,
        change=change_path,
        ledger=ledger,
        now=now,
        format="json",
        env=env,
        enforced=True,
    )
    return Located(change_id, options, link)


def _record_id(path: Path) -> str:
    value = read_yaml_mapping(path).get("id")
    if not isinstance(value, str) or not value:
        raise InputError(f"{path}: id: expected the change's Jira key")
    return value


def _fetch_record(
    env: Any, path: str, ref: str | None, workdir: Path, key: str, settings: EnvSettings
) -> Path:
    target = gitlab_target(env, "reading the change record", settings)
    gl = connect(target)
    project = gl.projects.get(target.project_id, lazy=True)
    import gitlab.exceptions as gle

    what = f"read the change record {path} of {key}"
    with reported(what):
        if ref is None:
            ref = str(call(what, lambda: gl.projects.get(target.project_id)).default_branch)
        try:
            raw = project.files.raw(file_path=path, ref=ref)
        except gle.GitlabGetError as exc:
            if exc.response_code == 404:
                raise InputError(
                    f"{path}: no change record at {ref} in the project (HIE_CHANGE_PATH)"
                ) from None
            raise
    # One file per request: two workers never read each other's half-written copy.
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / f"{key}-{uuid.uuid4().hex}.yaml"
    out.write_bytes(bytes(raw))
    return out


def _mr_link(where: NoteTarget, iid: int) -> str:
    try:
        mr = where.project().mergerequests.get(iid)
    except Exception:  # a link is a nicety: the decision does not wait for it
        return ""
    return str(mr.attributes.get("web_url") or "")
