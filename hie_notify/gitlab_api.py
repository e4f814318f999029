"""The GitLab connection every GitLab feature shares: where, who, and how failures are reported."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from hie_notify import progress
from hie_notify.errors import HieError, InputError, ServiceError
from hie_notify.settings import settings_or_env

if TYPE_CHECKING:
    from pydantic import SecretStr

    from hie_notify.settings import Settings

T = TypeVar("T")
MAX_RETRIES = 4
TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class GitLabTarget:
    api_url: str
    project_id: str
    token: SecretStr  # shown only to python-gitlab, in `connect`

    def __repr__(self) -> str:  # never show the token
        return f"GitLabTarget(api_url={self.api_url!r}, project_id={self.project_id!r})"

    @property
    def server_url(self) -> str:
        return self.api_url.removesuffix("/").removesuffix("/api/v4")


def gitlab_target(
    env: Mapping[str, str], feature: str, settings: Settings | None = None
) -> GitLabTarget:
    """Where and as whom to talk to GitLab: the token from the settings the face built (the
    CI environment for the rest); InputError if unset."""
    token = settings_or_env(settings, env).gitlab_token
    api_url = env.get("CI_API_V4_URL")
    project = env.get("CI_PROJECT_ID")
    missing = [
        name
        for name, value in (
            ("HIE_GITLAB_TOKEN (or GITLAB_TOKEN)", token),
            ("CI_API_V4_URL", api_url),
            ("CI_PROJECT_ID", project),
        )
        if not value
    ]
    if missing:
        raise InputError(
            f"{feature} needs GitLab: {', '.join(missing)} not set. The token must be a project "
            "or group access token with the api scope (CI_JOB_TOKEN cannot write notes)"
        )
    assert token and api_url and project
    return GitLabTarget(api_url, project, token)


def connect(target: GitLabTarget) -> Any:
    """A python-gitlab client: bounded retries of 5xx and 429 (honouring Retry-After)."""
    import functools

    import gitlab

    gl = gitlab.Gitlab(
        url=target.server_url,
        private_token=target.token.get_secret_value(),
        timeout=TIMEOUT_SECONDS,
        retry_transient_errors=True,
        per_page=100,
    )
    # python-gitlab allows 10 retries per request by default (backoff up to ~100 s); every
    # request it makes goes through http_request, so bound them there.
    gl.http_request = functools.partial(gl.http_request, max_retries=MAX_RETRIES)  # type: ignore[method-assign]
    return gl


@contextmanager
def reported(what: str) -> Iterator[None]:
    """Turn python-gitlab and transport errors into the tool's errors, without secrets."""
    import gitlab.exceptions as gle
    import requests

    try:
        yield
    except gle.GitlabAuthenticationError:
        raise InputError(
            f"GitLab refused the token while trying to {what} (401): check HIE_GITLAB_TOKEN"
        ) from None
    except gle.GitlabError as exc:
        code = getattr(exc, "response_code", None)
        if code == 403:
            raise InputError(
                f"GitLab: the token may not {what} (403). It needs the api scope and at least "
                "the Reporter role (Developer to write notes); CI_JOB_TOKEN cannot write notes"
            ) from None
        if code == 404:
            raise InputError(
                f"GitLab: not found while trying to {what} (404): the project, merge request "
                "or issue does not exist, or this token cannot see it"
            ) from None
        raise ServiceError(
            f"GitLab still failing after {MAX_RETRIES} retries while trying to {what}"
            + (f" (HTTP {code})" if code else "")
        ) from None
    except requests.RequestException as exc:
        raise ServiceError(
            f"GitLab unreachable while trying to {what} ({type(exc).__name__})"
        ) from None


def call(what: str, fn: Callable[[], T]) -> T:
    with reported(what):
        return fn()


def freeze_periods(
    env: Mapping[str, str], settings: Settings | None = None
) -> list[dict[str, Any]] | None:
    """The project's deploy freeze periods as GitLab lists them (GET /projects/:id/
    freeze_periods), or None when GitLab is not configured."""
    try:
        target = gitlab_target(env, "the deploy freeze periods", settings)
    except InputError:
        return None
    from urllib.parse import quote

    gl = connect(target)
    # python-gitlab has no manager for freeze periods: its generic paginated list instead.
    path = f"/projects/{quote(target.project_id, safe='')}/freeze_periods"
    periods = call(
        "read the project's deploy freeze periods",
        lambda: list(gl.http_list(path, iterator=True, per_page=100)),
    )
    return [p for p in periods if isinstance(p, dict)]


def describe_freeze(env: Mapping[str, str]) -> str:
    """Name the project's deploy freeze periods, when GitLab can be asked; never fails."""
    base = "GitLab deploy freeze (CI_DEPLOY_FREEZE is set)"
    try:
        periods = freeze_periods(env) or []
    except HieError:  # best effort: the freeze itself already blocks
        return base
    named = [
        f"{p.get('freeze_start')} to {p.get('freeze_end')} ({p.get('cron_timezone') or 'UTC'})"
        for p in periods
    ]
    return base + (f"; freeze periods: {'; '.join(named)}" if named else "")


