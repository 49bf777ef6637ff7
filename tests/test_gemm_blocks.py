"""The blocked multiply (src/eval/gemm.c) with a stored B wider than one
packed block: B is packed 512 KiB at a time (512 float32 or 256 float64
columns of a 256-deep k block), so these MatMuls cross several column
blocks, two k blocks, a partial last panel and edge rows. The cut never
changes how an element is summed, so -j 1 and -j 4 give the same bytes;
both must match numpy's float64 product.
"""

import numpy as np
import pytest
from onnx import TensorProto

from test_gemv import matmul_model, run_y

NP = {TensorProto.FLOAT: np.float32, TensorProto.DOUBLE: np.float64}
# Normalised squared error, mse(y, ref) / mse(ref, 0), allowed per type.
TOL = {TensorProto.FLOAT: 1e-11, TensorProto.DOUBLE: 1e-28}


@pytest.mark.parametrize("dt", [TensorProto.FLOAT, TensorProto.DOUBLE])
@pytest.mark.parametrize("m,k,n", [(67, 300, 1100), (13, 257, 1537)])
def test_wide_stored_b(bnfold, tmp_path, dt, m, k, n):
    rng = np.random.default_rng(m * n + k)
    model = str(tmp_path / "m.onnx")
    b = matmul_model(model, m, k, n, dt, seed=m * n + k + 1)
    a = rng.standard_normal((m, k)).astype(NP[dt])
    one_bytes, one = run_y(bnfold, model, a, tmp_path, "1")
    four_bytes, _ = run_y(bnfold, model, a, tmp_path, "4")
    assert one_bytes == four_bytes, "-j 1 and -j 4 differ"
    ref = a.astype(np.float64) @ b.astype(np.float64)
    err = np.sum((one.astype(np.float64) - ref) ** 2) / np.sum(ref ** 2)
    assert err < TOL[dt], "normalised error %g" % err
