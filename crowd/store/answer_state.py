"""A project's answers kept between aggregation runs, so that a run reads only the new ones.

A *kept copy* is a folder of column files (``id``, ``task``, ``worker``, ``label``,
``proposal``: raw little-endian int64, one value per answer) and ``meta.json``, under the
worker's state directory (``CROWD_STATE_DIR``), in the database's folder
(:func:`database_folder`: ``db-<system identifier>-<timeline>-<database oid>``), in a folder
named by the project's ``state_key``. It lives on disk, not in the job process, so it
outlives RQ's fork per job and a worker restart; a second worker with a state directory of
its own keeps a copy of its own. :func:`sweep` deletes the copies no run will read again.

Invariants, and how each is kept:

* **A copy is exactly the project's answered rows in one PostgreSQL snapshot.** It is written
  from a read made in one REPEATABLE READ transaction, and ``meta.json`` records that
  transaction's snapshot (``pg_current_snapshot()``), the row count and a checksum of the ids.
* **Copy + new rows = a full read.** A run in snapshot S reads the rows whose answering
  transaction (``assignments.answered_xid``) the copy's snapshot C did not see and S does:
  ``answered_xid >= xmin(C) AND NOT pg_visible_in_snapshot(answered_xid, C)`` (S's visibility
  applies by itself). A high-water mark ``answered_xid > max seen`` would be wrong: xids are
  handed out at a transaction's first write, not at its commit, so a transaction with a lower
  xid can commit after C was taken, and its answers would be skipped for good. Comparing
  against C's in-progress list is what catches them: the transaction was in progress in C (or
  started after it), so C did not see it, whatever its xid.
* **Nothing else about the copy's rows changed since C.** Anything that changes, un-answers
  or deletes an answered row, or changes the project's labels, bumps ``projects.answers_epoch``
  in its own transaction (triggers, migration 0017). The copy records the epoch it was read
  at; a run whose snapshot shows another epoch reads the project whole again. Bans change no
  row: the copy keeps every answer and the run leaves out banned workers' answers itself.
* **A writer that dies leaves a usable copy or none.** Columns are only appended to, and
  ``meta.json`` (replaced atomically, after the columns are flushed) says how many rows are
  valid: rows a dead writer appended past that count are cut off by the next one. A full
  rewrite removes ``meta.json`` first, so half-rewritten columns are never read.
* **A copy is read only against the database it was read from.** A project's folder is
  named by its row's random ``state_key``, inside a folder named by the database's identity:
  a database restored into another cluster or to a point in time, a promoted standby, or a
  database dropped and created again has another identity, so its projects (same
  ``state_key``, same epoch) start from PostgreSQL. Where the server does not tell its
  identity in full, a run whose snapshot's xmax is below the copy's (transaction ids handed
  out again: the database went back in time) reads the project whole as well.
* **Drift cannot last.** A copy older than ``full_reload_seconds`` (default one hour) is read
  whole again, as if it were missing.

Runs of one project never overlap (the run lock of :mod:`crowd.background.scheduling`), so a
folder has one writer at a time. A copy that cannot be written (disk full) costs a full read
next time, never a wrong result.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg2
import pyarrow as pa

from crowd.store.columns import copy_columns
from crowd.store.db import Cursor

log = logging.getLogger(__name__)

COLUMNS = ("id", "task", "worker", "label", "proposal")
#: A kept copy older than this is read whole again (seconds).
FULL_RELOAD_SECONDS = 3600
_DTYPE = np.dtype("<i8")
_FORMAT = 1

Columns = dict[str, np.ndarray]


@dataclass(frozen=True)
class Answers:
    """A project's answered rows (``columns``: ``COLUMNS`` as ``(n,)`` int64 arrays, in no
    particular order), how they were read (``load``: ``"incremental"``, or ``"full: <why>"``)
    and how many rows came from PostgreSQL (``read``)."""

    columns: Columns
    load: str
    read: int
    #: The project's copy folder (None: no copy kept), the epoch and last published run in
    #: this snapshot: what :func:`read_published` and :func:`keep_published` check against.
    folder: Path | None = None
    epoch: int = 0
    last_run_id: int | None = None


def _select(cur: Cursor, project_id: int, where: str = "", params: tuple[Any, ...] = ()) -> Columns:
    query = cur.mogrify(
        "SELECT id, task_id, worker_id, label, coalesce(proposal, -1) FROM assignments"
        f" WHERE project_id = %s AND status = 'answered'{where}",
        (project_id, *params),
    ).decode()
    return copy_columns(cur, query, dict.fromkeys(COLUMNS, pa.int64()))


def read(
    cur: Cursor,
    project_id: int,
    root: Path | None,
    *,
    full_reload_seconds: float = FULL_RELOAD_SECONDS,
) -> Answers:
    """The project's answered rows in this transaction's snapshot, from the copy kept under
    ``root`` and the rows it lacks; the copy is brought up to date (or written whole).

    Call inside the REPEATABLE READ transaction of :func:`crowd.store.snapshot.load`: the
    snapshot recorded is the transaction's. ``root`` None: no copy is kept (every read is
    full)."""
    cur.execute(
        "SELECT answers_epoch, state_key::text, pg_current_snapshot()::text, last_run_id"
        " FROM projects WHERE id = %s",
        (project_id,),
    )
    row = cur.fetchone()
    if row is None or root is None:
        columns = _select(cur, project_id)
        why = "no project" if row is None else "no state directory"
        return Answers(columns, f"full: {why}", _rows(columns))
    epoch, key, snapshot = int(row[0]), str(row[1]), str(row[2])
    folder = root / database_folder(cur) / key
    where = {"folder": folder, "epoch": epoch, "last_run_id": row[3]}
    meta, why = _open(folder, project_id, epoch, snapshot, full_reload_seconds)
    if meta is None:
        columns = _select(cur, project_id)
        _write_whole(folder, columns, _meta(project_id, epoch, snapshot, columns, time.time()))
        return Answers(columns, f"full: {why}", _rows(columns), **where)
    new = _select(
        cur,
        project_id,
        " AND answered_xid >= pg_snapshot_xmin(%s::pg_snapshot)"
        " AND NOT pg_visible_in_snapshot(answered_xid, %s::pg_snapshot)",
        (meta["snapshot"], meta["snapshot"]),
    )
    loaded = _load(folder, meta, new)
    if loaded is None:
        columns = _select(cur, project_id)
        _write_whole(folder, columns, _meta(project_id, epoch, snapshot, columns, time.time()))
        return Answers(columns, "full: damaged copy", _rows(columns), **where)
    columns = loaded
    _append(folder, meta, new, _meta(project_id, epoch, snapshot, columns, meta["built_at"]))
    return Answers(columns, "incremental", _rows(new), **where)


#: The published results' columns, as :func:`crowd.store.snapshot.load` gives them.
PUBLISHED = ("task", "label", "answers", "confidence", "decision")


def read_published(answers: Answers) -> Columns | None:
    """The project's published results as the copy kept beside its answers has them, if that
    copy is of the run the project last published (in this snapshot) at the same epoch;
    else None (read them from PostgreSQL). Only a run's publish writes ``task_results``, and
    it sets ``projects.last_run_id`` in the same transaction; deleting results' tasks bumps
    the epoch."""
    if answers.folder is None or answers.last_run_id is None:
        return None
    try:
        with np.load(answers.folder / "published.npz") as kept:
            stamp = (int(kept["run_id"]), int(kept["epoch"]))
            if stamp != (answers.last_run_id, answers.epoch):
                return None
            return {name: kept[name] for name in PUBLISHED}
    except (OSError, ValueError, KeyError):
        return None


def keep_published(answers: Answers, run_id: int, published: Columns, written: Columns) -> None:
    """After run ``run_id``'s publish committed: keep ``published`` (what the run read) with
    the ``written`` rows (the same columns; what it wrote) in place, as PostgreSQL now has
    them, for the project's next run. Written to a new file and renamed over the old."""
    if answers.folder is None:
        return
    keep = ~np.isin(published["task"], written["task"])
    merged = {name: np.concatenate([published[name][keep], written[name]]) for name in PUBLISHED}
    order = np.argsort(merged["task"], kind="stable")
    try:
        tmp = answers.folder / "published.tmp.npz"
        arrays: dict[str, Any] = {name: merged[name][order] for name in PUBLISHED}
        np.savez(tmp, run_id=np.int64(run_id), epoch=np.int64(answers.epoch), **arrays)
        os.replace(tmp, answers.folder / "published.npz")
    except OSError as exc:
        log.warning("could not keep the published results in %s: %s", answers.folder, exc)


