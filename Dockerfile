# The crowd image: the API (`crowd serve`, gunicorn) and the RQ worker (`crowd worker`).
# docker-compose.yml runs it against PostgreSQL and Redis containers; see docs/DEPLOY.md.
# Needs BuildKit (the default builder since Docker 23; `DOCKER_BUILDKIT=1` on Docker 20.10)
# for the pip cache mount. PYTHON_IMAGE picks the base: the official image by default, a
# local stand-in where Docker Hub cannot be reached (deploy/local-images.sh).
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /app

# Dependencies first, from pyproject.toml and the lock alone, so that neither a code change nor
# a README change reinstalls them; at the versions of the lock (constraints.txt), as `make run`
# and `make test` install them. (All of them ship manylinux wheels for x86_64: no compiler.)
# pip's cache is a build cache mount: a changed lock downloads only what changed, and nothing
# of the cache ends up in the image.
COPY pyproject.toml constraints.txt ./
RUN --mount=type=cache,target=/root/.cache/pip \
    python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt setuptools \
    && rm /tmp/requirements.txt \
    && useradd --create-home --uid 10001 crowd

# The code (.dockerignore lets in only what the package needs), installed without build
# isolation: setuptools came with the dependencies, so this step needs no network.
COPY . ./
RUN pip install --no-deps --no-build-isolation --no-cache-dir . && rm -rf build *.egg-info

USER crowd
# Both URLs are set by docker-compose.yml, so nothing is ever written here; set anyway so that
# a mistake (a URL left unset) starts embedded servers in a writable place rather than failing.
ENV CROWD_DATA_DIR=/home/crowd/.crowd

EXPOSE 8000
# `crowd serve` applies pending migrations, then runs gunicorn (gthread workers) on
# crowd.api:create_app() and forwards SIGTERM to it for a graceful stop.
CMD ["crowd", "serve", "--host", "0.0.0.0", "--port", "8000"]
