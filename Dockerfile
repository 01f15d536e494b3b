# One image for every role: web (gunicorn), workers, beat. See docker-compose.yml.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# Set to PyTorch's CPU wheel index for a small CPU-only image; empty takes the default (CUDA) build from PyPI.
ARG TORCH_INDEX_URL=""
WORKDIR /app
COPY requirements.txt .
RUN if [ -n "$TORCH_INDEX_URL" ]; then pip install --extra-index-url "$TORCH_INDEX_URL" -r requirements.txt; \
    else pip install -r requirements.txt; fi
COPY . .
RUN useradd --create-home lts && mkdir -p /data /artifacts && chown lts /data /artifacts
USER lts
ENV LTS_DATA_ROOT=/data LTS_ARTIFACT_ROOT=/artifacts LTS_VAR_DIR=/tmp/lts
EXPOSE 8000
CMD ["gunicorn", "lts_web.wsgi", "--bind", "0.0.0.0:8000", "--worker-class", "gthread", "--workers", "3", "--threads", "8"]
