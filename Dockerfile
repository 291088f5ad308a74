# The image a Docker work pool runs tsatlas flows in (README: "Operating tsatlas with Prefect").
#   docker build -t tsatlas:latest .
# The repository sits at /opt/tsatlas: set the Prefect variable tsatlas_dir to that path for the
# deployments' pull step. CPU torch; for a GPU image start from an image with CUDA torch instead.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /opt/tsatlas

RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY tsatlas ./tsatlas
COPY tasks ./tasks
COPY flows ./flows
RUN pip install ".[aws]"
COPY deployments ./deployments
COPY data ./data

# a worker starts each flow run with `prefect flow-run execute`; this is only the default
CMD ["tsatlas", "run"]
