# One image for every instance; Render runs 2+ of them behind its load balancer.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=10000

RUN useradd --create-home --uid 10001 app
WORKDIR /app

# Dependencies first, so code changes do not reinstall them.
COPY pyproject.toml ./
RUN mkdir -p config supervisor services \
    && touch config/__init__.py supervisor/__init__.py services/__init__.py \
    && pip install . && pip uninstall -y kiebot

# The product only: sandbox/, bench/ and tests/ never enter the image (.dockerignore).
COPY config ./config
COPY supervisor ./supervisor
COPY services ./services
COPY migrations ./migrations
COPY models ./models
RUN pip install --no-deps -e .

USER app
EXPOSE 10000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import os,urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\",\"10000\")}/health', timeout=2)"

# SIGTERM reaches Python directly (exec form): the leader drains and resigns within SHUTDOWN_GRACE.
CMD ["python", "-m", "supervisor", "run"]
