#!/usr/bin/env bash
# The GPU checks of docs/benchmarks.md, "GPU", as one command for a CUDA machine that has
# torch but not this package's other dependencies (they travel as wheels in .whl/).
#   OUT=gpu_out NAPARI_SENCA_SHARED=.gpu/data bash benchmarks/gpu_device.sh [STEPS]
# STEPS (default "env tests real scale cross"): env = versions and GPU; tests = the core test
# files (no napari/Qt) with device "auto" resolving to CUDA; real = benchmarks/gpu_check.py;
# her2st = benchmarks/her2st.py, default and smoothed PCA, nine seeds, on cuda;
# scale = benchmarks/scale.py on cuda; cross = benchmarks/crossmodal.py at 5,000 spots.
# Each step has a time limit and writes $OUT/<step>.log; the next step runs whatever happened.
# Fourteenth session: SEEDS=2 SECTIONS=C2,A1 DEVICES=cuda bash benchmarks/gpu_device.sh "env real her2st"
# (the her2st step needs about 400 s for nine seeds: HER2ST_S=420 with nothing else in the call).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
PY=${PY:-python3}
if [ -d .whl ] && ! $PY -c "import anndata, scanpy" 2>/dev/null && [ ! -d /tmp/site ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
fi
export PYTHONPATH="src:/tmp/site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg

step() {  # step NAME LIMIT_S COMMAND...
  local name=$1 lim=$2 t0=$SECONDS rc
  shift 2
  echo "== $name (limit $lim s)"
  timeout "$lim" "$@" >"$OUT/$name.log" 2>&1
  rc=$?
  echo "   $name: rc $rc in $((SECONDS - t0)) s"
}

TESTS="tests/test_pipeline.py tests/test_model.py tests/test_fusion.py tests/test_features.py tests/test_scale.py
tests/test_optim.py tests/test_resnet.py tests/test_encoders.py tests/test_joint.py tests/test_preprocess.py
tests/test_graph.py tests/test_feature_cache.py tests/test_patches.py tests/test_confidence.py tests/test_io_real.py
tests/test_cli.py tests/test_determinism.py"
for s in ${1:-env tests real scale cross}; do
  case $s in
    env) step env 60 bash -c "nvidia-smi; $PY -c 'import torch, anndata, scanpy, napari_senca.pipeline as p;
print(torch.__version__, torch.cuda.get_device_name(0), anndata.__version__, scanpy.__version__, p.resolve_device())'" ;;
    # shellcheck disable=SC2086
    tests) step tests "${TESTS_S:-150}" $PY -m pytest -q -p no:cacheprovider -W ignore -p no:qt -p no:xvfb \
             --durations=10 $TESTS ;;
    real) step real "${REAL_S:-150}" $PY benchmarks/gpu_check.py --seeds "${SEEDS:-3}" --sections "${SECTIONS:-C2,A1,DLPFC}" --devices "${DEVICES:-cuda,cpu}" --json "$OUT/real.json" ;;
    her2st) step her2st "${HER2ST_S:-300}" $PY benchmarks/her2st.py --seeds "${HSEEDS:-9}" --threads 16 \
             --methods senca,pca_nbr_kmeans --set 'device="cuda"' --json "$OUT/her2st.json" ;;
    scale) step scale "${SCALE_S:-150}" $PY benchmarks/scale.py --device cuda --threads 16 \
             --sizes 20000,100000,500000 --image-sizes 50000 --json "$OUT/scale.json" ;;
    cross) step cross "${CROSS_S:-100}" $PY benchmarks/crossmodal.py --spots 5000 --seeds 2 --grids square,hex \
             --threads 16 --methods "${CROSS_METHODS:-senca gated fusion (v2 + measured image gate);naive concat (nbr-averaged RNA PCs + image PCs);senca RNA-only (use_image=False)}" --json "$OUT/cross.json" ;;
  esac
done
tail -n 4 "$OUT"/*.log
