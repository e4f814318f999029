"""The release: ci/release.py (the tag, the package and every pin agree; an upload that went
through counts as published), the Dockerfile (hadolint, and what the image must be), and the
project's own pipeline on a tag and off it (GitLab's CI schema, as written and as expanded)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ci.harness import ROOT, Repo, find_gitlab_ci_local
from tests.ci.registry import GitLabPypiStandIn
from tests.support import tools

VERSION = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)[1]
RELEASE = ROOT / "ci" / "release.py"
needs_glcl = pytest.mark.tools("gitlab-ci-local")


def release(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RELEASE), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """The files the release check reads, copied to change them."""
    copy = tmp_path / "checkout"
    for name in ("README.md", "pyproject.toml"):
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, copy / name)
    for name in ("templates", "ci-templates"):
        shutil.copytree(ROOT / name, copy / name)
    (copy / "hie_notify").mkdir()
    shutil.copy(ROOT / "hie_notify" / "__init__.py", copy / "hie_notify" / "__init__.py")
    return copy


# -- ci/release.py check


def test_this_checkout_is_releasable_at_its_version() -> None:
    done = release("check", VERSION)
    assert done.returncode == 0, done.stderr
    assert f"all say {VERSION}" in done.stdout


def test_a_tag_that_is_not_the_package_version_fails_naming_every_pin() -> None:
    done = release("check", "9.9.9")
    assert done.returncode == 1
    for where in (
        "pyproject.toml: version is",
        "hie_notify/__init__.py: __version__ is",
        "ci-templates/hie-notify.gitlab-ci.yml: variables.HIE_NOTIFY_VERSION is",
        "README.md:",
        "ci-templates/examples/terraform-plan-json.gitlab-ci.yml:",
    ):
        assert where in done.stderr, where


@pytest.mark.parametrize(
    ("path", "old", "new", "expected"),
    [
        (
            "README.md",
            f"hie-notify@{VERSION}",
            "hie-notify@0.0.9",
            "README.md:{line}: names release 0.0.9",
        ),
        (
            "ci-templates/hie-notify.gitlab-ci.yml",
            f'HIE_NOTIFY_VERSION: "{VERSION}"',
            'HIE_NOTIFY_VERSION: "0.0.9"',
            "variables.HIE_NOTIFY_VERSION is '0.0.9'",
        ),
        (
            "ci-templates/examples/hcp-terraform-classic.gitlab-ci.yml",
            f"ref: {VERSION}",
            "ref: 0.0.9",
            "hcp-terraform-classic.gitlab-ci.yml:{line}: names release 0.0.9",
        ),
        (
            "templates/hie-notify.yml",
            "$[[ component.version ]]",
            "0.0.9",
            "does not use $[[ component.version ]]",
        ),
        ("hie_notify/__init__.py", f'"{VERSION}"', '"0.0.9"', "__version__ is '0.0.9'"),
    ],
)
def test_one_pin_that_disagrees_stops_the_release(
    checkout: Path, path: str, old: str, new: str, expected: str
) -> None:
    target = checkout / path
    text = target.read_text()
    assert old in text
    line = text[: text.index(old)].count("\n") + 1
    target.write_text(text.replace(old, new, 1))
    done = release("check", VERSION, cwd=checkout)
    assert done.returncode == 1
    assert expected.format(line=line) in done.stderr, done.stderr


@pytest.mark.parametrize("tag", ["v0.1.0", "0.1", "0.1.0-rc.1", "latest"])
def test_only_a_release_version_tag_releases(tag: str) -> None:
    done = release("check", tag)
    assert done.returncode == 1
    assert "expected a release version X.Y.Z" in done.stderr


# -- ci/release.py published: a re-run after the upload went through


@pytest.fixture
def dist(tmp_path: Path) -> list[Path]:
    """A wheel and an sdist by the names the build job gives them (contents do not matter to
    the index)."""
    out = tmp_path / "dist"
    out.mkdir()
    files = [
        out / f"hie_notify-{VERSION}-py3-none-any.whl",
        out / f"hie_notify-{VERSION}.tar.gz",
    ]
    for path in files:
        path.write_bytes(b"not really a distribution")
    return files


@pytest.mark.tools("pypiserver")
def test_published_when_the_registry_lists_both_files(tmp_path: Path, dist: list[Path]) -> None:
    token = "glcbt-release-job"
    with GitLabPypiStandIn(dist[0].parent, "42", token, tmp_path) as registry:
        index = registry.simple.replace("https://", f"https://gitlab-ci-token:{token}@")
        done = subprocess.run(
            [sys.executable, str(RELEASE), "published", index, *map(str, dist)],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "SSL_CERT_FILE": str(registry.ca_file)},
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    assert token not in done.stdout + done.stderr
    assert [r.user for r in registry.requests] == ["gitlab-ci-token"]
    assert registry.requests[0].raw_path.endswith("/projects/42/packages/pypi/simple/hie-notify/")


@pytest.mark.tools("pypiserver")
def test_not_published_when_a_file_is_missing(tmp_path: Path, dist: list[Path]) -> None:
    token = "glcbt-release-job"
    dist[1].unlink()  # the sdist never reached the registry
    with GitLabPypiStandIn(dist[0].parent, "42", token, tmp_path) as registry:
        index = registry.simple.replace("https://", f"https://gitlab-ci-token:{token}@")
        done = subprocess.run(
            [sys.executable, str(RELEASE), "published", index, *map(str, dist)],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "SSL_CERT_FILE": str(registry.ca_file)},
            timeout=120,
        )
    assert done.returncode == 1
    assert f"hie_notify-{VERSION}.tar.gz is not in the package registry" in done.stderr


# -- the Dockerfile


def _hadolint() -> str:
    return tools.require("hadolint")


@pytest.mark.tools("hadolint")
def test_dockerfile_passes_hadolint() -> None:
    done = subprocess.run(
        [_hadolint(), "--failure-threshold", "info", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.tools("hadolint")
def test_hadolint_would_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install hie-notify\n")
    done = subprocess.run(
        [_hadolint(), str(bad)], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode != 0
    assert "DL3007" in done.stdout and "DL3013" in done.stdout


def _instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def test_the_image_is_slim_python_the_wheel_and_a_user_that_is_not_root() -> None:
    """What hadolint does not check: the image the component's jobs run (they need a shell,
    so no ENTRYPOINT; GitLab's job token must not meet root)."""
    steps = _instructions(ROOT / "Dockerfile")
    froms = [rest for word, rest in steps if word == "FROM"]
    assert len(froms) == 1 and re.fullmatch(r"python:3\.\d+-slim", froms[0]), froms
    copies = [rest for word, rest in steps if word in ("COPY", "ADD")]
    assert copies == ["dist/hie_notify-${VERSION}-py3-none-any.whl /tmp/"], copies
    runs = " ".join(rest for word, rest in steps if word == "RUN")
    assert 'pip install --no-cache-dir "/tmp/hie_notify-${VERSION}-py3-none-any.whl"' in runs
    assert "hie-notify --version" in runs
    assert not re.search(r"apt-get|apk |curl|wget", runs), "nothing but the wheel"
    users = [rest for word, rest in steps if word == "USER"]
    assert users and users[-1] not in ("0", "root"), users
    assert [word for word, _ in steps].index("USER") > [w for w, _ in steps].index("RUN")
    assert "ENTRYPOINT" not in [word for word, _ in steps]
    ignore = (ROOT / ".dockerignore").read_text().split()
    assert ignore[ignore.index("*") :] == ["*", "!dist/*.whl"], "the builder gets the wheel only"


