# One image for every nproxy process (web, worker, beat); compose.yml picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    NPROXY_CONFIG=/app/production.ini

WORKDIR /app
RUN useradd --system --create-home --uid 10001 nproxy

COPY setup.cfg pyproject.toml README.md ./
COPY src ./src
RUN pip install --upgrade pip && pip install -e .

COPY templates ./templates
COPY production.ini gunicorn.conf.py ./

# The metrics folder of compose.yml's shared volume, writable by the app's user.
RUN mkdir -p /var/lib/nproxy-metrics && chown nproxy /var/lib/nproxy-metrics
USER nproxy
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"
CMD ["gunicorn", "--config", "gunicorn.conf.py", "--paste", "production.ini"]
