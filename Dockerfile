# One image for every nproxy process (migrate, web, worker, beat, bot); compose.yml picks the
# command. Everything under /app belongs to root: the processes run as the user nproxy and
# write only to the folders made for it below.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    NPROXY_CONFIG=/app/production.ini \
    NPROXY_STATE_DIR=/var/lib/nproxy

WORKDIR /app
RUN useradd --system --user-group --create-home --uid 10001 nproxy

COPY setup.cfg setup.py pyproject.toml README.md ./
COPY src ./src
# The install compiles the translation catalogs (setup.py: the .mo files and the chat's JSON).
RUN pip install --upgrade pip && pip install -e .

COPY templates ./templates
COPY production.ini gunicorn.conf.py ./

# The folders the app's user writes: its state (NPROXY_STATE_DIR: beat's schedule, the
# heartbeat files of worker, beat and bot), the metrics of compose.yml's shared volume, and the
# backups volume's mount point (a new named volume takes the owner of the folder it covers).
RUN install -d -o nproxy -g nproxy /var/lib/nproxy /var/lib/nproxy-metrics /backups
USER nproxy
EXPOSE 8000
# The web process's check. compose.yml gives worker, beat and bot their own (nproxy health
# worker|beat|bot: their heartbeat files) and migrate none.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
  CMD ["nproxy", "health", "web"]
CMD ["gunicorn", "--config", "gunicorn.conf.py", "--paste", "production.ini"]
