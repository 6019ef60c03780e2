"""`crowd demo --exit` as a real process: service, RQ worker, a crowd over HTTP, the table."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from click.testing import CliRunner

from crowd.cli import main
from crowd.config import Settings
from tests.service.test_commands import CROWD, _env, _free_port

# The first 12 tasks of Snow et al.'s temporal-ordering data (`temp`), as published in
# https://github.com/pmaglione/crowd-datasets (commit 3efbceb, TEMP/temp.standardized.tsv);
# R. Snow, B. O'Connor, D. Jurafsky, A. Y. Ng, "Cheap and Fast - But is it Good?",
# EMNLP 2008. One line per task: its id, the gold label, then worker:label for each answer.
SNOW_TEMP_SLICE = [
    "t00000 1 A2HTGQE4AACVRV:1 AYHHOK9GDSWNH:1 A1QRQZWBL1SVEX:1 A3G0MGLBT484I1:1 A7NC1H5ZK7TO0:1 A3MPXWFMR0Y2LK:1 A11GX90QFWDLMM:2 A3PIXX8DQGYHGI:2 A2KONK3TIL5KVX:1 A18941IO2ZZWW6:2",
    "t00001 1 A5C6BAAHFTJFP:1 A18WNE09USHJSG:1 A3J0VZOPOGW1QC:1 A3G0MGLBT484I1:1 AUPV5WJK85K4F:1 AYHHOK9GDSWNH:1 A3PIXX8DQGYHGI:2 A11GX90QFWDLMM:2 A18941IO2ZZWW6:2 A1PBRFFOTO5ZU6:1",
    "t00002 2 A5C6BAAHFTJFP:2 A18WNE09USHJSG:2 A3J0VZOPOGW1QC:2 A3G0MGLBT484I1:1 AUPV5WJK85K4F:2 AYHHOK9GDSWNH:2 A3PIXX8DQGYHGI:2 A11GX90QFWDLMM:2 A18941IO2ZZWW6:2 A1PBRFFOTO5ZU6:2",
    "t00003 2 A18WNE09USHJSG:2 A3G0MGLBT484I1:1 AXTU992Z7V3ZX:2 AYHHOK9GDSWNH:2 AUPV5WJK85K4F:2 A26KXB5XCGERD2:2 A370556EFVZ9W4:2 A3PIXX8DQGYHGI:2 A11GX90QFWDLMM:2 A18941IO2ZZWW6:2",
    "t00004 1 AEX5NCH03LWSG:1 AYHHOK9GDSWNH:1 A2G80S3EM9SDBD:1 A3G0MGLBT484I1:1 A26KXB5XCGERD2:1 AXTU992Z7V3ZX:1 A3PIXX8DQGYHGI:2 A38UUFVXEND88G:1 A11GX90QFWDLMM:2 A18941IO2ZZWW6:2",
    "t00005 1 A1EPIK54UEQYQB:1 A3G0MGLBT484I1:1 A2VKPMR5HCCZF5:1 A5C6BAAHFTJFP:2 AUPV5WJK85K4F:1 A1GR4JB3DODIQ1:1 A370556EFVZ9W4:1 A3PIXX8DQGYHGI:2 A11GX90QFWDLMM:2 A18941IO2ZZWW6:1",
    "t00006 2 AEX5NCH03LWSG:2 AEU1NROWHLIJF:2 A18WNE09USHJSG:2 A2G80S3EM9SDBD:2 AYHHOK9GDSWNH:2 A3G0MGLBT484I1:1 A5C6BAAHFTJFP:2 AUPV5WJK85K4F:2 A11GX90QFWDLMM:2 A3PIXX8DQGYHGI:2",
    "t00007 2 AEX5NCH03LWSG:2 AEU1NROWHLIJF:2 A18WNE09USHJSG:2 A2G80S3EM9SDBD:2 AYHHOK9GDSWNH:2 A3G0MGLBT484I1:1 A5C6BAAHFTJFP:2 AUPV5WJK85K4F:2 A11GX90QFWDLMM:2 A3PIXX8DQGYHGI:2",
    "t00008 1 A5C6BAAHFTJFP:1 AEX5NCH03LWSG:1 A18WNE09USHJSG:1 AYHHOK9GDSWNH:1 A3G0MGLBT484I1:1 AUPV5WJK85K4F:1 A1UV8TD7KO88IM:1 A3PIXX8DQGYHGI:2 A11GX90QFWDLMM:2 A18941IO2ZZWW6:1",
    "t00009 1 A5C6BAAHFTJFP:1 AEX5NCH03LWSG:1 A18WNE09USHJSG:1 AYHHOK9GDSWNH:1 A3G0MGLBT484I1:1 AUPV5WJK85K4F:1 A1UV8TD7KO88IM:1 A3PIXX8DQGYHGI:2 A11GX90QFWDLMM:2 A18941IO2ZZWW6:1",
    "t00010 1 A5C6BAAHFTJFP:1 AEX5NCH03LWSG:1 A18WNE09USHJSG:1 AYHHOK9GDSWNH:1 A3G0MGLBT484I1:1 AUPV5WJK85K4F:1 A1UV8TD7KO88IM:1 A3PIXX8DQGYHGI:2 A11GX90QFWDLMM:2 A18941IO2ZZWW6:2",
    "t00011 2 A18WNE09USHJSG:2 A1EPIK54UEQYQB:2 AYHHOK9GDSWNH:2 A26J29AVWFIMNY:2 AZE6KLDFEXBM0:2 A3G0MGLBT484I1:1 A18941IO2ZZWW6:1 AUPV5WJK85K4F:2 A3PIXX8DQGYHGI:2 A11GX90QFWDLMM:2",
]  # fmt: skip


def _demo(settings: Settings, tmp_path: Path, *args: str) -> tuple[str, dict[str, str]]:
    """Run `crowd demo --exit` on the test servers; return its stdout and the table's rows."""
    env = _env(
        CROWD_DATABASE_URL=settings.database_url or "",
        CROWD_REDIS_URL=settings.redis_url or "",
        CROWD_DATA_DIR=str(tmp_path / "data"),
    )
    done = subprocess.run(
        [CROWD, "demo", "--exit", "--port", str(_free_port()), *args],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "answering ended" in done.stderr and "tasks complete" in done.stderr  # progress
    rows = dict(re.findall(r"^\| (.+?) +\| (.+?) \|$", done.stdout, re.MULTILINE))
    # the last progress line, after the runs have settled, counts every run
    assert re.findall(r"\| runs (\d+) \|", done.stderr)[-1] == rows["aggregation runs"]
    return done.stdout, rows


def test_demo_on_a_simulated_crowd_beats_majority_vote_bans_spammers_and_saves_answers(
    settings: Settings, clean: None, tmp_path: Path
) -> None:
    """Slow (about 20 s): the whole `make run` cycle, a service started and a simulated crowd
    answering a batch over HTTP while runs aggregate live."""
    out, rows = _demo(
        settings, tmp_path, "--tasks", "120", "--good-workers", "8", "--spammers", "2",
        "--think", "0",
    )  # fmt: skip
    assert rows["tasks scored against the truth"] == "120"
    assert rows["tasks complete"] == "120"
    mv = float(rows["accuracy: majority vote (all answers)"])
    ds = float(rows["accuracy: crowd (Dawid-Skene, bans, dynamic overlap)"])
    assert ds >= 0.85 and ds >= mv - 0.03, rows
    used = int(rows["answers used on regular tasks"])
    assert used < int(rows["answers at fixed overlap 7 (max_overlap)"])
    # ... and what dynamic overlap added to the base overlap's 3 answers a task
    assert rows["answers at the base overlap 3"] == "360"
    extra = used - 360
    assert rows["answers beyond the base overlap 3 (dynamic overlap)"] == (
        f"{extra:+d} ({extra / 360:+.1%})"
    )
    assert rows["spammers banned"] == "2 of 2"
    assert int(rows["good workers banned (wrongly)"].split(" of ")[0]) <= 1
    assert re.search(r"^banned: spammer-\d+, spammer \(", out, re.MULTILINE), out
    link = re.search(r"(http://127\.0\.0\.1:\d+)/dashboard/projects/(\d+)#token=(crowd_\S+)", out)
    assert link, out
    # How to label yourself: the page, and the request that makes a worker token for it
    base, token = link.group(1), link.group(3)
    assert f"{base}/label#token=" in out
    assert f"curl -s -X POST {base}/api/v1/workers -H 'Authorization: Bearer {token}'" in out


def test_demo_replays_a_real_dataset(settings: Settings, clean: None, tmp_path: Path) -> None:
    """Slow (about 20 s): a real crowd's answers are replayed over HTTP against a started
    service, with live aggregation."""
    data = tmp_path / "snow_temp_slice"
    data.mkdir()
    answers, gold = ["task,worker,label"], ["task,label"]
    for line in SNOW_TEMP_SLICE:
        task, truth, *given = line.split()
        gold.append(f"{task},{truth}")
        answers += [f"{task},{w.replace(':', ',')}" for w in given]
    (data / "answers.csv").write_text("\n".join(answers) + "\n")
    (data / "gold.csv").write_text("\n".join(gold) + "\n")

    out, rows = _demo(settings, tmp_path, "--data", str(data), "--limit-tasks", "0")
    assert "replay of snow_temp_slice: 12 tasks" in out
    assert rows["tasks scored against the truth"] == "12"
    recorded = int(rows["answers recorded in the dataset (up to 10 per task)"])
    assert recorded == 120
    assert 36 <= int(rows["answers used on regular tasks"]) <= recorded  # overlap 3 at least
    assert rows["answers at the base overlap 3"] == "36"
    # The live figure is not bounded here: it depends on which workers reach each task first,
    # and three of this slice's workers answer 2 on nearly every task (on a loaded machine
    # they can be the first three everywhere). The demo still reports it, as a share.
    assert 0.0 <= float(rows["accuracy: crowd (Dawid-Skene, bans, dynamic overlap)"]) <= 1.0
    # the slice's reference: every recorded answer, aggregated offline (the vote is right on
    # all 12 tasks)
    assert rows["accuracy: majority vote on every recorded answer (offline)"] == "1.0000"
    assert float(rows["accuracy: Dawid-Skene on every recorded answer (offline)"]) >= 0.75


def test_demo_data_that_is_not_a_dataset_gets_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "answers.csv").write_text("task,worker,label\nt1,w1,a\nt2,w1\n")
    (tmp_path / "gold.csv").write_text("task,label\nt1,a\n")
    result = CliRunner().invoke(main, ["demo", "--exit", "--data", str(tmp_path)])
    assert result.exit_code == 2
    assert f"{tmp_path / 'answers.csv'}:3: expected 3 fields, got 2" in result.output
    (tmp_path / "gold.csv").unlink()
    result = CliRunner().invoke(main, ["demo", "--exit", "--data", str(tmp_path)])
    assert result.exit_code == 2 and "gold.csv not found" in result.output


def test_demo_against_a_url_needs_a_token() -> None:
    result = CliRunner(env={"CROWD_TOKEN": None}).invoke(
        main, ["demo", "--url", "http://127.0.0.1:9"]
    )
    assert result.exit_code == 2
    assert "--url needs a requester token of that service" in result.output
