# newsbot: the Telegram bot and its CLI, CPU only, with the embedding model inside the image.
#
#   docker build -t newsbot .
#   docker run --rm -v newsbot-data:/data newsbot ingest /app/corpus/samples
#   docker run -d -v newsbot-data:/data -e NEWSBOT_TELEGRAM_TOKEN=... newsbot
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# torch first, pinned, from the CPU index: letting pip resolve it would pull a
# multi-GB CUDA build. pyproject's torch range accepts this version.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

WORKDIR /app
COPY . /app
RUN pip install .

# Fail the build, not the first start, when the packaged model cannot load offline or
# the console script is broken. Run from / so the installed package is what is tested.
RUN cd / \
    && HF_HUB_OFFLINE=1 python -c "from embeddings.embedder import load_embedder; load_embedder('all-MiniLM-L6-v2', 'fp32')" \
    && HF_HUB_OFFLINE=1 python -c "from pathlib import Path; from bot.answering.reader import SpanReader; SpanReader(Path('/app/weights/reader.safetensors'), precision='fp32')" \
    && newsbot --help > /dev/null

RUN useradd --create-home --uid 10001 --user-group newsbot \
    && mkdir -p /data \
    && chown newsbot:newsbot /data

# The project's trained reader (adapters and head, a few MB) stays in /app/weights.
ENV NEWSBOT_DATA_DIR=/data \
    NEWSBOT_READER_WEIGHTS=/app/weights/reader.safetensors \
    HF_HUB_OFFLINE=1
VOLUME /data
USER newsbot

ENTRYPOINT ["newsbot"]
CMD ["run"]
