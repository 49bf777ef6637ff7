#!/bin/sh
# bnfold's benchmark: folds bench/work/resnet50.onnx and sets the figures
# beside cp, onnxruntime-node's inference and its own offline fold, then the
# evaluator's GEMM against the machine's peak. Every time is the median of
# RUNS runs (default 5). Writes bench/results/latest.md and prints it.
#
#   make bench                         (builds, generates the model, runs this)
#   BNFOLD=build/bnfold GEMM_BENCH=build/bench/gemm_bench sh bench/run.sh
#   BENCH_ONLY=many sh bench/run.sh     (only (f), many small models: seconds)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
BNFOLD=${BNFOLD:-$top/build/bnfold}
GEMM_BENCH=${GEMM_BENCH:-$top/build/bench/gemm_bench}
RUNS=${RUNS:-5}
MODEL=${MODEL:-$here/work/resnet50.onnx}
# HOOK (issue 7, external data): set BIG_MODEL to the several-GB model with
# external data that the model I/O work produces (its generator belongs to
# that work); section (e) then times bnfold on it beside cp of its files.
BIG_MODEL=${BIG_MODEL:-}
work=$here/work
out=$here/results/latest.md
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bnfold-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

[ -x "$BNFOLD" ] || { echo "run.sh: no bnfold at $BNFOLD" >&2; exit 2; }
mkdir -p "$here/results"

