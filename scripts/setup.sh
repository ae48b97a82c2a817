#!/usr/bin/env bash
# Create (or reuse) the virtual environment and install newsbot with its dev tools.
# torch is installed first and pinned: on this kind of machine torch==2.13.0 is a local
# CPU wheel, while letting pip choose would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${NEWSBOT_VENV:-.venv}
# pip on some machines warns about missing local index folders; those lines are noise.
quiet() { grep -v "^WARNING: Location" || true; }
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating $VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip 2>&1 | quiet
fi
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  echo "== installing torch==2.13.0 (CPU)"
  { "$VENV/bin/pip" install -q torch==2.13.0 \
    || "$VENV/bin/pip" install -q torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu; } \
    2>&1 | quiet
fi
stamp="$VENV/.newsbot-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "== installing newsbot and its dependencies"
  "$VENV/bin/pip" install -q -e ".[dev]" 2>&1 | quiet
  "$VENV/bin/python" -c "import bot, corpus, embeddings, faiss, telegram, sentence_transformers"
  touch "$stamp"
fi
