#!/usr/bin/env bash
# One command for a GPU machine where torch with CUDA is installed and nothing can be downloaded:
# builds fluxkern against that torch, runs the whole test suite with the cuda tests enabled, runs
# compute-sanitizer (memcheck, racecheck; initcheck if time is left) on a small jet case (both
# CUDA jet forwards: the GEMM path and the fused tile kernel), runs the jet and loss benchmarks on
# cuda twice (default GEMM forward, then the tile kernel with FLUXKERN_CUDA_TILE=1, so that the
# default can be chosen from measurements) and, after each pair, the users' workloads (the seven
# benchmark problems at their own sizes in float64, fused against plain PyTorch on the GPU), and
# writes one JSON file of results plus printed tables into OUTDIR.
#
#   bash bench/gpu_check.sh OUTDIR
#
# Budget: every step has its own time limit, cut to what is left of FLUXKERN_GPU_CHECK_BUDGET
# (default 510 s) so that the whole run ends inside 9 minutes even when a step hangs; a step with
# too little time left is skipped and marked so. OUTDIR receives at most 8 files: results.json,
# summary.txt, env.log, build.log, tests.log, sanitizer.log, bench.log.
#
# A build that stops because the module carries a static libstdc++ (CMakeLists.txt) is reported
# as failed and redone without that check, so that the rest still runs.
#
# Python packages: the build needs scikit-build-core, pybind11 and ninja, the tests pytest and
# expecttest, next to torch (--no-build-isolation, no downloads). Wheels of any that the machine
# lacks can be carried in .whl/ at the repo root; the script installs those whose distribution is
# not installed into a scratch folder on PYTHONPATH. Fill .whl/ on a machine with pip access, for
# the GPU machine's Python (3.12, x86-64):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 -d .whl NAME==VERSION ...
# (names: expecttest; as fallbacks scikit-build-core pathspec packaging pybind11 ninja pytest
# iniconfig pluggy; one version of each), and name .whl in the device tool's carry list.
#
# Environment:
#   PYTHON                       interpreter with torch (default python3)
#   FLUXKERN_GPU_CHECK_BUDGET    seconds for the whole run (default 510)
#   FLUXKERN_GPU_ARCHS           CMAKE_CUDA_ARCHITECTURES (default: the GPU's own, e.g. 90)
#   FLUXKERN_GPU_CHECK_DRY=1     check this script on a machine without a GPU: CPU build, tests
#                                without FLUXKERN_TEST_CUDA, sanitizers skipped, small CPU bench
#   FLUXKERN_PYTEST_ARGS         extra pytest arguments
#   FLUXKERN_COMMIT              the commit of the tree, printed in env.log (the copy's .git may
#                                not match the tree)
set -uo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: bash bench/gpu_check.sh OUTDIR" >&2
  exit 2
fi
OUT=$(mkdir -p "$1" && cd "$1" && pwd) || { echo "gpu_check: cannot create $1" >&2; exit 2; }
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO" || exit 2
PY=${PYTHON:-python3}
DRY=${FLUXKERN_GPU_CHECK_DRY:-0}
BUDGET=${FLUXKERN_GPU_CHECK_BUDGET:-510}
START=$(date +%s)
DEADLINE=$((START + BUDGET))
WORK=$(mktemp -d /tmp/fluxkern-gpu-check.XXXXXX)
STEPS="$WORK/steps.tsv" # name, status, rc, seconds, limit, log
: >"$STEPS"
export PYTHONUNBUFFERED=1
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}

log() { echo "[gpu_check $(($(date +%s) - START))s] $*"; }

