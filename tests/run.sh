#!/bin/sh
# The whole test suite, as `make check` and `make asan` run it: the schema
# round trip over every fixture and every ONNX backend test model, then the
# pytest suites (folding, CLI, evaluator, onnxruntime comparisons).
set -eu
cd "$(dirname "$0")/.."
build=${BNFOLD_BUILD:-build}
export BNFOLD_BUILD="$build"

sh tests/ort/install.sh

echo "== schema round trip (unpack + pack gives the same bytes)"
find tests/fixtures /usr/share/libonnx-testdata/data -path tests/fixtures/bad -prune -o -name '*.onnx' -size -20M -print | sort |
	xargs "$build/tests/roundtrip" > "$build/roundtrip.log" || {
	grep -v '^ok' "$build/roundtrip.log"
	exit 1
}
tail -n 1 "$build/roundtrip.log"

echo "== fuzz targets replayed over tests/fuzz/corpus/<target> and tests/hostile"
for t in load fold eval; do
	prog="$build/tests/fuzz/replay_$t"
	if [ ! -x "$prog" ]; then
		# make check and make asan build them; a hand-made build may not.
		echo "SKIPPED: $prog not built (make BUILD=$build $prog)"
		continue
	fi
	"$prog" "tests/fuzz/corpus/$t" tests/hostile
done

echo "== pytest"
exec /usr/bin/python3 -m pytest -q -p no:cacheprovider -rs tests
