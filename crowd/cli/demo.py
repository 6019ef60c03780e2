"""``crowd demo``: the whole cycle on one machine, from an empty service to scored labels."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import click
import requests

from crowd.cli.serve import check_listen, listen_options, servers_ready
from crowd.demo.report import bans, score, table
from crowd.demo.run import Progress, play
from crowd.demo.scenarios import Scenario, replay, simulated


@click.command()
@listen_options
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Replay a real crowd from DIR/answers.csv (task,worker,label) and DIR/gold.csv "
    "(task,label) instead of simulating one.",
)
@click.option(
    "--limit-tasks",
    default=200,
    show_default=True,
    type=click.IntRange(0),
    help="With --data: replay this many tasks (a seeded sample; 0: all).",
)
@click.option(
    "--tasks", default=400, show_default=True, type=click.IntRange(1), help="Simulated tasks."
)
@click.option(
    "--good-workers",
    "good",
    default=16,
    show_default=True,
    type=click.IntRange(1),
    help="Simulated good workers (accuracy 0.70-0.95).",
)
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(1),
    hidden=True,
    deprecated="use --good-workers (crowd serve's --workers is gunicorn processes)",
    help="The old spelling of --good-workers.",
)
@click.option(
    "--spammers",
    default=4,
    show_default=True,
    type=click.IntRange(0),
    help="Simulated spammers (random or constant answers).",
)
@click.option(
    "--labels", default=3, show_default=True, type=click.IntRange(2, 20), help="Simulated labels."
)
@click.option(
    "--gold-share",
    default=0.1,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Extra simulated tasks posted as gold, as a share of --tasks.",
)
@click.option(
    "--think",
    default=0.05,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds a simulated good worker takes per answer (spammers: a quarter).",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=int,
    help="Seed of the simulation or of the --limit-tasks sample.",
)
@click.option(
    "--timeout",
    default=900,
    show_default=True,
    type=click.IntRange(10),
    help="Stop the answering after this many seconds.",
)
@click.option(
    "--exit",
    "exit_",
    is_flag=True,
    help="Stop the service at the end instead of serving until Ctrl-C.",
)
@click.option(
    "--url",
    default=None,
    metavar="URL",
    help="Play against the crowd service already running at URL (e.g. a docker compose "
    "deployment) instead of starting one; needs --token. Exits at the end.",
)
@click.option(
    "--token",
    envvar="CROWD_TOKEN",
    default=None,
    help="With --url: a requester (or admin) token of that service [env: CROWD_TOKEN].",
)
def demo(
    host: str, port: int, data: Path | None, limit_tasks: int, tasks: int, good: int,
    workers: int | None, spammers: int, labels: int, gold_share: float, think: float,
    seed: int, timeout: int, exit_: bool, url: str | None, token: str | None,
) -> None:  # fmt: skip
    """Run the whole cycle: serve, post a batch, let a crowd answer, aggregate, score.

    Starts the service as `crowd serve` does (embedded PostgreSQL and Redis unless
    CROWD_DATABASE_URL / CROWD_REDIS_URL are set) with an aggregation worker. A requester
    posts a batch; simulated workers of different skill, spammers included (or, with --data,
    the real workers of a dataset), fetch and answer it concurrently over HTTP. Dawid-Skene
    runs live, the quality rule bans bad workers and dynamic overlap stops asking once a label
    is confident. At the end a table compares majority vote and the service's labels with the
    truth, answers used with a fixed overlap, and who was banned; then the service keeps
    serving (the dashboard URL is printed) until Ctrl-C, or stops with --exit.

    With --url, the same crowd plays against a service that is already running (with its
    own workers), and the command exits once it is scored.
    """
    if url is not None and not token:
        raise click.UsageError(
            "--url needs a requester token of that service: pass --token or set CROWD_TOKEN"
        )
    if url is None:
        check_listen(host, port)
    if data is not None:
        try:
            scenario = replay(data, limit_tasks=limit_tasks or None, seed=seed)
        except (OSError, ValueError) as exc:
            raise click.BadParameter(str(exc), param_hint="--data") from None
    else:
        scenario = simulated(
            tasks=tasks, good=workers or good, spammers=spammers, labels=labels,
            gold_share=gold_share, think=think, seed=seed,
        )  # fmt: skip
    if url is not None and token:
        url = url.rstrip("/")
        _wait_healthy(None, url, seconds=30)
        _play_and_report(url, token, scenario, timeout)
        raise SystemExit(0)
    # SIGTERM ends the demo like Ctrl-C does: the service and embedded servers are stopped.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    with servers_ready("demo requester", first_start_only=False) as servers:
        command = [sys.executable, "-m", "crowd.cli", "serve", "--host", host, "--port",
                   str(port), "--with-worker"]  # fmt: skip
        data_dir = servers.settings.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        log_path = data_dir / "demo-service.log"
        with log_path.open("ab") as log:
            click.echo(f"crowd demo: the service logs to {log_path}", err=True)
            service = subprocess.Popen(
                command, env=servers.env, stdout=log, stderr=subprocess.STDOUT
            )
            try:
                raise SystemExit(
                    _demo(service, host, port, servers.token, scenario, timeout, exit_)
                )
            finally:
                _stop(service)


def _demo(
    service: subprocess.Popen[bytes], host: str, port: int, token: str, scenario: Scenario,
    timeout: float, exit_: bool,
) -> int:  # fmt: skip
    url = f"http://{host}:{port}"
    _wait_healthy(service, url)
    _play_and_report(url, token, scenario, timeout)
    if exit_:
        return 0
    click.echo("Serving until Ctrl-C.")
    try:
        return service.wait()
    except KeyboardInterrupt:
        return 0


def _play_and_report(url: str, token: str, scenario: Scenario, timeout: float) -> None:
    """Play ``scenario`` against the service at ``url``, then print its scores and links."""
    click.echo(f"crowd demo: {scenario.title}", err=True)
    click.echo(f"crowd demo: the service is at {url}; answering starts", err=True)
    outcome = play(url, token, scenario, progress=_show_progress, timeout=timeout)
    if sys.stderr.isatty():
        click.echo("", err=True)
    click.echo(f"crowd demo: answering ended: {outcome.ended}", err=True)
    report = score(scenario, outcome)
    click.echo(f"\n{report.title}\n")
    click.echo(table(report))
    if report.banned:
        click.echo(f"\n{bans(report)}")
    pid = outcome.project["id"]
    click.echo(
        f"\nProject {pid}. Dashboard: {url}/dashboard/projects/{pid}#token={token}\n"
        f"API: {url}/api/v1/projects/{pid}/results with 'Authorization: Bearer {token}'\n"
        f"Label tasks yourself on {url}/label with a worker token; make one with\n"
        f"    curl -s -X POST {url}/api/v1/workers -H 'Authorization: Bearer {token}' \\\n"
        f"         -H 'Content-Type: application/json' -d '{{\"name\": \"me\"}}'\n"
        f'and open {url}/label#token=<the "token" it returns> (this project\'s tasks may all be\n'
        f"complete: post more to {url}/api/v1/projects/{pid}/tasks, see the README)."
    )


def _exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _show_progress(p: Progress) -> None:
    line = (
        f"[{p.seconds:5.0f} s] answers {p.answers:6d} | tasks complete {p.tasks_complete}/"
        f"{p.tasks} | runs {p.runs} | banned {p.banned}"
    )
    if sys.stderr.isatty():
        click.echo(f"\r{line}", err=True, nl=False)
    else:
        click.echo(line, err=True)


def _wait_healthy(service: subprocess.Popen[bytes] | None, url: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if service is not None and service.poll() is not None:
            raise click.ClickException(
                f"the service exited with status {service.returncode} before it was up (is "
                f"the port taken? pass --port)"
            )
        try:
            if requests.get(f"{url}/healthz", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise click.ClickException(f"the service at {url} was not healthy within {seconds:.0f} s")


def _stop(service: subprocess.Popen[bytes]) -> None:
    if service.poll() is None:
        service.send_signal(signal.SIGINT)
    try:
        service.wait(timeout=60)
    except subprocess.TimeoutExpired:
        service.kill()
        service.wait()


COMMANDS = [demo]
