# The HTTP API (`solver serve`) with the shipped models, installed from the wheel by the same
# steps as the wheel test (tests/e2e/test_wheel.py): .ci/wheel-install, which runs
# `python -m build` and then `pip install` of the wheel.
#
#   docker build -t solver .
#   docker run --rm -p 8080:8080 solver
#   curl -s http://127.0.0.1:8080/v1/sites
#
# Your own profiles and models: mount them on the working folder's site_profiles/ and models/,
# which are looked in before the shipped ones:
#   docker run --rm -p 8080:8080 -v "$PWD/site_profiles:/srv/site_profiles:ro" \
#       -v "$PWD/models:/srv/models:ro" solver
FROM python:3.11-slim
COPY . /src
RUN python -m pip install --no-cache-dir build \
    && BUILD_PYTHON=python /src/.ci/wheel-install /tmp/dist --no-cache-dir \
    && python -m pip uninstall --yes build pyproject_hooks \
    && rm -rf /src /tmp/dist \
    && useradd --create-home --uid 1000 solver
USER solver
WORKDIR /srv
EXPOSE 8080
# 0.0.0.0 inside the container; the server still answers only requests that name it as
# localhost or 127.0.0.1 (as `-p 8080:8080` does) or a name given with --allow-host
ENTRYPOINT ["solver", "serve", "--host", "0.0.0.0", "--port", "8080"]
CMD []
