"""Backups (DESIGN §8): the SQL database and a manifest of every object, with a tested restore.

A backup is a folder ``backups/<UTC time>/`` in the object store:

- the database: ``database.sqlite3`` (SQLite's online backup API, a consistent copy
  while the platform runs), ``database.pgdump`` (``pg_dump`` in custom format, run on
  a snapshot exported from our own REPEATABLE READ transaction), or ``database.json``
  (every table as JSON, read in one REPEATABLE READ transaction, when there is no
  ``pg_dump``);
- ``manifest.json``, written last so that a folder without it is no backup: the dump's
  size and SHA-256, the row count of every table, and every object the database
  records (key, size, SHA-256). The object list is read from the same snapshot as the
  dump, and each object is checked against the store while the backup is taken.

Objects are not copied: they are immutable once written and the store keeps them; the
manifest is what proves, at restore time, that every object the restored database
names is still there with the same bytes. Backup files are not recorded in the
``stored_objects`` table, since a restore must work from the store alone.

The modules: ``catalog`` (names, manifests, status, retention, verification), ``dump``
(the database as one file), ``take`` (a backup, and the scheduled run) and ``restore``.
"""

from scheduler.backup.catalog import (
    BackupError,
    Report,
    list_backups,
    name_time,
    prune,
    read_manifest,
    read_status,
    to_keep,
    verify_backup,
    write_status,
)
from scheduler.backup.restore import restore_backup
from scheduler.backup.take import create_backup, run_backup

__all__ = [
    "BackupError",
    "Report",
    "create_backup",
    "list_backups",
    "name_time",
    "prune",
    "read_manifest",
    "read_status",
    "restore_backup",
    "run_backup",
    "to_keep",
    "verify_backup",
    "write_status",
]