class NoteTarget:
    """The merge request (or change issue) whose notes hie-notify reads and writes, and the
    identity it writes as. Built from the CI environment; nothing is fetched until needed."""

    def __init__(self, target: GitLabTarget, kind: str, iid: int | None, sha: str | None):
        self.target = target
        self.kind = kind  # "mr" or "issue"
        self._iid = iid
        self._sha = sha
        self._gl: Any = None
        self._me: int | None = None

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        feature: str,
        *,
        allow_issue: bool = True,
        settings: Settings | None = None,
    ) -> NoteTarget:
        target = gitlab_target(env, feature, settings)
        issue = env.get("HIE_CHANGE_ISSUE_IID") if allow_issue else None
        if issue:
            if not issue.isdigit():
                raise InputError(f"HIE_CHANGE_ISSUE_IID: expected an issue number, got {issue!r}")
            return cls(target, "issue", int(issue), None)
        mr = env.get("CI_MERGE_REQUEST_IID")
        if mr:
            if not mr.isdigit():
                raise InputError(f"CI_MERGE_REQUEST_IID: expected a number, got {mr!r}")
            return cls(target, "mr", int(mr), None)
        sha = env.get("CI_COMMIT_SHA")
        if not sha:
            raise InputError(
                f"{feature} needs CI_MERGE_REQUEST_IID, CI_COMMIT_SHA or HIE_CHANGE_ISSUE_IID "
                "to know which merge request or issue to use"
            )
        return cls(target, "mr", None, sha)

    @property
    def description(self) -> str:
        return f"gitlab:{self.kind}:{self._iid if self._iid is not None else '(from commit)'}"

    def client(self) -> Any:
        if self._gl is None:
            self._gl = connect(self.target)
        return self._gl

    def project(self) -> Any:
        return self.client().projects.get(self.target.project_id, lazy=True)

    def my_id(self) -> int:
        if self._me is None:
            gl = self.client()
            call("identify the notifier's user", gl.auth)
            self._me = int(gl.user.id)
        return self._me

    def noteable(self) -> Any:
        project = self.project()
        if self._iid is None:
            sha = self._sha
            mrs = call(
                "find the merge request of the commit",
                lambda: project.commits.get(sha, lazy=True).merge_requests(),
            )
            if not mrs:
                raise InputError(
                    f"no merge request contains commit {sha} (set HIE_CHANGE_ISSUE_IID to keep "
                    "the record on a change issue instead)"
                )
            self._iid = int(mrs[0]["iid"])
        manager = project.mergerequests if self.kind == "mr" else project.issues
        return manager.get(self._iid, lazy=True)

    def own_notes(self, what: str) -> list[Any]:
        """Notes written by our own user (never system notes), oldest first."""
        me = self.my_id()
        noteable = self.noteable()
        notes = call(
            what,
            lambda: list(noteable.notes.list(iterator=True, sort="asc", order_by="created_at")),
        )
        return [
            n
            for n in notes
            if not n.attributes.get("system") and int(n.attributes["author"]["id"]) == me
        ]


def other_approvers(where: NoteTarget) -> tuple[list[str], str]:
    """(usernames of approvers who are not the merge request's author, the author)."""
    noteable = where.noteable()
    mr = call("read the merge request", lambda: where.project().mergerequests.get(noteable.iid))
    author = mr.attributes.get("author") or {}
    approvals = call("read the merge request's approvals", lambda: mr.approvals.get())
    users = [a.get("user") or {} for a in approvals.attributes.get("approved_by") or []]
    others = [str(u.get("username")) for u in users if u.get("id") != author.get("id")]
    return others, str(author.get("username"))


def merge_request_description(where: NoteTarget) -> str:
    """The merge request's description as GitLab holds it (its task list ticks the policy's
    checklists): never the branch's files, which the branch controls."""
    noteable = where.noteable()
    mr = call("read the merge request", lambda: where.project().mergerequests.get(noteable.iid))
    return str(mr.attributes.get("description") or "")


# Reading the protected policy: at most this many attempts and this much time in all, waiting
# what Retry-After asks up to a cap (a job must not hang on GitLab for minutes).
POLICY_ATTEMPTS = 4
POLICY_BUDGET_SECONDS = 30.0
POLICY_RETRY_AFTER_CAP = 10.0