# -- the project's own pipeline


def _pipeline() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / ".gitlab-ci.yml").read_text())
    return data


def test_release_jobs_run_on_a_release_tag_only_and_in_order() -> None:
    jobs = _pipeline()
    tag_rule = jobs[".on-release-tag"]["rules"][0]["if"]
    pattern = re.search(r"=~ /(.*)/$", tag_rule)
    assert pattern, tag_rule
    assert re.match(pattern[1].replace("\\\\", "\\"), "1.2.3")
    assert not re.match(pattern[1].replace("\\\\", "\\"), "v1.2.3")
    for name in ("release-check", "publish-package", "publish-image", "release"):
        assert jobs[name]["extends"] == ".on-release-tag", name
    for name in ("publish-package", "publish-image"):
        assert set(jobs[name]["needs"]) >= {"release-check", "test", "dist"}, name
    assert set(jobs["release"]["needs"]) == {"publish-package", "publish-image"}
    assert jobs["release"]["release"]["tag_name"] == "$CI_COMMIT_TAG"


def test_publish_uses_the_job_token_and_the_image_builds_without_docker() -> None:
    jobs = _pipeline()
    publish = jobs["publish-package"]
    assert publish["variables"]["TWINE_USERNAME"] == "gitlab-ci-token"
    assert publish["variables"]["TWINE_PASSWORD"] == "$CI_JOB_TOKEN"
    script = "\n".join(publish["script"])
    assert "/projects/${CI_PROJECT_ID}/packages/pypi" in script
    assert "ci/release.py published" in script
    image = jobs["publish-image"]
    assert image["image"].startswith("quay.io/buildah/")
    assert "services" not in image, "no Docker-in-Docker"
    script = "\n".join(image["script"])
    assert 'buildah build --build-arg VERSION="$CI_COMMIT_TAG"' in script
    assert 'buildah push "$CI_REGISTRY_IMAGE:$CI_COMMIT_TAG"' in script
    assert "docker" not in script