# median FILE COLUMN: the median of one column of numbers.
median() {
	awk -v c="$2" '{print $c}' "$1" | sort -g |
		awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

# timed NAME CMD...: run CMD RUNS times; NAME.t gets "seconds peak-KB" lines,
# NAME.out the commands' standard output.
timed() {
	name=$1
	shift
	: >"$tmp/$name.t"
	: >"$tmp/$name.out"
	i=0
	while [ "$i" -lt "$RUNS" ]; do
		/usr/bin/time -f '%e %M' -o "$tmp/time" "$@" >>"$tmp/$name.out" 2>"$tmp/$name.err" ||
			{ echo "run.sh: $name failed:" >&2; cat "$tmp/$name.err" >&2; exit 1; }
		cat "$tmp/time" >>"$tmp/$name.t"
		i=$((i + 1))
	done
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}'; }

# (f) Many small models: the first 50 fixtures folded by one bnfold process
# (-O DIR, all cores, then -j 1) against a shell loop of 50 processes, each
# `bnfold IN -o OUT`. Writes bench/results/many.md.
many_models() {
	mkdir -p "$tmp/many/in"
	for f in $(ls "$top"/tests/fixtures/*.onnx | head -n 50); do
		cp "$f" "$tmp/many/in/"
	done
	n=$(ls "$tmp/many/in" | wc -l)
	timed loop sh -c 'mkdir -p "$3"; for f in "$1"/*.onnx; do
		"$2" -q "$f" -o "$3/$(basename "$f")" || exit 1; done' sh "$tmp/many/in" "$BNFOLD" \
		"$tmp/many/loop"
	timed one sh -c '"$2" -q -O "$3" "$1"/*.onnx' sh "$tmp/many/in" "$BNFOLD" "$tmp/many/one"
	timed one1 sh -c '"$2" -q -j 1 -O "$3" "$1"/*.onnx' sh "$tmp/many/in" "$BNFOLD" \
		"$tmp/many/one1"
	loop_t=$(median "$tmp/loop.t" 1)
	one_t=$(median "$tmp/one.t" 1)
	one1_t=$(median "$tmp/one1.t" 1)
	{
		echo "(f) $n small models (tests/fixtures, $(du -sk "$tmp/many/in" | cut -f1) KB), folded"
		echo "and checked; medians of $RUNS runs, $(nproc) cores:"
		echo
		echo "| measure | time | per model | loop / this |"
		echo "| --- | --- | --- | --- |"
		echo "| shell loop, $n processes \`bnfold IN -o OUT\` | $loop_t s | $(awk -v t="$loop_t" -v n="$n" 'BEGIN {printf "%.1f ms", t * 1000 / n}') | 1.00 |"
		echo "| one process, \`bnfold -j 1 -O DIR ...\` | $one1_t s | $(awk -v t="$one1_t" -v n="$n" 'BEGIN {printf "%.1f ms", t * 1000 / n}') | $(ratio "$loop_t" "$one1_t") |"
		echo "| one process, \`bnfold -O DIR ...\` (all cores) | $one_t s | $(awk -v t="$one_t" -v n="$n" 'BEGIN {printf "%.1f ms", t * 1000 / n}') | $(ratio "$loop_t" "$one_t") |"
		echo
	} >"$here/results/many.md"
	cmp -s "$tmp/many/loop/example.onnx" "$tmp/many/one/example.onnx" ||
		{ echo "run.sh: the loop and the one process wrote different files" >&2; exit 1; }
}

if [ "${BENCH_ONLY:-}" = many ]; then
	many_models
	cat "$here/results/many.md"
	exit 0
fi
[ -f "$MODEL" ] || /usr/bin/python3 "$here/gen_resnet50.py" "$MODEL"
mb() { awk -v k="$1" 'BEGIN {printf "%.1f", k * 1024 / 1e6}'; } # KiB -> MB
verdict() { awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN {
	ok = (op == "<=") ? v <= t : v < t; printf "%s", ok ? "met" : "missed" }'; }

size=$(stat -c %s "$MODEL")
size_kb=$((size / 1024))
size_mb=$(awk -v s="$size" 'BEGIN {printf "%.1f", s / 1e6}')
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
cores=$(nproc)
mhz=$(awk -F': ' '/^cpu MHz/ {print $2; exit}' /proc/cpuinfo)
flags=$(awk -F': ' '/^flags/ {print $2; exit}' /proc/cpuinfo)
# fp32 lanes of one FMA instruction, times two FMA units per core (Intel
# since Haswell, AMD since Zen; Zen 4 splits 512-bit ops, so it gets half).
case " $flags " in
*" avx512f "*) lanes=32 ;;
*" fma "*) lanes=16 ;;
*) lanes=8 ;;
esac
peak_core=$(awk -v m="$mhz" -v l="$lanes" 'BEGIN {printf "%.1f", m / 1000 * l * 2}')

# (a) bnfold without the check against cp of the same file.
timed cp cp "$MODEL" "$tmp/copy.onnx"
timed nover "$BNFOLD" -q --no-verify "$MODEL" -o "$tmp/nover.onnx"
# (b) the default run (fold + whole-graph check, 2 samples) against
# onnxruntime running the same two inferences.
timed full "$BNFOLD" -q "$MODEL" -o "$tmp/full.onnx"
# The check phase alone (the report's timings_ms.check): its 2 samples x 2
# models = 4 whole-graph inferences, plus the per-fold checks.
timed phase sh -c '"$1" -q "$2" -o "$3" --json - | /usr/bin/python3 -c "$4"' sh "$BNFOLD" \
	"$MODEL" "$tmp/phase.onnx" 'import json, sys; print(json.load(sys.stdin)["timings_ms"]["check"] / 1000)'
timed ort node "$here/ort_infer.js" "$MODEL" # NAME.out: "load_s infer_s" per run
# (c) onnxruntime's own offline fold (graphOptimizationLevel basic).
timed ortfold node "$here/ort_fold.js" "$MODEL" "$tmp/ortfold.onnx"

# (e) The same model with every tensor in an external data file: peak RSS
# of the fold alone and of the default run (whose whole-graph check the
# --check-memory budget skips; the per-fold check runs).
ext="$work/resnet50-external"
if [ ! -f "$ext/model.onnx" ] || [ "$ext/model.onnx" -ot "$MODEL" ]; then
	mkdir -p "$ext"
	/usr/bin/python3 -c 'import sys, onnx
m = onnx.load(sys.argv[1])
onnx.save_model(m, sys.argv[2], save_as_external_data=True, all_tensors_to_one_file=True,
                location="model.data", size_threshold=0)' "$MODEL" "$ext/model.onnx"
fi
mkdir -p "$tmp/ext"
timed extnv "$BNFOLD" -q --no-verify "$ext/model.onnx" -o "$tmp/ext/model.onnx"
timed extfull "$BNFOLD" -q --check-memory 1M "$ext/model.onnx" -o "$tmp/ext/model.onnx"
ext_data=$(stat -c %s "$ext/model.data")
many_models

cp_t=$(median "$tmp/cp.t" 1)
nv_t=$(median "$tmp/nover.t" 1)
nv_m=$(median "$tmp/nover.t" 2)
full_t=$(median "$tmp/full.t" 1)
full_m=$(median "$tmp/full.t" 2)
ort_t=$(median "$tmp/ort.t" 1)
ort_in=$(median "$tmp/ort.out" 2 | awk '{printf "%.2f", $1}')
of_t=$(median "$tmp/ortfold.t" 1)
nv_ratio=$(ratio "$nv_t" "$cp_t")
rss_ratio=$(ratio "$nv_m" "$size_kb")
full_ratio=$(ratio "$full_t" "$ort_t")
full_in_ratio=$(ratio "$full_t" "$ort_in")
fold_ratio=$(ratio "$full_t" "$of_t")
phase_t=$(awk '{printf "%.3f\n", $1}' "$tmp/phase.out" | sort -g |
	awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}')
per_inf=$(awk -v t="$phase_t" 'BEGIN {printf "%.3f", t / 4}')
ort_per=$(awk -v t="$ort_in" 'BEGIN {printf "%.3f", t / 2}')
per_ratio=$(ratio "$per_inf" "$ort_per")
ext_nv_m=$(median "$tmp/extnv.t" 2)
ext_full_m=$(median "$tmp/extfull.t" 2)
ext_nv_ratio=$(awk -v k="$ext_nv_m" -v d="$ext_data" 'BEGIN {printf "%.2f", k * 1024 / d}')
ext_full_ratio=$(awk -v k="$ext_full_m" -v d="$ext_data" 'BEGIN {printf "%.2f", k * 1024 / d}')

{
	echo "# bnfold benchmark"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $cpu, $cores cores at $mhz MHz; $(uname -sr)."
	echo "Model: $(basename "$MODEL"), $size_mb MB (MB = 10^6 bytes throughout)."
	echo "Medians of $RUNS runs (wall time, peak RSS); the machine is shared, so"
	echo "figures move by tens of percent from one run to the next."
	echo
	echo "| measure | value | against | ratio | target | |"
	echo "| --- | --- | --- | --- | --- | --- |"
	echo "| (a) bnfold --no-verify, time | $nv_t s | cp $cp_t s | $nv_ratio | <= 1.3 | $(verdict "$nv_ratio" 1.3 '<=') |"
	echo "| (a) bnfold --no-verify, peak RSS | $(mb "$nv_m") MB | model $size_mb MB | $rss_ratio | <= 2.1 | $(verdict "$rss_ratio" 2.1 '<=') |"
	echo "| (b) bnfold (fold + check, 2 samples), time | $full_t s | | | < 0.5 s | $(verdict "$full_t" 0.5 '<') |"
	echo "| (b) bnfold, peak RSS | $(mb "$full_m") MB | | | | |"
	echo "| (b) vs onnxruntime-node, whole process | $full_t s | $ort_t s | $full_ratio | <= 3 | $(verdict "$full_ratio" 3 '<=') |"
	echo "| (b) vs onnxruntime-node, two inferences | $full_t s | $ort_in s | $full_in_ratio | <= 3 | $(verdict "$full_in_ratio" 3 '<=') |"
	echo "| (c) vs onnxruntime offline fold (basic) | $full_t s | $of_t s | $fold_ratio | <= 0.5 | $(verdict "$fold_ratio" 0.5 '<=') |"
	echo "| (b') check phase alone (4 inferences + per-fold), time | $phase_t s | | | | |"
	echo "| (b') its time per inference vs onnxruntime's | $per_inf s | $ort_per s | $per_ratio | | |"
	echo "| (e) every tensor external: --no-verify, peak RSS | $(mb "$ext_nv_m") MB | data $(awk -v d="$ext_data" 'BEGIN {printf "%.1f", d / 1e6}') MB | $ext_nv_ratio | < 0.3 | $(verdict "$ext_nv_ratio" 0.3 '<') |"
	echo "| (e) every tensor external: default run, peak RSS | $(mb "$ext_full_m") MB | data | $ext_full_ratio | < 0.3 | $(verdict "$ext_full_ratio" 0.3 '<') |"
	echo
	if [ -n "$BIG_MODEL" ]; then
		# HOOK (e): the external-data model. Its data files sit beside it.
		timed bigcp cp -r "$(dirname "$BIG_MODEL")" "$tmp/bigcopy"
		timed bignv "$BNFOLD" -q --no-verify "$BIG_MODEL" -o "$tmp/bigcopy/out.onnx"
		echo "(e) external data, $(basename "$BIG_MODEL"): bnfold --no-verify" \
			"$(median "$tmp/bignv.t" 1) s, $(mb "$(median "$tmp/bignv.t" 2)") MB peak," \
			"cp -r $(median "$tmp/bigcp.t" 1) s."
		echo
	fi
	cat "$here/results/many.md"
	echo "(d) The evaluator's GEMM on ResNet-50's im2col shapes (x: how many"
	echo "convolutions have the shape). Peak per core: $mhz MHz x $lanes fp32 FMA"
	echo "lanes x 2 = $peak_core GFLOP/s (boost clocks can exceed it)."
	echo
	if [ -x "$GEMM_BENCH" ]; then
		"$GEMM_BENCH" "$peak_core" 7
	else
		echo "(no gemm_bench at $GEMM_BENCH)"
	fi
} >"$out"
cat "$out"