# step NAME LIMIT LOG CMD...: runs CMD with LIMIT seconds or what is left of the budget, keeping
# RESERVE seconds for the summary; appends the output to LOG and records the outcome.
RESERVE=20
step() {
  local name=$1 limit=$2 logf=$3
  shift 3
  local left=$((DEADLINE - $(date +%s) - RESERVE))
  ((left < limit)) && limit=$left
  if ((limit < 15)); then
    log "$name: skipped, out of time"
    printf '%s\tskipped (out of time)\t\t0\t0\t%s\n' "$name" "$(basename "$logf")" >>"$STEPS"
    return 99
  fi
  log "$name (limit ${limit}s)"
  echo "===== $name: $* (limit ${limit}s)" >>"$logf"
  local t0 rc status
  t0=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" >>"$logf" 2>&1
  rc=$?
  local dt=$(($(date +%s) - t0))
  if ((rc == 0)); then
    status=ok
  elif ((rc == 124 || rc == 137)); then
    status="timed out"
  else
    status=failed
  fi
  echo "===== $name: $status (rc $rc, ${dt}s)" >>"$logf"
  log "$name: $status (rc $rc, ${dt}s)"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$dt" "$limit" "$(basename "$logf")" \
    >>"$STEPS"
  return "$rc"
}

skip() { # skip NAME WHY
  log "$1: skipped ($2)"
  printf '%s\tskipped (%s)\t\t0\t0\t\n' "$1" "$2" >>"$STEPS"
}

# ---- environment -------------------------------------------------------------------------------
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  # The device tool copies the working tree, not always with a matching .git: its HEAD can be an
  # older commit. FLUXKERN_COMMIT (set in the call) names the tree's commit; the count of files
  # that differ from the copy's HEAD shows when the two disagree.
  head=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo 'no git')
  changed=$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null | wc -l)
  echo "repo: $REPO (tree of commit ${FLUXKERN_COMMIT:-not given}; the copy's git HEAD $head," \
    "$changed tracked files differ from it)"
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv 2>&1 || true
  command -v nvcc && nvcc --version | tail -2
  command -v compute-sanitizer && compute-sanitizer --version | tail -1
  "$PY" -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__,
    'cuda', torch.version.cuda, 'gpu', torch.cuda.is_available() and torch.cuda.get_device_name())"
} >"$OUT/env.log" 2>&1
cat "$OUT/env.log"

# ---- carried wheels: install those whose distribution is missing --------------------------------
SITE="$WORK/site"
if compgen -G ".whl/*.whl" >/dev/null; then
  missing=$("$PY" - <<'EOF'
import glob, importlib.metadata as md, os, re
for whl in sorted(glob.glob(".whl/*.whl")):
    name = re.sub(r"[-_.]+", "-", os.path.basename(whl).split("-")[0]).lower()
    try:
        md.version(name)
    except md.PackageNotFoundError:
        print(whl)
EOF
  )
  if [[ -n "$missing" ]]; then
    log "installing carried wheels: $(echo "$missing" | xargs -n1 basename | tr '\n' ' ')"
    # shellcheck disable=SC2086
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" \
      $missing >>"$OUT/env.log" 2>&1 || log "installing carried wheels failed (see env.log)"
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
    export PATH="$SITE/bin:$PATH"
  fi
fi
"$PY" - <<'EOF' 2>&1 | tee -a "$OUT/env.log"
import importlib.util
need = ["torch", "scikit_build_core", "pybind11", "ninja", "pytest", "expecttest", "numpy"]
gone = [m for m in need if importlib.util.find_spec(m) is None]
print("python packages missing:", ", ".join(gone) if gone else "none")
EOF

# ---- build -------------------------------------------------------------------------------------
BUILD_LOG="$OUT/build.log"
: >"$BUILD_LOG"
if [[ "$DRY" == 1 ]]; then
  CUDA_OPT=OFF
  ARCHS=${FLUXKERN_GPU_ARCHS:-80}
else
  CUDA_OPT=ON
  ARCHS=${FLUXKERN_GPU_ARCHS:-$("$PY" -c "import torch; print(''.join(map(str, \
    torch.cuda.get_device_capability())))" 2>/dev/null || echo 90)}
