# The patentmatch worker. Built by docker-compose.yml; any Kafka 3.9+/4.x cluster will do:
#   docker build -t patentmatch . && docker run -e PATENTMATCH_KAFKA_BOOTSTRAP=broker:9092 -p 6066:6066 patentmatch
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PATENTMATCH_WEB_HOST=0.0.0.0 \
    PATENTMATCH_WEB_PORT=6066

WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY matcher ./matcher
COPY streams ./streams
RUN pip install . && useradd --system --no-create-home patentmatch
USER patentmatch

EXPOSE 6066
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:6066/health', timeout=2)"
CMD ["patentmatch", "worker"]
