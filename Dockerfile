# The crowd image: the API (`crowd serve`, gunicorn) and the RQ worker (`crowd worker`).
# docker-compose.yml runs it against PostgreSQL and Redis containers; see docs/DEPLOY.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so a code change does not reinstall them; at
# the versions of the lock (constraints.txt), as `make run` and `make test` install them.
# (All of them ship manylinux wheels for x86_64: no compiler needed.)
COPY pyproject.toml README.md constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY crowd ./crowd
COPY workers ./workers
RUN pip install --no-deps . \
    && useradd --create-home --uid 10001 crowd

USER crowd
# Both URLs are set by docker-compose.yml, so nothing is ever written here; set anyway so that
# a mistake (a URL left unset) starts embedded servers in a writable place rather than failing.
ENV CROWD_DATA_DIR=/home/crowd/.crowd

EXPOSE 8000
# `crowd serve` applies pending migrations, then runs gunicorn (gthread workers) on
# crowd.api:create_app() and forwards SIGTERM to it for a graceful stop.
CMD ["crowd", "serve", "--host", "0.0.0.0", "--port", "8000"]