fi
# A regular (not editable) install into $PY's environment, replacing any fluxkern there: the
# tests want the console script next to the interpreter. The GPU machine is thrown away after.
built=0
DESELECT=()
build() { # build NAME [extra pip options]
  local name=$1
  shift
  step "$name" 240 "$BUILD_LOG" env FLUXKERN_CUDA="$CUDA_OPT" PIP_BREAK_SYSTEM_PACKAGES=1 \
    "$PY" -m pip install -v --no-build-isolation --no-deps --no-index --force-reinstall \
    -C build-dir=build-cuda/gpu-check -C cmake.define.FLUXKERN_CUDA="$CUDA_OPT" \
    "-Ccmake.define.CMAKE_CUDA_ARCHITECTURES=$ARCHS" "$@" .
}
if build build -C cmake.define.FLUXKERN_CHECK_LIBSTDCXX=ON; then
  built=1
elif grep -q "carries a static copy of libstdc++" "$BUILD_LOG"; then
  # The module linked its own libstdc++ (a machine's toolchain can do that): the build step stays
  # failed; the rest runs on a module built without the check, whose C++ error messages with
  # numbers will crash (tests/test_cuda.py's table check first).
  build "build (static libstdc++ kept)" -C cmake.define.FLUXKERN_CHECK_LIBSTDCXX=OFF && built=1
  # its first error message with a number would end the test run: leave that test out (the
  # subprocess test of tests/test_libstdcxx_link.py reports the fault instead)
  DESELECT=(--deselect tests/test_cuda.py::test_block_loss_cuda_checks_every_tensor_and_the_table)
fi
"$PY" -c "import fluxkern, json; print('fluxkern from', fluxkern.__file__, json.dumps(
  fluxkern.build_info()), 'backends', fluxkern.backends())" 2>&1 | tee -a "$BUILD_LOG"
if ((built)) && [[ "$DRY" != 1 ]] && ! "$PY" -c "import fluxkern, sys
sys.exit(not fluxkern.build_info().get('cuda'))"; then
  log "build: the installed fluxkern has no CUDA kernels (see build.log)"
  printf 'cuda check\tfailed (build without CUDA kernels)\t1\t0\t0\tbuild.log\n' >>"$STEPS"
fi

# ---- tests -------------------------------------------------------------------------------------
TESTS_LOG="$OUT/tests.log"
: >"$TESTS_LOG"
if ((built)); then
  TEST_ENV=()
  [[ "$DRY" == 1 ]] || TEST_ENV=(FLUXKERN_TEST_CUDA=1)
  # shellcheck disable=SC2086
  step tests 180 "$TESTS_LOG" env "${TEST_ENV[@]}" "$PY" -m pytest -q -rfEs -p no:cacheprovider \
    --junitxml="$WORK/junit.xml" ${FLUXKERN_PYTEST_ARGS:-} "${DESELECT[@]}" tests
else
  skip tests "no build"
fi

# ---- compute-sanitizer -------------------------------------------------------------------------
SAN_LOG="$OUT/sanitizer.log"
: >"$SAN_LOG"
sanitize() { # sanitize TOOL LIMIT [extra options]
  local tool=$1 limit=$2
  shift 2
  step "sanitizer $tool" "$limit" "$SAN_LOG" env PYTORCH_NO_CUDA_MEMORY_CACHING=1 \
    compute-sanitizer --tool "$tool" --error-exitcode 1 "$@" "$PY" bench/cuda_sanitize_case.py
}
if [[ "$DRY" == 1 ]]; then
  step "sanitize case (cpu, dry run)" 60 "$SAN_LOG" "$PY" bench/cuda_sanitize_case.py --device cpu
elif ((!built)); then
  skip "sanitizer memcheck" "no build"
  skip "sanitizer racecheck" "no build"
elif ! command -v compute-sanitizer >/dev/null; then
  skip "sanitizer memcheck" "compute-sanitizer not found"
  skip "sanitizer racecheck" "compute-sanitizer not found"
else
  sanitize memcheck 75 --leak-check no
  sanitize racecheck 75
fi

# ---- benchmarks --------------------------------------------------------------------------------
BENCH_LOG="$OUT/bench.log"
: >"$BENCH_LOG"
if [[ "$DRY" == 1 ]]; then
  BDEV=cpu BN=(300 1000) BW=(16 33) BT=0.05 BPROBLEMS=(poisson)