def read_repository_file(
    env: Mapping[str, str],
    project: str,
    path: str,
    ref: str | None,
    *,
    sleep: Callable[[float], None] | None = None,
    monotonic: Callable[[], float] | None = None,
    settings: Settings | None = None,
) -> tuple[bytes | None, str]:
    """A file at a ref (the project's default branch when `ref` is None) through the GitLab
    API: (bytes, ref), or (None, ref) when the file does not exist there. Reads with
    HIE_GITLAB_TOKEN (or GITLAB_TOKEN), else the job's CI_JOB_TOKEN.

    Two plain GETs with `requests` rather than python-gitlab: python-gitlab neither bounds the
    total time of its retries nor lets the caller see Retry-After, and this read must give up
    within POLICY_BUDGET_SECONDS, saying how many attempts it made."""
    import time
    from urllib.parse import quote

    import requests

    api_url = env.get("CI_API_V4_URL")
    if not api_url:
        raise InputError("CI_API_V4_URL is not set: cannot read the protected policy")
    given = settings_or_env(settings, env)
    token = given.gitlab_token.get_secret_value() if given.gitlab_token else None
    job_token = None if token else given.ci_job_token

    if not token and not job_token:
        raise InputError(
            "reading the protected policy needs HIE_GITLAB_TOKEN (read_api scope) or the job's "
            "CI_JOB_TOKEN; neither is set"
        )
    if token:
        headers = {"PRIVATE-TOKEN": token}
    else:
        assert job_token is not None
        headers = {"JOB-TOKEN": job_token.get_secret_value()}
    what = f"read the protected policy {path} from project {project}"
    if job_token:
        what += (
            " with CI_JOB_TOKEN (if your GitLab does not let job tokens read repository "
            "files, set HIE_GITLAB_TOKEN with the read_api scope)"
        )
    base = f"{api_url.removesuffix('/')}/projects/{quote(project, safe='')}"
    getter = _BoundedGet(
        requests.Session(), headers, what, sleep or time.sleep, monotonic or time.monotonic
    )
    if ref is None:
        data = getter.get(base).json() or {}
        ref = str(data.get("default_branch") or "main")
        if data.get("id") is not None:
            base = f"{api_url.removesuffix('/')}/projects/{quote(str(data['id']), safe='')}"
    url = f"{base}/repository/files/{quote(path, safe='')}/raw"
    response = getter.get(url, params={"ref": ref}, missing_file_ok=True)
    if response is None:
        return None, ref
    return bytes(response.content), ref


class _BoundedGet:
    """GET with at most POLICY_ATTEMPTS attempts within POLICY_BUDGET_SECONDS, honouring
    Retry-After up to POLICY_RETRY_AFTER_CAP; errors as the tool's, never with the token."""

    def __init__(
        self,
        session: Any,
        headers: Mapping[str, str],
        what: str,
        sleep: Callable[[float], None],
        monotonic: Callable[[], float],
    ) -> None:
        self.session, self.headers, self.what = session, dict(headers), what
        self.sleep, self.monotonic = sleep, monotonic
        self.started = monotonic()

    def get(
        self, url: str, params: Mapping[str, str] | None = None, *, missing_file_ok: bool = False
    ) -> Any:
        import requests

        last = ""
        attempts = 0
        while True:
            attempts += 1
            wait = min(2.0 ** (attempts - 1), POLICY_RETRY_AFTER_CAP)
            # Each attempt may use only what is left of the budget.
            left = POLICY_BUDGET_SECONDS - (self.monotonic() - self.started)
            try:
                response = self.session.get(
                    url,
                    headers=self.headers,
                    params=params,
                    timeout=min(TIMEOUT_SECONDS, max(left, 1.0)),
                )
            except requests.RequestException as exc:
                last = type(exc).__name__
            else:
                code = response.status_code
                if code < 400:
                    return response
                if code == 404 and missing_file_ok and "file not found" in _message(response):
                    return None  # the file is not there; a missing project or ref is an error
                if code == 401:
                    raise InputError(
                        f"GitLab refused the token while trying to {self.what} (401): check "
                        "HIE_GITLAB_TOKEN"
                    )
                if code == 403:
                    raise InputError(
                        f"GitLab: the token may not {self.what} (403). It needs the read_api scope"
                    )
                if code == 404:
                    raise InputError(
                        f"GitLab: not found while trying to {self.what} (404): the project or "
                        "ref does not exist, or this token cannot see it"
                    )
                if code != 429 and code < 500:
                    raise InputError(f"GitLab refused to {self.what} (HTTP {code})")
                last = f"HTTP {code}"
                wait = _retry_after(response.headers.get("Retry-After"), wait)
            elapsed = self.monotonic() - self.started
            if attempts >= POLICY_ATTEMPTS or elapsed + wait > POLICY_BUDGET_SECONDS:
                raise ServiceError(
                    f"GitLab still failing after {attempts} attempt(s) in {elapsed:.0f} s while "
                    f"trying to {self.what} ({last})"
                )
            with progress.waiting(wait, f"GitLab, to {self.what} ({last})"):
                self.sleep(wait)


def _retry_after(value: str | None, default: float) -> float:
    """Seconds Retry-After asks for (capped); `default` when absent or not a number."""
    try:
        return min(max(float(value), 0.0), POLICY_RETRY_AFTER_CAP) if value else default
    except ValueError:
        return default


def _message(response: Any) -> str:
    try:
        data = response.json()
    except ValueError:
        return ""
    return str(data.get("message", "")).lower() if isinstance(data, dict) else ""
