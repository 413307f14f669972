# Production image of CTPN: the web server, the Celery worker and Celery beat all run from it
# (see docker-compose.yml for the commands).
# Front-end libraries from the npm registry, pinned by package-lock.json (only the runtime ones).
FROM node:20-slim AS frontend
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# WeasyPrint (the PDF export of an incident's record) sets documents with Pango, in DejaVu.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*

# Dependencies first, so a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

COPY . .
COPY --from=frontend /app/node_modules ./node_modules
RUN pip install --no-deps .

# Static files are collected at build time, with throwaway settings that are never used at run time.
RUN CTPN_ENV=production \
    SECRET_KEY=build-only-not-secret \
    ALLOWED_HOSTS=localhost \
    DATABASE_URL=sqlite:////tmp/build.sqlite3 \
    REDIS_URL=redis://localhost:6379/0 \
    python manage.py collectstatic --noinput \
    && rm -f /tmp/build.sqlite3

RUN useradd --system --create-home --home-dir /home/ctpn ctpn \
    && mkdir -p /app/var \
    && chown ctpn:ctpn /app/var
USER ctpn

# /app comes first on the path, so every process (manage.py, uvicorn, celery) runs this tree.
ENV CTPN_ENV=production \
    CTPN_DATA_DIR=/app/var \
    PYTHONPATH=/app

EXPOSE 8000
CMD ["uvicorn", "ctpn.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