else
  BDEV=cuda BN=(8192 65536 262144) BW=(64 128 256) BT=0.25
  BPROBLEMS=(poisson helmholtz convection composite_heat convection_diffusion stokes cavity)
fi
# The tile kernel serves widths <= 128: its jet run skips the widest width.
BW_TILE=()
for w in "${BW[@]}"; do ((w <= 128)) && BW_TILE+=("$w"); done
if ((built)); then
  step "bench jet" 120 "$BENCH_LOG" env FLUXKERN_CUDA_TILE=0 "$PY" bench/bench_jet.py \
    --device "$BDEV" --n "${BN[@]}" --width "${BW[@]}" --min-time "$BT" \
    --json "$WORK/bench_jet.json"
  step "bench loss" 60 "$BENCH_LOG" env FLUXKERN_CUDA_TILE=0 "$PY" bench/bench_loss.py \
    --device "$BDEV" --n "${BN[@]}" --min-time "$BT" --json "$WORK/bench_loss.json"
  # The users' workloads: the benchmark problems at their own sizes (float64), fused against
  # the twin and plain PyTorch on the same device, checked before timing (bench/run.py).
  bench_problems() { # bench_problems NAME SECONDS TILE(0|1) SUBDIR
    step "$1" "$2" "$BENCH_LOG" env FLUXKERN_CUDA_TILE="$3" "$PY" -m bench \
      --workloads problems --device "$BDEV" --problems "${BPROBLEMS[@]}" --dtypes float64 \
      --threads 1 --epoch-reps 3 --warm-epochs 6 --min-time "$BT" --out "$WORK/$4" &&
      cat "$WORK/$4"/*.md >>"$BENCH_LOG"
  }
  bench_problems "bench problems" 150 0 problems
  # Launches, host syncs and host <-> device transfers per L-BFGS / SSBroyden epoch on the
  # device (issue 31: the epoch was dispatches; tests/test_epoch_dispatch.py holds the CPU counts)
  step "epoch dispatch" 60 "$BENCH_LOG" "$PY" bench/epoch_dispatch.py --device "$BDEV" \
    --problems poisson helmholtz cavity --warm 3 --epochs 2 --json "$WORK/epoch_dispatch.json"
  step "bench jet (tile)" 90 "$BENCH_LOG" env FLUXKERN_CUDA_TILE=1 "$PY" bench/bench_jet.py \
    --device "$BDEV" --n "${BN[@]}" --width "${BW_TILE[@]}" --min-time "$BT" \
    --json "$WORK/bench_jet_tile.json"
  step "bench loss (tile)" 60 "$BENCH_LOG" env FLUXKERN_CUDA_TILE=1 "$PY" bench/bench_loss.py \
    --device "$BDEV" --n "${BN[@]}" --min-time "$BT" --json "$WORK/bench_loss_tile.json"
  # The problems again with the tile forward: at their small N it may be the better default.
  bench_problems "bench problems (tile)" 120 1 problems_tile
else
  skip "bench jet" "no build"
fi

# ---- multi-GPU data-parallel smoke test (only where the machine has more than one GPU) ------
# torchrun runs `fluxkern solve` on every GPU (NCCL); a one-GPU run of the same options must
# give the same final loss (float64) to 1e-10 relative (README: Distributed training). Adam:
# L-BFGS amplifies the rounding differences of the split sums over a few epochs.
NGPU=$(nvidia-smi -L 2>/dev/null | wc -l)
dist_check() {
  "$PY" -m torch.distributed.run --standalone --nproc-per-node "$NGPU" -m fluxkern solve poisson \
    --device cuda --optimizer adam --epochs 20 --no-plots --no-progress --out "$WORK/dist-n" \
    || return 1
  "$PY" -m fluxkern solve poisson --device cuda --optimizer adam --epochs 20 --no-plots \
    --no-progress --out "$WORK/dist-1" || return 1
  "$PY" - "$WORK/dist-n/results.json" "$WORK/dist-1/results.json" <<'PYEOF'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
err = abs(a["final_loss"] - b["final_loss"]) / abs(b["final_loss"])
print("distributed", a["distributed"], "final loss", a["final_loss"], "one GPU", b["final_loss"],
      "relative difference", err)
sys.exit(err > 1e-10)
PYEOF
}
if [[ "$DRY" != 1 ]] && ((built)) && ((NGPU > 1)); then
  export -f dist_check
  export PY WORK NGPU
  step "distributed ($NGPU GPUs)" 120 "$BENCH_LOG" bash -c dist_check
else
  skip "distributed multi-GPU" "$NGPU GPU(s); needs more than one"
fi

# Informational, last: initcheck (reads of memory nothing wrote), when time is left.
if [[ "$DRY" != 1 ]] && ((built)) && command -v compute-sanitizer >/dev/null; then
  sanitize initcheck 90
fi

# ---- results -----------------------------------------------------------------------------------
export GC_OUT="$OUT" GC_WORK="$WORK" GC_START="$START" GC_DRY="$DRY" GC_ARCHS="$ARCHS"
timeout 30 "$PY" - <<'EOF' | tee "$OUT/summary.txt"
import glob, json, os, re, subprocess, time, xml.etree.ElementTree as ET

out, work = os.environ["GC_OUT"], os.environ["GC_WORK"]
res = {"dry_run": os.environ["GC_DRY"] == "1", "cuda_architectures_built": os.environ["GC_ARCHS"]}
res["seconds_total"] = int(time.time()) - int(os.environ["GC_START"])
try:
    import torch
    res["machine"] = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
    smi = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
        capture_output=True, text=True, timeout=10)
    res["machine"]["nvidia_smi"] = smi.stdout.strip()
except Exception as exc:  # noqa: BLE001 - reported
    res.setdefault("machine", {})["error"] = str(exc)
try:
    import fluxkern
    res["fluxkern"] = {"build_info": {k: v for k, v in fluxkern.build_info().items()
                                      if k != "parallel_info"}, "backends": fluxkern.backends(),
                       "file": fluxkern.__file__}
except Exception as exc:  # noqa: BLE001
    res["fluxkern"] = {"error": str(exc)}

steps = []
with open(os.path.join(work, "steps.tsv")) as fh:
    for line in fh:
        name, status, rc, secs, limit, logf = line.rstrip("\n").split("\t")
        steps.append({"step": name, "status": status, "rc": int(rc) if rc else None,
                      "seconds": int(secs), "limit_s": int(limit), "log": logf})
res["steps"] = steps

junit = os.path.join(work, "junit.xml")
if os.path.exists(junit):
    root = ET.parse(junit).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    res["tests"] = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    res["tests"]["failed"] = [
        f"{tc.get('classname')}::{tc.get('name')}" for tc in suite.iter("testcase")
        if tc.find("failure") is not None or tc.find("error") is not None][:50]
    res["tests"]["cuda_tests_run"] = sum(
        1 for tc in suite.iter("testcase") if "cuda" in tc.get("name", "")
        and tc.find("skipped") is None)

san = os.path.join(out, "sanitizer.log")
if os.path.exists(san):
    text = open(san, errors="replace").read()
    res["sanitizer_error_summaries"] = re.findall(r"={5,} (?:ERROR SUMMARY|RACECHECK SUMMARY).*",
                                                  text)

for name in ("bench_jet", "bench_loss", "bench_jet_tile", "bench_loss_tile", "epoch_dispatch"):
    path = os.path.join(work, f"{name}.json")
    if os.path.exists(path):
        res[name] = json.load(open(path))
for key, sub in (("bench_problems", "problems"), ("bench_problems_tile", "problems_tile")):
    for path in glob.glob(os.path.join(work, sub, "*.json")):
        res[key] = json.load(open(path))["workloads"]["problems"]

ok = all(s["status"] in ("ok",) or s["status"].startswith("skipped") for s in steps
         if s["step"] != "sanitizer initcheck")
must = ["build", "tests"] + ([] if res["dry_run"] else
                             ["sanitizer memcheck", "sanitizer racecheck", "bench jet",
                              "bench loss", "bench problems", "bench jet (tile)",
                              "bench loss (tile)"])
ran = {s["step"] for s in steps if s["status"] == "ok"}
res["passed"] = ok and all(m in ran for m in must)
with open(os.path.join(out, "results.json"), "w") as fh:
    json.dump(res, fh, indent=2)

w = max(len(s["step"]) for s in steps) if steps else 10
print(f"\nfluxkern gpu_check: {'PASSED' if res['passed'] else 'FAILED'} "
      f"in {res['seconds_total']} s; {res['machine'].get('gpu')}, torch {res['machine'].get('torch')}")
print(f"| {'step'.ljust(w)} | status               | seconds | limit |")
print(f"|{'-' * (w + 2)}|----------------------|---------|-------|")
for s in steps:
    print(f"| {s['step'].ljust(w)} | {s['status'][:20].ljust(20)} | {s['seconds']:7d} | "
          f"{s['limit_s']:5d} |")
if "tests" in res:
    t = res["tests"]
    print(f"tests: {t['tests']} run, {t['failures']} failures, {t['errors']} errors, "
          f"{t['skipped']} skipped; {t['cuda_tests_run']} cuda tests ran")
    for f in t["failed"]:
        print(f"  FAILED {f}")
for line in res.get("sanitizer_error_summaries", []):
    print(f"sanitizer: {line.strip('= ')}")
def table(title, rows, wanted):
    if not rows:
        return
    cols = [c for c in wanted if any(c in r for r in rows)]
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols]
    print(f"\n{title}:")
    print("| " + " | ".join(c.ljust(x) for c, x in zip(cols, widths)) + " |")
    print("|" + "|".join("-" * (x + 2) for x in widths) + "|")
    for r in rows:
        print("| " + " | ".join(str(r.get(c, "")).ljust(x) for c, x in zip(cols, widths)) + " |")
table("jet benchmark (loss = sum y^2 + sum J^2, forward + parameter gradient)",
      res.get("bench_jet", {}).get("rows", []),
      ("dtype", "N", "width", "impl", "ms/step", "fused speed-up", "GFLOP/s",
       "of datasheet peak", "of GEMM peak"))
table("loss benchmark (poisson flux form, loss + parameter gradient; 'vs fused' = time / fused)",
      res.get("bench_loss", {}).get("rows", []),
      ("dtype", "N", "impl", "ms/step", "vs fused", "GFLOP/s", "of datasheet peak",
       "of GEMM peak"))
table("jet benchmark, fused forward = tile kernel (FLUXKERN_CUDA_TILE=1)",
      res.get("bench_jet_tile", {}).get("rows", []),
      ("dtype", "N", "width", "impl", "ms/step", "fused speed-up", "GFLOP/s",
       "of datasheet peak", "of GEMM peak"))
table("loss benchmark, fused forward = tile kernel (FLUXKERN_CUDA_TILE=1)",
      res.get("bench_loss_tile", {}).get("rows", []),
      ("dtype", "N", "impl", "ms/step", "vs fused", "GFLOP/s", "of datasheet peak",
       "of GEMM peak"))
table("problems at their own sizes, float64 (loss + gradient eval and one L-BFGS epoch; 'x fused' "
      "= time / fused)", res.get("bench_problems", {}).get("results", []),
      ("problem", "contender", "eval_ms", "epoch_ms", "evals_per_epoch", "x fused eval",
       "x fused epoch"))
table("problems at their own sizes, float64, fused forward = tile kernel (FLUXKERN_CUDA_TILE=1)",
      res.get("bench_problems_tile", {}).get("results", []),
      ("problem", "contender", "eval_ms", "epoch_ms", "evals_per_epoch", "x fused eval",
       "x fused epoch"))
print(f"\nresults: {os.path.join(out, 'results.json')}")
EOF
rc=$?
rm -rf "$WORK"
if ((rc != 0)); then
  echo "gpu_check: writing the results failed (rc $rc)" >&2
  exit 1
fi
grep -q '"passed": true' "$OUT/results.json"
