# llm-gateway: slim, non-root. The same install step as the README (`pip install .`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md requirements.lock ./
COPY src ./src
RUN pip install --require-hashes -r requirements.lock && pip install --no-deps . && useradd --system --uid 10001 --home /data gateway \
    && mkdir -p /data && chown gateway /data

USER gateway
WORKDIR /data
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/ready', timeout=2).status != 200)"
ENTRYPOINT ["llm-gateway"]
CMD ["serve"]
