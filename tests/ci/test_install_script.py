"""The templates' setup, run in bash with a stand-in `python3` that records what pip would be
asked: which release, from which index URL, with which credentials. The same lines run in
both templates (test_ci_templates.py checks they are the same); the README pipeline test runs
them against a real package index."""

from __future__ import annotations

import os
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.ci.harness import CLASSIC, COMPONENT

API = "https://gitlab.example.com/api/v4"
TOKEN = "glcbt-64_secret-job-token"
SETUP = list(yaml.safe_load_all(COMPONENT.read_text()))[1][".hie-notify-component:base"][
    "before_script"
][0]

# Records pip's arguments and index, then "installs" hie-notify beside itself.
PYTHON3 = """#!/bin/sh
printf '%s\\n' "$*" > "$RECORD.args"
printf '%s' "${PIP_INDEX_URL-<unset>}" > "$RECORD.index"
printf '#!/bin/sh\\necho "hie-notify 1.2.3"\\n' > "$(dirname "$0")/hie-notify"
chmod +x "$(dirname "$0")/hie-notify"
"""


def run_setup(tmp_path: Path, env: dict[str, str], *, has_hie_notify: bool = False) -> Any:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    python3 = bin_dir / "python3"
    python3.write_text(PYTHON3)
    python3.chmod(0o755)
    if has_hie_notify:
        (bin_dir / "hie-notify").write_text('#!/bin/sh\necho "hie-notify 1.2.3"\n')
        (bin_dir / "hie-notify").chmod(0o755)
    record = tmp_path / "pip"
    proc = subprocess.run(
        ["bash", "-e", "-c", SETUP],
        cwd=tmp_path,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "RECORD": str(record), **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    args = Path(f"{record}.args")
    index = Path(f"{record}.index")
    proc.pip_args = args.read_text().split() if args.exists() else None  # type: ignore[attr-defined]
    proc.index = index.read_text() if index.exists() else None  # type: ignore[attr-defined]
    return proc


def test_both_templates_run_this_setup() -> None:
    (classic,) = yaml.safe_load_all(CLASSIC.read_text())
    assert classic[".hie-notify:base"]["before_script"][0] == SETUP


@pytest.mark.parametrize(
    ("env", "index"),
    [
        pytest.param(
            {"CI_API_V4_URL": API, "HIE_NOTIFY_PROJECT": "platform/hie-notify"},
            f"https://gitlab-ci-token:{TOKEN}@gitlab.example.com/api/v4/projects/"
            "platform%2Fhie-notify/packages/pypi/simple",
            id="project path, URL-encoded, with the job token",
        ),
        pytest.param(
            {
                "CI_API_V4_URL": "https://git.example.org:8443/gitlab/api/v4",
                "HIE_NOTIFY_PROJECT": "infra/tools/hie-notify",
            },
            f"https://gitlab-ci-token:{TOKEN}@git.example.org:8443/gitlab/api/v4/projects/"
            "infra%2Ftools%2Fhie-notify/packages/pypi/simple",
            id="subgroups, a port and a relative URL",
        ),
        pytest.param(
            {"CI_API_V4_URL": API},
            f"https://gitlab-ci-token:{TOKEN}@gitlab.example.com/api/v4/projects/"
            "platform%2Fhie-notify/packages/pypi/simple",
            id="the default project",
        ),
        pytest.param(
            {"CI_API_V4_URL": API, "HIE_NOTIFY_INDEX": f"{API}/projects/42/packages/pypi/simple"},
            f"https://gitlab-ci-token:{TOKEN}@gitlab.example.com/api/v4/projects/42/packages/"
            "pypi/simple",
            id="another registry on this GitLab: by project ID",
        ),
        pytest.param(
            {"CI_API_V4_URL": API, "HIE_NOTIFY_INDEX": f"{API}/groups/7/-/packages/pypi/simple"},
            f"https://gitlab-ci-token:{TOKEN}@gitlab.example.com/api/v4/groups/7/-/packages/"
            "pypi/simple",
            id="a group's registry on this GitLab",
        ),
        pytest.param(
            {"CI_API_V4_URL": API, "HIE_NOTIFY_INDEX": "https://pypi.example.org/simple"},
            "https://pypi.example.org/simple",
            id="an index elsewhere never gets the job token",
        ),
        pytest.param(
            {
                "CI_API_V4_URL": API,
                "HIE_NOTIFY_INDEX": "https://gitlab.example.com.evil.example/api/v4/projects/1/"
                "packages/pypi/simple",
            },
            "https://gitlab.example.com.evil.example/api/v4/projects/1/packages/pypi/simple",
            id="nor does a look-alike host",
        ),
    ],
)
def test_index_url_forms(tmp_path: Path, env: dict[str, str], index: str) -> None:
    done = run_setup(
        tmp_path,
        {"CI_JOB_TOKEN": TOKEN, "HIE_NOTIFY_VERSION": "1.2.3", "HIE_LEDGER": "gitlab", **env},
    )
    assert done.returncode == 0, done.stderr
    assert done.index == index
    assert done.pip_args == ["-m", "pip", "install", "--quiet", "hie-notify==1.2.3"]
    assert TOKEN not in done.stdout + done.stderr, "the job token was printed"
    assert "hie-notify 1.2.3" in done.stdout


def test_without_a_job_token_the_index_has_no_credentials(tmp_path: Path) -> None:
    done = run_setup(tmp_path, {"CI_API_V4_URL": API, "HIE_NOTIFY_VERSION": "1.2.3"})
    assert done.returncode == 0, done.stderr
    assert done.index == f"{API}/projects/platform%2Fhie-notify/packages/pypi/simple"


@pytest.mark.parametrize(
    ("version", "reference", "installed"),
    [
        ("1.2.3", "1.2", "1.2.3"),  # component context resolved @1.2 to 1.2.3
        ("", "1.2.3", "1.2.3"),  # not a catalog project, included at the tag
        ("$[[ component.version ]]", "1.2.3", "1.2.3"),  # left as text (gitlab-ci-local)
    ],
)
def test_which_release(tmp_path: Path, version: str, reference: str, installed: str) -> None:
    done = run_setup(
        tmp_path,
        {"CI_API_V4_URL": API, "HIE_NOTIFY_VERSION": version, "HIE_NOTIFY_REFERENCE": reference},
    )
    assert done.returncode == 0, done.stderr
    assert done.pip_args[-1] == f"hie-notify=={installed}"


@pytest.mark.parametrize("reference", ["", "main", "1.2", "~latest", "0" * 40])
def test_no_release_to_install_says_which_variable_to_set(tmp_path: Path, reference: str) -> None:
    done = run_setup(
        tmp_path,
        {"CI_API_V4_URL": API, "HIE_NOTIFY_VERSION": "", "HIE_NOTIFY_REFERENCE": reference},
    )
    assert done.returncode == 2
    assert "Set the CI/CD variable HIE_NOTIFY_VERSION" in done.stderr
    assert done.pip_args is None


def test_an_image_with_hie_notify_installs_nothing(tmp_path: Path) -> None:
    done = run_setup(
        tmp_path, {"CI_API_V4_URL": API, "HIE_NOTIFY_VERSION": "1.2.3"}, has_hie_notify=True
    )
    assert done.returncode == 0, done.stderr
    assert done.pip_args is None
    assert "pip install" not in done.stdout


def test_install_of_your_own_wins(tmp_path: Path) -> None:
    done = run_setup(
        tmp_path,
        {
            "CI_API_V4_URL": API,
            "CI_JOB_TOKEN": TOKEN,
            "HIE_NOTIFY_VERSION": "1.2.3",
            "HIE_NOTIFY_INSTALL": "https://files.example.org/hie_notify-1.2.3-py3-none-any.whl",
        },
        has_hie_notify=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.pip_args == [
        "-m",
        "pip",
        "install",
        "--quiet",
        "https://files.example.org/hie_notify-1.2.3-py3-none-any.whl",
    ]
    assert done.index == "<unset>"


SEGMENT = st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,12}", fullmatch=True)


@settings(max_examples=30, deadline=None)
@given(st.lists(SEGMENT, min_size=2, max_size=4))
def test_any_project_path_round_trips_through_the_url(segments: list[str]) -> None:
    project = "/".join(segments)
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"hie-setup-{os.getpid()}"
    work.mkdir(exist_ok=True)
    for stale in ("bin/hie-notify", "pip.args", "pip.index"):
        (work / stale).unlink(missing_ok=True)
    done = run_setup(
        work, {"CI_API_V4_URL": API, "HIE_NOTIFY_PROJECT": project, "HIE_NOTIFY_VERSION": "1.0.0"}
    )
    assert done.returncode == 0, done.stderr
    prefix, rest = done.index.split("/projects/", 1)
    encoded, tail = rest.split("/", 1)
    assert prefix == API and tail == "packages/pypi/simple"
    assert "/" not in encoded and urllib.parse.unquote(encoded) == project