def _own_pipeline_repo(tmp_path: Path) -> Repo:
    repo = Repo(tmp_path / "hie-notify", project="platform/hie-notify")
    repo.copy(ROOT / ".gitlab-ci.yml", ".gitlab-ci.yml")
    repo.commit("the pipeline")
    return repo


def _list(repo: Repo, *args: str) -> set[str]:
    """The jobs a pipeline would run (rules evaluated)."""
    glcl, _ = find_gitlab_ci_local()
    assert glcl
    done = subprocess.run(
        [glcl, "--list-json", *args],
        cwd=repo.path,
        env=repo.env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return {job["name"] for job in yaml.safe_load(done.stdout) if job["when"] != "never"}


@needs_glcl
def test_release_pipeline_expanded_validates_and_only_a_tag_releases(
    tmp_path: Path, check_jsonschema: str
) -> None:
    repo = _own_pipeline_repo(tmp_path)
    expanded = tmp_path / "expanded.yml"
    expanded.write_text(repo.preview())
    jobs = yaml.safe_load(expanded.read_text())
    assert {"dist", "release-check", "publish-package", "publish-image", "release"} <= set(jobs)
    assert jobs["publish-image"]["rules"] == jobs["release"]["rules"]  # `extends:` resolved
    done = subprocess.run(
        [
            check_jsonschema,
            "--builtin-schema",
            "vendor.gitlab-ci",
            "--data-transform",
            "gitlab-ci",
            str(expanded),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr

    release_jobs = {"release-check", "publish-package", "publish-image", "release"}
    on_tag = _list(repo, "--variable", f"CI_COMMIT_TAG={VERSION}")
    assert release_jobs <= on_tag
    on_branch = _list(repo)
    assert not release_jobs & on_branch
    assert {"lint", "test", "dist"} <= on_branch


@needs_glcl
def test_release_check_job_passes_at_the_version_and_fails_at_another(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "hie-notify", project="platform/hie-notify")
    for name in ("README.md", "pyproject.toml", ".gitlab-ci.yml", "ci/release.py"):
        repo.copy(ROOT / name, name)
    repo.copy(ROOT / "hie_notify" / "__init__.py", "hie_notify/__init__.py")
    for name in ("templates", "ci-templates"):
        shutil.copytree(ROOT / name, repo.path / name)
    repo.commit("release")
    ok = repo.run(variables={"CI_COMMIT_TAG": VERSION}, jobs=["release-check"])
    assert ok.returncode == 0, ok.explain()
    assert f"all say {VERSION}" in ok.job_log("release-check")
    bad = repo.run(variables={"CI_COMMIT_TAG": "9.9.9"}, jobs=["release-check"])
    assert bad.returncode != 0
    assert "pyproject.toml: version is" in bad.job_log("release-check")
