#!/usr/bin/env bash
# Wheels (CPython 3.12, x86-64 Linux) of what benchmarks/gpu_train.py needs beyond torch, numpy,
# pandas, pyarrow, scikit-learn and PyYAML: the core package's typed configs (pydantic). For a GPU
# machine whose image has those but not the rest, and no index to install from. Run here, copy
# .whl/ there, then:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
#   PYTHONPATH=/tmp/site python3 benchmarks/gpu_train.py --out DIR
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
    typing_extensions==4.16.0
ls .whl
