#!/usr/bin/env bash
# The main job on the embedded default model, no Telegram token needed:
# ingest the shipped sample corpus, index it, and answer a question in the terminal.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
export NEWSBOT_DATA_DIR=${NEWSBOT_DATA_DIR:-./data/demo}
QUESTION=${1:-"who signed with Zolotov?"}
.venv/bin/newsbot ingest corpus/samples
.venv/bin/newsbot stats
echo
echo "\$ newsbot ask \"$QUESTION\""
.venv/bin/newsbot ask "$QUESTION"
