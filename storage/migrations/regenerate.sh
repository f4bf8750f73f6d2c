#!/usr/bin/env bash
# Before the first release the schema is one migration, regenerated from the models.
# After a release, add a new revision instead (alembic revision --autogenerate).
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
rm -f storage/migrations/versions/0001_*.py
.venv/bin/python - "$tmp" <<'PY'
import sys
from alembic import command
from storage.schema import alembic_config
cfg = alembic_config(f"sqlite:///{sys.argv[1]}/m.db")
command.revision(cfg, message="initial schema", autogenerate=True, rev_id="0001")
PY
rm -rf "$tmp"
.venv/bin/ruff format -q storage/migrations/versions || true