#: Prefix of a folder's name while a sweep deletes it (moved out of the way first, so no
#: run opens a half-deleted copy).
_DELETING = ".deleting-"


def database_folder(cur: Cursor) -> str:
    """The folder (under the state directory) of the copies of this database's projects:
    ``db-<system identifier>-<timeline>-<oid>``.

    The cluster's system identifier (``pg_control_system()``) is new with every ``initdb``,
    so a database restored into another cluster gets another folder. The timeline (of the
    WAL being written) is new when a backup is recovered to a point in time or a standby is
    promoted: the database may then lack transactions a copy saw. The database's oid is new
    when a database is created, so one dropped and created again under the same name (or
    restored into a new database) gets another folder too. A server that refuses one of
    these (a hosted PostgreSQL may) gives ``x`` in its place; each is asked in a savepoint,
    so a refusal costs the caller's transaction nothing.

    Asked once per session of a :class:`crowd.store.db.Database` pool (kept in its
    ``session``) when the server is not in recovery: none of the three can change while a
    session is open. A session belongs to one running cluster (a restore or an ``initdb``
    means a server restart, which ends it); a primary's timeline changes only when recovery
    ends (a standby's promotion, hence the condition); a database cannot be dropped while a
    session is connected to it (``DROP DATABASE ... WITH (FORCE)`` ends the session first)."""
    session: dict[str, Any] | None = getattr(cur.connection, "session", None)
    if session is not None and "database_folder" in session:
        return str(session["database_folder"])
    system = _ask(
        cur,
        "SELECT CASE WHEN has_function_privilege('pg_catalog.pg_control_system()', 'EXECUTE')"
        " THEN (SELECT system_identifier FROM pg_catalog.pg_control_system())::text END",
    )
    timeline = _ask(cur, "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)")
    cur.execute(
        "SELECT oid, pg_is_in_recovery() FROM pg_database WHERE datname = current_database()"
    )
    oid, recovering = cur.fetchone() or (0, True)
    folder = f"db-{system or 'x'}-{timeline or 'x'}-{int(oid)}"
    if session is not None and not recovering:
        session["database_folder"] = folder
    return folder


