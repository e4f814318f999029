# hie-notify's job image: a slim Python with the release's wheel installed and nothing else.
# The release job builds it from dist/ (the wheel the `wheel` job built) with Buildah, no
# Docker daemon: buildah build --build-arg VERSION=X.Y.Z -t "$CI_REGISTRY_IMAGE:X.Y.Z" .
FROM python:3.12-slim

ARG VERSION
LABEL org.opencontainers.image.title="hie-notify" \
      org.opencontainers.image.description="Deployment notices and the notice gate for GitLab CI" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# Only the wheel of this release (the build fails if dist/ holds another version or none).
COPY dist/hie_notify-${VERSION}-py3-none-any.whl /tmp/
RUN pip install --no-cache-dir "/tmp/hie_notify-${VERSION}-py3-none-any.whl" \
    && rm "/tmp/hie_notify-${VERSION}-py3-none-any.whl" \
    && useradd --uid 10001 --create-home --shell /usr/sbin/nologin hie-notify \
    && hie-notify --version

# GitLab runs the job script in the image's shell: no ENTRYPOINT, and a non-root user (the
# runner's umask leaves the checkout writable for it).
USER 10001
WORKDIR /home/hie-notify
CMD ["hie-notify", "--help"]
