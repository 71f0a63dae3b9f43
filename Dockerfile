# The CLI image: `journeyguard` (batch jobs, the outreach scheduler and dispatcher workers) and
# `mlflow server`. Built from `make dist`'s output only, never from the source folders: the image
# runs the installed package `journeyguard.*`, and no folder on its path can shadow it.
#
#   make dist && docker build -t registry.example.com/journeyguard:0.1.0 .
#
# The prediction service has an image of its own, from the Bento (bentofile.yaml, `make bento`).
FROM python:3.11-slim

# LightGBM's OpenMP runtime is not in slim images.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    BENTOML_DO_NOT_TRACK=true \
    DO_NOT_TRACK=1

# The versions this checkout was tested with (pip freeze), then the wheel itself.
COPY build/dist/requirements.txt build/dist/journeyguard-0.1.0-py3-none-any.whl /tmp/dist/
RUN pip install --no-cache-dir -r /tmp/dist/requirements.txt \
    && pip install --no-cache-dir --no-deps /tmp/dist/journeyguard-0.1.0-py3-none-any.whl \
    && rm -rf /tmp/dist

RUN useradd --create-home --uid 10001 journeyguard
USER journeyguard
WORKDIR /home/journeyguard

ENTRYPOINT ["journeyguard"]
CMD ["--help"]