def _ask(cur: Cursor, query: str) -> str | None:
    """``query``'s one value as text (None if NULL), or None if the server refuses it."""
    cur.execute("SAVEPOINT crowd_database_folder")
    try:
        cur.execute(query)
        row = cur.fetchone()
    except psycopg2.Error:
        cur.execute("ROLLBACK TO SAVEPOINT crowd_database_folder")
        return None
    cur.execute("RELEASE SAVEPOINT crowd_database_folder")
    return None if row is None or row[0] is None else str(row[0])


def _parse_database_folder(name: str) -> tuple[str, int] | None:
    """``(system identifier or "x", oid)`` of a :func:`database_folder` name, else None."""
    parts = name.split("-")
    if len(parts) != 4 or parts[0] != "db" or not parts[3].isdigit():
        return None
    return parts[1], int(parts[3])


def _is_state_key(name: str) -> bool:
    try:
        return str(uuid.UUID(name)) == name
    except ValueError:
        return False


def sweep(
    cur: Cursor, root: Path, *, full_reload_seconds: float = FULL_RELOAD_SECONDS
) -> list[Path]:
    """Delete the copies under ``root`` that no run will read again; returns their folders.

    * This database's copies (its :func:`database_folder`) of projects that no longer
      exist: a deleted project's copy is never read again, since a project's folder is named
      by its row's random ``state_key``.
    * The folder of a database of this cluster that no longer exists (dropped, or dropped
      and created again under its name), whole.
    * Other databases' copies built longer than ``full_reload_seconds`` ago: a run would read
      them whole anyway (the scheduled reload), so they are worth nothing, whether their
      database was replaced, is on another cluster, or is alive and served by other workers
      sharing this directory.
    * Copies in the layout before database folders (``root/<state_key>``, never read now)
      and what an interrupted sweep left.

    Call at a worker's start and every few minutes
    (:data:`workers.bootstrap.SWEEP_EVERY`). Folders are moved aside before they are
    deleted, so a run never opens a half-deleted copy; a run of a project being deleted may
    still write its copy meanwhile, and the next sweep removes it. Errors (a folder another
    sweep took first) are logged, never raised."""
    if not root.is_dir():
        return []
    mine = database_folder(cur)
    system = _parse_database_folder(mine)
    cur.execute("SELECT oid FROM pg_database")
    databases = {int(row[0]) for row in cur.fetchall()}
    now = time.time()
    doomed: list[Path] = []
    for entry in _folders(root):
        where = _parse_database_folder(entry.name)
        if entry.name.startswith(_DELETING) or _is_state_key(entry.name):
            doomed.append(entry)
        elif where is None:
            continue  # not a folder of crowd's
        elif entry.name == mine:
            keys = [f for f in _folders(entry) if _is_state_key(f.name)]
            cur.execute(
                "SELECT state_key::text FROM projects WHERE state_key = ANY(%s::uuid[])",
                ([f.name for f in keys],),
            )
            alive = {str(row[0]) for row in cur.fetchall()}
            doomed += [f for f in keys if f.name not in alive]
        elif system is not None and where[0] == system[0] != "x" and where[1] not in databases:
            doomed.append(entry)
        else:
            doomed += [f for f in _folders(entry) if now - _built_at(f) > full_reload_seconds]
    for folder in doomed:
        _delete(root, folder)
    for entry in _folders(root):
        if entry.name != mine and _parse_database_folder(entry.name) is not None:
            with contextlib.suppress(OSError):
                entry.rmdir()  # only if empty
    return doomed


