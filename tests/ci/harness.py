"""Run GitLab CI pipelines for real on this machine with gitlab-ci-local, in throwaway git
repositories, and read what the jobs left behind (outbox, ledger, dotenv, logs).

gitlab-ci-local comes from npm (`.ci/run` installs the pinned version into tests/ci/node_modules
and exports HIE_GITLAB_CI_LOCAL); see ../shared/reference/gitlab-ci-local.md for what it models.
Every job runs in the shell (`--force-shell-executor`), each in its own copy of the repository
(`--shell-isolation`), with the hie-notify of this checkout's virtualenv first on PATH.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
COMPONENT = ROOT / "templates" / "hie-notify.yml"
CLASSIC = ROOT / "ci-templates" / "hie-notify.gitlab-ci.yml"
EXAMPLES = ROOT / "ci-templates" / "examples"
FAKE_BIN = HERE / "bin"
SERVER = "gitlab.example.com"
# The merge-request pipeline, as the reference spells it for gitlab-ci-local (its variables
# come from gitlab_predefined).
MR_ARGS = ["--unset-variable", "CI_COMMIT_BRANCH"]
TIMEOUT = 300
PROJECT_ID = "42"
JOB_TOKEN = "glcbt-64_the-job-token-of-the-test"


def gitlab_predefined(
    *, merge_request: bool, protected: bool, project: str = "acme/deploy"
) -> dict[str, str]:
    """What GitLab itself sets in every job of such a pipeline (gitlab-ci-local leaves
    GITLAB_CI=false, CI_COMMIT_REF_PROTECTED=false and a made-up project id): the suite runs
    the templates as GitLab does, so it fails where GitLab would. Every scenario goes through
    `Repo.run`, which passes these first (a test's own variables win)."""
    server = f"https://{SERVER}"
    found = {
        "GITLAB_CI": "true",
        "CI_SERVER_URL": server,
        "CI_SERVER_FQDN": SERVER,
        "CI_API_V4_URL": f"{server}/api/v4",
        "CI_PROJECT_ID": PROJECT_ID,
        "CI_PROJECT_PATH": project,
        "CI_DEFAULT_BRANCH": "main",
        "CI_COMMIT_REF_PROTECTED": "true" if protected else "false",
        "CI_JOB_TOKEN": JOB_TOKEN,
    }
    if merge_request:
        found.update(
            {
                "CI_PIPELINE_SOURCE": "merge_request_event",
                "CI_MERGE_REQUEST_IID": "1",
                "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "change/FFAPP-4458",
                "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
                "CI_COMMIT_REF_NAME": "change/FFAPP-4458",
            }
        )
    return found


PREDEFINED_ARGS = [
    "--ignore-predefined-vars",
    "CI_PIPELINE_SOURCE,GITLAB_CI,CI_COMMIT_REF_PROTECTED,CI_PROJECT_ID,CI_COMMIT_REF_NAME,"
    "CI_API_V4_URL,CI_SERVER_URL,CI_SERVER_FQDN,CI_PROJECT_PATH,CI_DEFAULT_BRANCH",
]


def find_gitlab_ci_local() -> tuple[str | None, str]:
    """The gitlab-ci-local executable, or None and why it is not there."""
    named = os.environ.get("HIE_GITLAB_CI_LOCAL")
    if named:
        if Path(named).is_file() and os.access(named, os.X_OK):
            return named, ""
        # Named but missing is a broken install, not a reason to skip: fail loudly.
        raise RuntimeError(f"HIE_GITLAB_CI_LOCAL={named} is not an executable file")
    local = HERE / "node_modules" / ".bin" / "gitlab-ci-local"
    if local.exists():
        return str(local), ""
    found = shutil.which("gitlab-ci-local")
    if found:
        return found, ""
    return None, (
        "gitlab-ci-local is not installed: `bash .ci/run` installs it (npm ci --prefix tests/ci), "
        "or set HIE_GITLAB_CI_LOCAL to its path"
    )


def missing_tools() -> str:
    """Why the template scenarios cannot run here ('' when they can)."""
    _, why = find_gitlab_ci_local()
    if why:
        return why
    for tool in ("git", "rsync", "bash"):
        if shutil.which(tool) is None:
            why = f"{tool} is not installed (gitlab-ci-local needs it; apt-get install -y {tool})"
            if os.environ.get("HIE_GITLAB_CI_LOCAL"):  # CI asked for the scenarios: fail
                raise RuntimeError(why)
            return why
    return ""


def safe_job_name(name: str) -> str:
    """gitlab-ci-local's folder name for a job (`hie-notify:plan` -> `hie-notifyOgplan`)."""
    return re.sub(
        r"[^\w-]+",
        lambda m: base64.b64encode(m.group().encode()).decode().rstrip("="),
        name,
    )


@dataclass
class Result:
    returncode: int
    log: str
    repo: Repo
    args: list[str] = field(default_factory=list)

    def job_status(self) -> dict[str, str]:
        """PASS / FAIL / warn of each job that ran, from the summary at the end of the log."""
        statuses: dict[str, str] = {}
        for line in self.log.splitlines():
            m = re.match(r"^\s*(PASS|FAIL|WARN)\s+(\S+)\s*$", line)
            if m:
                statuses[m.group(2)] = m.group(1)
        return statuses

    def job_log(self, job: str) -> str:
        path = self.repo.state / "output" / f"{safe_job_name(job)}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def explain(self) -> str:
        return (
            f"gitlab-ci-local {' '.join(self.args)} exited {self.returncode}:\n{self.log[-6000:]}"
        )


class Repo:
    """A throwaway git repository whose origin looks like a GitLab project."""

    def __init__(self, path: Path, project: str = "acme/deploy", home: Path | None = None):
        self.path = path
        self.project = project
        self.home = home or path.parent / f"{path.name}-home"
        self.extra_path: list[Path] = []
        # False: jobs do not find this checkout's hie-notify (and Python) on PATH, as on a runner
        # whose image lacks it, so the templates install it.
        self.own_hie_notify = True
        # True: the jobs' Python takes its clock from HIE_TEST_CLOCK (tests/ci/clock), for
        # pipelines where GitLab CI refuses HIE_NOW (outside a trial).
        self.clock_shim = False
        path.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.name", "Test Deployer")
        self.git("config", "user.email", "deployer@example.org")
        self.git("config", "commit.gpgsign", "false")
        self.git("remote", "add", "origin", f"https://{SERVER}/{project}.git")

    @property
    def state(self) -> Path:
        return self.path / ".gitlab-ci-local"

    def env(self) -> dict[str, str]:
        glcl, _ = find_gitlab_ci_local()
        assert glcl is not None
        paths = [
            *(str(p) for p in self.extra_path),
            str(FAKE_BIN),
            *([str(Path(sys.executable).parent)] if self.own_hie_notify else []),  # hie-notify
            str(Path(glcl).resolve().parent),  # node, when npm installed it beside
            str(Path(glcl).parent),
            os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ]
        # This checkout's hie_notify, not whatever the virtualenv was installed from.
        python_path = [str(HERE / "clock")] if self.clock_shim else []
        python_path += [str(ROOT)] if self.own_hie_notify else []
        own = {"PYTHONPATH": os.pathsep.join(python_path)} if python_path else {}
        return {
            **own,
            "PATH": os.pathsep.join(paths),
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "GIT_CONFIG_GLOBAL": str(self.home / ".gitconfig"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "TMPDIR": os.environ.get("TMPDIR", "/tmp"),
        }

    def git(self, *args: str) -> str:
        env = {**os.environ, "GIT_CONFIG_GLOBAL": str(self.home / ".gitconfig")}
        proc = subprocess.run(
            ["git", *args], cwd=self.path, env=env, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)}: {proc.stderr}")
        return proc.stdout.strip()

    def write(self, rel: str, text: str | bytes) -> Path:
        target = self.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            target.write_bytes(text)
        else:
            target.write_text(text)
        return target

    def copy(self, source: Path, rel: str) -> Path:
        target = self.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return target

    def commit(self, message: str = "change") -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        # origin/main = HEAD: silences gitlab-ci-local's default-branch guess.
        self.git("update-ref", "refs/remotes/origin/main", "HEAD")
        self.git("symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main")
        return self.git("rev-parse", "HEAD")

    def serve_project(self, project: str, source: Path) -> None:
        """Make `https://SERVER/<project>.git` (as gitlab-ci-local clones it) this local repo."""
        with (self.home / ".gitconfig").open("a") as fh:
            fh.write(f'[url "file://{source}"]\n\tinsteadOf = https://{SERVER}:443/{project}.git\n')
            fh.write(f'[url "file://{source}"]\n\tinsteadOf = https://{SERVER}/{project}.git\n')

    def run(
        self,
        *,
        merge_request: bool = False,
        now: str | None = None,
        variables: dict[str, str] | None = None,
        jobs: list[str] | None = None,
        extra: list[str] | None = None,
        protected: bool | None = None,
    ) -> Result:
        """One pipeline. A merge request's is unprotected, the default branch's protected
        (`protected` says otherwise); GitLab's default "separate caches for protected
        branches" is kept: each kind of pipeline finds only its own kind's cache."""
        glcl, _ = find_gitlab_ci_local()
        assert glcl is not None
        protected = (not merge_request) if protected is None else protected
        # gitlab-ci-local takes one --ignore-predefined-vars list: merge a test's into ours.
        extra, ignored = list(extra or []), [PREDEFINED_ARGS[1]]
        while "--ignore-predefined-vars" in extra:
            at = extra.index("--ignore-predefined-vars")
            ignored.append(extra[at + 1])
            del extra[at : at + 2]
        args = [
            "--shell-isolation",
            "--force-shell-executor",
            "--no-artifacts-to-source",
            "--no-color",
            "--max-job-name-padding",
            "0",
            PREDEFINED_ARGS[0],
            ",".join(ignored),
        ]
        if merge_request:
            args += MR_ARGS
        given = {
            **gitlab_predefined(
                merge_request=merge_request, protected=protected, project=self.project
            ),
            **({"HIE_NOW": now} if now else {}),
            **(variables or {}),
        }
        for key, value in given.items():
            args += ["--variable", f"{key}={value}"]
        args += extra
        args += jobs or []
        kind = "protected" if protected else "non_protected"
        self._bring_cache(kind)
        try:
            proc = subprocess.run(
                [glcl, *args],
                cwd=self.path,
                env=self.env(),
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
                check=False,
            )
        finally:
            self._keep_cache(kind)
        return Result(proc.returncode, proc.stdout + proc.stderr, self, args)

    # GitLab keeps protected and unprotected pipelines' caches apart (keys end -protected or
    # -non_protected); gitlab-ci-local has one cache folder: swap each kind's in and out.

    @property
    def caches(self) -> Path:
        return self.home / "ci-caches"

    def _bring_cache(self, kind: str) -> None:
        live = self.state / "cache"
        shutil.rmtree(live, ignore_errors=True)
        if (self.caches / kind).exists():
            live.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(self.caches / kind, live, symlinks=True)

    def _keep_cache(self, kind: str) -> None:
        live = self.state / "cache"
        shutil.rmtree(self.caches / kind, ignore_errors=True)
        if live.exists():
            self.caches.mkdir(parents=True, exist_ok=True)
            shutil.move(str(live), str(self.caches / kind))

    def cache_files(self, kind: str, pattern: str) -> list[Path]:
        """Files of one kind's cache (`protected` or `non_protected`)."""
        return sorted((self.caches / kind).glob(pattern))

    def preview(self) -> str:
        glcl, _ = find_gitlab_ci_local()
        assert glcl is not None
        proc = subprocess.run(
            [glcl, "--preview", "--no-color"],
            cwd=self.path,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"gitlab-ci-local --preview: {proc.stdout}{proc.stderr}")
        return proc.stdout

    # -- what the jobs left

    def artifacts(self, job: str) -> Path:
        return self.state / "artifacts" / safe_job_name(job)

    def dotenv(self, job: str, name: str) -> dict[str, str]:
        path = self.artifacts(job) / ".gitlab-ci-reports" / "dotenv" / name
        if not path.exists():
            return {}
        pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
        return {k: v for k, v in pairs}

    def outbox(self) -> dict[str, Path]:
        """Every outbox file any job published, by path under the outbox."""
        files: dict[str, Path] = {}
        for root in sorted((self.state / "artifacts").glob("*/hie-notify-outbox")):
            for path in sorted(root.rglob("*")):
                if path.is_file():
                    files[path.relative_to(root).as_posix()] = path
        return files

    def ledger(self) -> list[dict[str, Any]]:
        """The file ledger: every job's copy (artifacts) and the cache, merged as the jobs do."""
        seen: dict[str, dict[str, Any]] = {}
        sources = sorted(self.caches.glob("*/*/.hie-notify/cache/ledger.jsonl"))
        sources += sorted(self.state.glob("artifacts/*/.hie-notify/jobs/*.jsonl"))
        for source in sources:
            for line in source.read_text().splitlines():
                if line.strip() and line not in seen:
                    seen[line] = json.loads(line)
        return list(seen.values())

    def reset_state(self) -> None:
        """Forget every earlier pipeline (artifacts, cache, logs), as a fresh scenario needs."""
        shutil.rmtree(self.state, ignore_errors=True)
        shutil.rmtree(self.caches, ignore_errors=True)


def stages_of(entries: list[dict[str, Any]]) -> dict[str, int]:
    """How many notices of each stage the ledger holds (a transition's own entry is none)."""
    counts: dict[str, int] = {}
    for entry in entries:
        if entry["stage"] != "lifecycle":
            counts[entry["stage"]] = counts.get(entry["stage"], 0) + 1
    return counts


def transitions_of(entries: list[dict[str, Any]]) -> list[str]:
    """The lifecycle transitions the ledger records, in order."""
    return [e["extra"]["transition"] for e in entries if e["stage"] == "lifecycle"]
