FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY api ./api
COPY workers ./workers
COPY shared ./shared
COPY sandbox ./sandbox
COPY migrations ./migrations
COPY twostep ./twostep
COPY benchmarks ./benchmarks
RUN pip install -c constraints.txt . && useradd --create-home --uid 10001 twostep
USER twostep
ENTRYPOINT ["twostep"]
CMD ["--help"]