def _folders(path: Path) -> list[Path]:
    try:
        return [entry for entry in path.iterdir() if entry.is_dir()]
    except OSError:
        return []


def _built_at(folder: Path) -> float:
    """When a copy was last read whole (its meta), else when anything in it last changed."""
    try:
        return float(json.loads((folder / "meta.json").read_text())["built_at"])
    except (OSError, ValueError, KeyError, TypeError):
        try:
            return max([folder.stat().st_mtime, *(f.stat().st_mtime for f in folder.iterdir())])
        except OSError:
            return time.time()  # being written or deleted right now: not old


def _delete(root: Path, folder: Path) -> None:
    aside = folder
    if not folder.name.startswith(_DELETING):
        aside = root / f"{_DELETING}{uuid.uuid4().hex}"
        try:
            folder.rename(aside)
        except FileNotFoundError:
            return  # another worker's sweep took it
        except OSError as exc:
            log.warning("could not delete the kept copy %s: %s", folder, exc)
            return
    shutil.rmtree(aside, ignore_errors=True)
    log.info("deleted the kept copy %s", folder)


def _xmax(snapshot: str) -> int:
    """A ``pg_snapshot``'s xmax (``xmin:xmax:xip,...``): the first transaction id not yet
    handed out when it was taken. It only grows in one database; a run whose snapshot has a
    smaller one than a copy's runs on a database restored from before the copy."""
    return int(snapshot.split(":")[1])


def _rows(columns: Columns) -> int:
    return int(columns["id"].size)


def _meta(
    project_id: int, epoch: int, snapshot: str, columns: Columns, built_at: float
) -> dict[str, Any]:
    return {
        "format": _FORMAT,
        "project_id": project_id,
        "epoch": epoch,
        "snapshot": snapshot,
        "rows": _rows(columns),
        "id_sum": int(columns["id"].sum(dtype=np.int64)),
        "built_at": built_at,
    }


def _open(
    folder: Path, project_id: int, epoch: int, snapshot: str, full_reload_seconds: float
) -> tuple[dict[str, Any] | None, str]:
    """The kept copy's meta if the copy may be used in a run whose snapshot is ``snapshot``,
    else None and why not."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except FileNotFoundError:
        return None, "no copy kept"
    except (OSError, ValueError):
        return None, "damaged copy"
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        return None, "damaged copy"
    if meta.get("project_id") != project_id:
        return None, "damaged copy"
    try:
        went_back = _xmax(str(meta.get("snapshot"))) > _xmax(snapshot)
    except ValueError:
        return None, "damaged copy"
    if went_back:
        return None, "database replaced"
    if meta.get("epoch") != epoch:
        return None, "answers changed"
    if time.time() - float(meta.get("built_at", 0)) > full_reload_seconds:
        return None, "scheduled reload"
    rows = int(meta.get("rows", -1))
    for name in COLUMNS:
        try:
            if (folder / name).stat().st_size < rows * _DTYPE.itemsize:
                return None, "damaged copy"
        except OSError:
            return None, "damaged copy"
    return meta, ""


def _load(folder: Path, meta: dict[str, Any], new: Columns) -> Columns | None:
    """The kept rows followed by ``new``, or None if the kept ids fail their checksum."""
    kept = int(meta["rows"])
    out: Columns = {}
    for name in COLUMNS:
        column = np.empty(kept + new[name].size, dtype=np.int64)
        with (folder / name).open("rb") as f:
            if f.readinto(column[:kept].data.cast("B")) != kept * _DTYPE.itemsize:
                return None
        column[kept:] = new[name]
        out[name] = column
    if int(out["id"][:kept].sum(dtype=np.int64)) != meta["id_sum"]:
        return None
    return out


def _replace_meta(folder: Path, meta: dict[str, Any]) -> None:
    tmp = folder / "meta.json.tmp"
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, folder / "meta.json")


def _write_whole(folder: Path, columns: Columns, meta: dict[str, Any]) -> None:
    """Write a copy from scratch: meta removed first, columns, then the new meta."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            (folder / "meta.json").unlink()
        for name in COLUMNS:
            with (folder / name).open("wb") as f:
                columns[name].astype(_DTYPE, copy=False).tofile(f)
                f.flush()
                os.fsync(f.fileno())
        _replace_meta(folder, meta)
    except OSError as exc:
        log.warning(
            "could not keep the answers in %s (the next run reads them all): %s", folder, exc
        )


def _append(folder: Path, old: dict[str, Any], new: Columns, meta: dict[str, Any]) -> None:
    """Append ``new`` after the copy's valid rows (cutting off any a dead writer left), then
    replace the meta."""
    end = int(old["rows"]) * _DTYPE.itemsize
    try:
        for name in COLUMNS if _rows(new) else ():
            with (folder / name).open("r+b") as f:
                f.truncate(end)
                f.seek(end)
                new[name].astype(_DTYPE, copy=False).tofile(f)
                f.flush()
                os.fsync(f.fileno())
        _replace_meta(folder, meta)
    except OSError as exc:
        log.warning("could not add to the answers kept in %s: %s", folder, exc)
